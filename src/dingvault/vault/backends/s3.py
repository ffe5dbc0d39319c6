"""S3-compatible backend (AWS S3, MinIO, Alibaba OSS, ...) through boto3.

Create-only writes use a conditional PUT (``If-None-Match: *``), which the store evaluates
atomically: of two concurrent writers of one key, exactly one succeeds. Stores that reject the
header (HTTP 501 / NotImplemented) make the backend fall back, for its lifetime, to
HEAD-then-PUT, which has a race: two writers that both see "absent" both write, and the later
one wins. In the vault that race is harmless for content-addressed objects (both writers store
the same bytes under a name derived from them) and is the reason locks are not built on it.
``conditional_writes=on`` refuses to fall back; ``off`` always uses HEAD-then-PUT (for a store
known to *ignore* the header silently, which cannot be detected).

Large streams go up as multipart uploads (read part by part, so memory stays at one part); the
completion is conditional too. An upload that fails is aborted; one that a crash interrupts is
removed by ``cleanup()``.

Retries: botocore's "standard" retry mode handles throttling, 5xx and transient connection
errors with exponential backoff; around it a bounded loop retries connection failures a few
more rounds with 1, 2, 4 s pauses (a store restarting for a few seconds must not fail a backup;
the replicator retries longer on its own) and then raises
``BackendError("S3 unreachable at <endpoint> after N attempts: ...")``. Total time is bounded by
``max_attempts``, ``connect_timeout`` and ``read_timeout``.

Objects are already ciphertext, so no server-side encryption is requested. Checksums are sent
only when the operation requires them (botocore >= 1.36 otherwise adds CRC32 trailers that
several S3-compatible stores reject); the vault authenticates every object itself.

``mtime`` in ObjectInfo is the store's LastModified (whole seconds on most stores).
"""

from __future__ import annotations

import configparser
import hashlib
import io
import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from ..streams import Prepend, read_exactly
from .base import BackendError, ObjectExists, ObjectInfo, ObjectNotFound, check_key, check_range

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1 << 20
_CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"412", "PreconditionFailed"}
# 409 ConditionalRequestConflict: another conditional write to the key is in flight; AWS says retry.
_RETRY_CONFLICT = {"409", "ConditionalRequestConflict"}
_UNSUPPORTED = {"501", "NotImplemented"}


class _BodyReader(io.RawIOBase):
    """A file-like wrapper over botocore's StreamingBody (so callers get a real BinaryIO)."""

    def __init__(self, body: Any, key: str, url: str) -> None:
        self._body = body
        self._key = key
        self._url = url

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._body.read(len(b))
        except (BotoCoreError, OSError) as exc:
            raise BackendError(f"reading {self._key} from {self._url} failed mid-stream: {exc}") from exc
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        conditional_writes: str = "auto",
        credentials_file: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        max_attempts: int = 4,
        connect_rounds: int = 4,
        retry_delay: float = 1.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        multipart_threshold: int = 32 * MiB,
        part_size: int = 16 * MiB,
        max_pool_connections: int = 16,
    ) -> None:
        if conditional_writes not in ("auto", "on", "off"):
            raise BackendError(f"conditional_writes must be auto, on or off, not {conditional_writes!r}")
        if addressing_style not in (None, "path", "virtual", "auto"):
            raise BackendError(f"addressing_style must be path, virtual or auto, not {addressing_style!r}")
        if part_size < 5 * MiB:
            raise BackendError("part_size must be at least 5 MiB (the S3 minimum for all but the last part)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        query = [f"{k}={v}" for k, v in (("endpoint_url", endpoint_url), ("region", region)) if v]
        if query:
            self.url += "?" + "&".join(query)
        self._endpoint_label = endpoint_url or f"AWS S3 ({region or 'default region'})"
        self._conditional = conditional_writes
        self._conditional_supported = conditional_writes != "off"
        self._connect_rounds = max(1, connect_rounds)
        self._max_attempts = max(1, max_attempts)
        self._retry_delay = retry_delay
        self.multipart_threshold = max(multipart_threshold, 5 * MiB)
        self.part_size = part_size
        self._lock = threading.Lock()

        session = self._session(credentials_file, profile)
        config = Config(
            region_name=region or "us-east-1",
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)

    @staticmethod
    def _session(
        credentials_file: str | os.PathLike[str] | None, profile: str | None
    ) -> boto3.session.Session:
        if credentials_file is None:
            return boto3.session.Session(profile_name=profile)
        path = os.fspath(credentials_file)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise BackendError(f"cannot read S3 credentials file {path}: {exc.strerror}") from exc
        if st.st_mode & (stat_mod.S_IRWXG | stat_mod.S_IRWXO):
            raise BackendError(
                f"S3 credentials file {path} is readable by other users (mode {stat_mod.filemode(st.st_mode)}); "
                f"run: chmod 600 {path}"
            )
        # An explicit file wins over the environment (botocore's chain would prefer env vars), so
        # read it ourselves: AWS shared-credentials format, section = profile or "default".
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error) as exc:
            raise BackendError(f"cannot parse S3 credentials file {path}: {type(exc).__name__}") from None
        section = profile or "default"
        if not parser.has_section(section):
            raise BackendError(f"S3 credentials file {path} has no [{section}] section")
        values = parser[section]
        key_id = values.get("aws_access_key_id")
        secret = values.get("aws_secret_access_key")
        if not key_id or not secret:
            raise BackendError(
                f"S3 credentials file {path} [{section}] needs aws_access_key_id and aws_secret_access_key"
            )
        return boto3.session.Session(
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=values.get("aws_session_token") or None,
        )

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r})"

    # -- plumbing ----------------------------------------------------------------------------

    def _k(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run one S3 call with the outer connection-retry loop and clear errors."""
        last: Exception | None = None
        conflicts = 0
        round_ = 0
        while round_ < self._connect_rounds:
            try:
                return fn(**kwargs)
            except _CONNECTION_ERRORS as exc:
                last = exc
                round_ += 1
                if round_ < self._connect_rounds:
                    time.sleep(self._retry_delay * (2 ** (round_ - 1)))
            except ClientError as exc:
                code = _code(exc)
                if code in _RETRY_CONFLICT and conflicts < 5:
                    conflicts += 1
                    time.sleep(self._retry_delay * conflicts)
                    continue
                raise
            except NoCredentialsError as exc:
                raise BackendError(
                    f"no S3 credentials for {self.url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "AWS_PROFILE or a credentials file"
                ) from exc
            except BotoCoreError as exc:
                raise BackendError(f"S3 {what} failed at {self._endpoint_label}: {exc}") from exc
        attempts = self._connect_rounds * self._max_attempts
        raise BackendError(
            f"S3 unreachable at {self._endpoint_label} after {attempts} attempts: {last}"
        ) from last

    def _client_error(self, exc: ClientError, what: str, key: str) -> BackendError:
        code = _code(exc)
        if code in _NOT_FOUND:
            return ObjectNotFound(f"object {key} not found in {self.url}")
        if code == "NoSuchBucket":
            return BackendError(f"bucket {self.bucket} does not exist at {self._endpoint_label}")
        if code in ("AccessDenied", "403", "Forbidden"):
            return BackendError(f"access denied {what} {key} in {self.url}")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return BackendError(f"S3 credentials rejected by {self._endpoint_label} ({code})")
        return BackendError(f"S3 {what} {key} in {self.url} failed: {code}: {exc}")

    # -- writes ------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, overwrite: bool = False, sync: bool = True) -> None:
        full = self._k(key)
        if len(data) >= self.multipart_threshold:
            self._multipart(key, full, io.BytesIO(data), len(data), overwrite)
        else:
            self._put_small(key, full, bytes(data), overwrite)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        size: int | None = None,
        *,
        overwrite: bool = False,
        sync: bool = True,
    ) -> None:
        full = self._k(key)
        # Read up to the threshold first: a small stream becomes one retryable PUT.
        head = read_exactly(stream, self.multipart_threshold)
        if len(head) < self.multipart_threshold:
            if size is not None and len(head) != size:
                raise BackendError(f"stream for {key} ended after {len(head)} of {size} bytes")
            self._put_small(key, full, head, overwrite)
            return
        self._multipart(key, full, Prepend(head, stream), size, overwrite)

    def _put_small(self, key: str, full: str, data: bytes, overwrite: bool) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data}
        if not overwrite:
            if not self._conditional_supported:
                if self.exists(key):  # HEAD-then-PUT: racy, see module docstring
                    self._exists_unless_same(key, full, hashlib.md5(data, usedforsecurity=False).hexdigest())
                    return
            else:
                args["IfNoneMatch"] = "*"
        try:
            self._call("put", self._client.put_object, **args)
        except ClientError as exc:
            code = _code(exc)
            if code in _EXISTS and not overwrite:
                self._exists_unless_same(key, full, hashlib.md5(data, usedforsecurity=False).hexdigest())
                return
            if code in _UNSUPPORTED and "IfNoneMatch" in args and self._fall_back():
                self._put_small(key, full, data, overwrite)
                return
            raise self._client_error(exc, "writing", key) from exc

    def _exists_unless_same(self, key: str, full: str, expected_etag: str) -> None:
        """A create-only write found the key taken: succeed if it already holds exactly our bytes
        (typically our own earlier attempt, whose acknowledgement a connection reset lost before
        the retry), else raise ObjectExists. The ETag is the MD5 of the bytes (of the part MD5s
        for multipart) on S3 and its compatibles without KMS encryption; any other ETag simply
        does not match, and the answer stays ObjectExists."""
        try:
            resp = self._call("head", self._client.head_object, Bucket=self.bucket, Key=full)
            same = str(resp.get("ETag", "")).strip('"') == expected_etag
        except ClientError:
            same = False
        if not same:
            raise ObjectExists(f"object {key} already exists in {self.url}")

    def _fall_back(self) -> bool:
        if self._conditional != "auto":
            return False
        with self._lock:
            if self._conditional_supported:
                log.warning(
                    "%s does not support conditional writes (If-None-Match); falling back to "
                    "HEAD-then-PUT, which is not race-free between concurrent writers",
                    self._endpoint_label,
                )
            self._conditional_supported = False
        return True

    def _multipart(self, key: str, full: str, stream: BinaryIO, size: int | None, overwrite: bool) -> None:
        if not overwrite and size is not None:
            try:
                if self.stat(key).size != size:  # taken by different bytes: no need to upload
                    raise ObjectExists(f"object {key} already exists in {self.url}")
            except ObjectNotFound:
                pass
        try:
            upload_id = self._call(
                "start upload", self._client.create_multipart_upload, Bucket=self.bucket, Key=full
            )["UploadId"]
        except ClientError as exc:
            raise self._client_error(exc, "starting upload of", key) from exc
        try:
            parts = []
            digests = []  # part MD5s: the multipart ETag is the MD5 of their concatenation
            total = 0
            number = 1
            while True:
                chunk = read_exactly(stream, self.part_size)
                if not chunk and number > 1:
                    break
                total += len(chunk)
                if size is not None and total > size:
                    raise BackendError(f"stream for {key} is longer than the declared {size} bytes")
                resp = self._call(
                    "upload part",
                    self._client.upload_part,
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                parts.append({"PartNumber": number, "ETag": resp["ETag"]})
                digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
                number += 1
                if len(chunk) < self.part_size:
                    break
            if size is not None and total != size:
                raise BackendError(f"stream for {key} ended after {total} of {size} bytes")
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": full,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            whole = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
            etag = f"{whole}-{len(parts)}"
            if not overwrite:
                if self._conditional_supported:
                    args["IfNoneMatch"] = "*"
                elif self.exists(key):
                    self._exists_unless_same(key, full, etag)
                    self._abort(key, full, upload_id)  # the same bytes are already there
                    return
            try:
                self._call("complete upload", self._client.complete_multipart_upload, **args)
            except ClientError as exc:
                code = _code(exc)
                if code in _EXISTS and not overwrite:
                    self._exists_unless_same(key, full, etag)
                    self._abort(key, full, upload_id)
                    return
                if code in _UNSUPPORTED and "IfNoneMatch" in args and self._fall_back():
                    if self.exists(key):
                        self._exists_unless_same(key, full, etag)
                        self._abort(key, full, upload_id)
                        return
                    del args["IfNoneMatch"]
                    self._call("complete upload", self._client.complete_multipart_upload, **args)
                    return
                raise self._client_error(exc, "completing upload of", key) from exc
        except BaseException:
            # Never leave a half-upload billing storage; if even the abort fails, cleanup() will.
            self._abort(key, full, upload_id)
            raise

    def _abort(self, key: str, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except Exception as abort_exc:  # the caller's outcome is what matters; cleanup() retries
            log.warning("could not abort multipart upload of %s: %s", key, abort_exc)

    def delete(self, key: str) -> None:
        try:
            self._call("delete", self._client.delete_object, Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return
            raise self._client_error(exc, "deleting", key) from exc

    def sync(self) -> None:
        pass  # every acknowledged PUT is already durable

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        full = self._k(key)
        if length == 0:
            self.stat(key)  # still report a missing object
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        # The body is read inside the retry: a connection cut mid-download is retried like a
        # refused one (botocore only retries until the response headers arrive).
        for attempt in range(self._connect_rounds):
            try:
                resp = self._call("get", self._client.get_object, **args)
                body = resp["Body"]
                try:
                    return body.read()
                finally:
                    body.close()
            except ClientError as exc:
                if _code(exc) in ("InvalidRange", "416"):
                    self.stat(key)  # past the end of an existing object: slicing gives b""
                    return b""
                raise self._client_error(exc, "reading", key) from exc
            except (BotoCoreError, OSError) as exc:
                if attempt + 1 >= self._connect_rounds:
                    raise BackendError(f"reading {key} from {self.url} failed: {exc}") from exc
                time.sleep(self._retry_delay * (2**attempt))
        raise AssertionError("unreachable")  # the loop always returns or raises

    def open(self, key: str) -> BinaryIO:
        try:
            resp = self._call("get", self._client.get_object, Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            raise self._client_error(exc, "opening", key) from exc
        return io.BufferedReader(_BodyReader(resp["Body"], key, self.url), buffer_size=MiB)  # type: ignore[return-value]

    def stat(self, key: str) -> ObjectInfo:
        try:
            resp = self._call("head", self._client.head_object, Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            raise self._client_error(exc, "inspecting", key) from exc
        return ObjectInfo(key=key, size=int(resp["ContentLength"]), mtime=resp["LastModified"].timestamp())

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root + prefix}
        # Paginate by hand (not with a paginator) so every page gets the retry loop, and a
        # failure on page 40 retries page 40 rather than the listing.
        while True:
            try:
                resp = self._call("list", self._client.list_objects_v2, **args)
            except ClientError as exc:
                raise self._client_error(exc, "listing", prefix or "/") from exc
            for obj in resp.get("Contents", ()):
                yield ObjectInfo(
                    key=obj["Key"][len(root) :], size=int(obj["Size"]), mtime=obj["LastModified"].timestamp()
                )
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return
            args["ContinuationToken"] = token

    # -- housekeeping ------------------------------------------------------------------------

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Abort multipart uploads under this prefix started more than ``older_than`` seconds ago."""
        cutoff = time.time() - older_than
        removed = 0
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{self.prefix}/" if self.prefix else ""}
        while True:
            try:
                resp = self._call("list uploads", self._client.list_multipart_uploads, **args)
            except ClientError as exc:
                raise self._client_error(exc, "listing uploads in", self.url) from exc
            for up in resp.get("Uploads", ()):
                if up["Initiated"].timestamp() <= cutoff:
                    try:
                        self._call(
                            "abort upload",
                            self._client.abort_multipart_upload,
                            Bucket=self.bucket,
                            Key=up["Key"],
                            UploadId=up["UploadId"],
                        )
                        removed += 1
                    except ClientError as exc:
                        if _code(exc) != "NoSuchUpload":
                            raise self._client_error(exc, "aborting upload of", up["Key"]) from exc
            if not resp.get("IsTruncated"):
                return removed
            args["KeyMarker"] = resp.get("NextKeyMarker", "")
            args["UploadIdMarker"] = resp.get("NextUploadIdMarker", "")

    def close(self) -> None:
        self._client.close()


def _code(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    # HEAD responses have no body, so only the status says "404"/"412".
    return code or status
