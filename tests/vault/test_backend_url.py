"""from_url: which backend a URL opens, and which URLs are refused."""

from __future__ import annotations

import pytest

from dingvault.vault.backends import BackendError, LocalBackend, MemoryBackend, from_url, redact_url
from dingvault.vault.backends.s3 import S3Backend


def test_plain_path_and_file_url(tmp_path) -> None:
    a = from_url(str(tmp_path / "a"))
    b = from_url((tmp_path / "b b").as_uri())  # percent-encoded space
    assert isinstance(a, LocalBackend) and a.root == tmp_path / "a"
    assert isinstance(b, LocalBackend) and b.root == tmp_path / "b b"
    assert from_url(b.url).root == b.root  # url round-trips


def test_memory_url() -> None:
    assert isinstance(from_url("memory://t"), MemoryBackend)


def test_s3_url_options(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    b = from_url("s3://bkt/some/prefix/?endpoint_url=http://127.0.0.1:9&region=mo-1&addressing_style=path")
    assert isinstance(b, S3Backend)
    assert (b.bucket, b.prefix, b.endpoint_url, b.region) == (
        "bkt",
        "some/prefix",
        "http://127.0.0.1:9",
        "mo-1",
    )
    assert b.url == "s3://bkt/some/prefix?endpoint_url=http://127.0.0.1:9&region=mo-1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://AKID:secret@bucket/p", "credentials must not be in the backend URL"),
        ("s3://bucket/p?aws_secret_access_key=abc", "credentials must not be in the backend URL"),
        ("s3://bucket/p?session_token=abc", "credentials must not be in the backend URL"),
        ("s3://bucket/p?endpoint=http://x", "unknown option"),
        ("s3:///p", "no bucket"),
        ("s3://bucket/p?conditional_writes=maybe", "conditional_writes"),
        ("file://otherhost/srv/vault", "remote host"),
        ("ftp://host/vault", "unsupported backend URL scheme"),
        ("", "empty"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(BackendError, match=message) as info:
        from_url(url)
    assert "AKID" not in str(info.value)  # secrets are never echoed back
    assert "abc" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("s3://a:b@bucket/p?region=x&secret_key=zz") == "s3://bucket/p?region=x&secret_key=***"


def test_options_for_another_backend_kind_are_ignored_unknown_refused(tmp_path) -> None:
    b = from_url(str(tmp_path / "v"), max_attempts=2, credentials_file="/nonexistent")  # S3-only: ignored
    assert isinstance(b, LocalBackend)
    with pytest.raises(BackendError, match="unknown backend option"):
        from_url(str(tmp_path / "v"), max_attemps=2)
    with pytest.raises(BackendError, match="does not exist"):
        from_url(str(tmp_path / "absent"), create=False)
