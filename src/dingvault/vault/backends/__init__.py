"""Vault backends: where the bytes live.

``from_url`` is the one way the rest of dingvault opens a backend:

* ``/srv/vault`` or ``file:///srv/vault`` -> LocalBackend
* ``s3://bucket/prefix?endpoint_url=https://minio:9000&region=us-east-1`` -> S3Backend
  (other query options: ``addressing_style=path|virtual``, ``conditional_writes=auto|on|off``)
* ``memory://name`` -> MemoryBackend (tests, dry runs)

Credentials never go in the URL (URLs end up in config files and logs): S3 credentials come from
the environment / standard AWS config (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``~/.aws/...``) or
from ``from_url(url, credentials_file=..., profile=...)``. A URL with ``user:password@`` or a
credential-like query parameter is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .base import Backend, BackendError, InvalidKey, ObjectExists, ObjectInfo, ObjectNotFound
from .local import LocalBackend
from .memory import MemoryBackend

__all__ = [
    "Backend",
    "BackendError",
    "InvalidKey",
    "LocalBackend",
    "MemoryBackend",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "from_url",
    "redact_url",
]

_S3_QUERY_OPTIONS = {"endpoint_url", "region", "addressing_style", "conditional_writes"}
# Constructor options per backend kind. from_url drops another kind's options (one set of
# options serves a mixed list of replicas) and refuses options no backend knows (typos).
_S3_OPTIONS = {
    "credentials_file",
    "profile",
    "max_attempts",
    "connect_rounds",
    "retry_delay",
    "connect_timeout",
    "read_timeout",
    "multipart_threshold",
    "part_size",
    "max_pool_connections",
}
_LOCAL_OPTIONS = {"create"}


def _options_for(kind: set[str], opts: dict[str, Any]) -> dict[str, Any]:
    unknown = set(opts) - _S3_OPTIONS - _LOCAL_OPTIONS
    if unknown:
        raise BackendError(f"unknown backend option(s): {', '.join(sorted(unknown))}")
    return {k: v for k, v in opts.items() if k in kind}


_SECRET_WORDS = ("key", "secret", "token", "password", "credential", "signature")


def redact_url(url: str) -> str:
    """The URL with any userinfo and query values that look like secrets replaced, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{k}=***" if any(w in k.lower() for w in _SECRET_WORDS) else f"{k}={v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def from_url(url: str, **opts: Any) -> Backend:
    """Open the backend a URL names. ``opts`` go to the backend's constructor (e.g. S3
    ``credentials_file``, ``profile``, ``max_attempts``, ``connect_timeout``; local ``create``);
    options of another backend kind are ignored, unknown ones refused."""
    if not url:
        raise BackendError("empty backend URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # plain path (or C:\...)
        return LocalBackend(url, **_options_for(_LOCAL_OPTIONS, opts))
    if "@" in parts.netloc:
        raise BackendError(
            f"credentials must not be in the backend URL {redact_url(url)}: use the environment, "
            "the AWS config files or a credentials file"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for k in query:
        if any(w in k.lower() for w in _SECRET_WORDS):
            raise BackendError(
                f"credentials must not be in the backend URL {redact_url(url)} (query parameter {k!r})"
            )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BackendError(f"file URL {url} names a remote host; only local paths are supported")
        if query:
            raise BackendError(f"file URL {url} takes no query options")
        return LocalBackend(unquote(parts.path), **_options_for(_LOCAL_OPTIONS, opts))
    if scheme == "memory":
        _options_for(set(), opts)
        return MemoryBackend(parts.netloc + parts.path)
    if scheme == "s3":
        unknown = set(query) - _S3_QUERY_OPTIONS
        if unknown:
            raise BackendError(
                f"unknown option(s) {sorted(unknown)} in {redact_url(url)}; known: {sorted(_S3_QUERY_OPTIONS)}"
            )
        if not parts.netloc:
            raise BackendError(f"S3 URL {url} has no bucket (expected s3://bucket/prefix)")
        from .s3 import S3Backend  # boto3 is slow to import; only pay for it when S3 is used

        return S3Backend(
            bucket=parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint_url=query.get("endpoint_url"),
            region=query.get("region"),
            addressing_style=query.get("addressing_style"),
            conditional_writes=query.get("conditional_writes", "auto"),
            **_options_for(_S3_OPTIONS, opts),
        )
    raise BackendError(f"unsupported backend URL scheme {scheme!r} in {redact_url(url)} (file, s3, memory)")
