"""S3 backend against a moto server on loopback: pagination, multipart, conditional writes, retries, errors."""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from s3fixture import FAST_RETRY, MotoS3, free_port  # the moto_s3 fixture comes from conftest.py

from dingvault.vault.backends import BackendError, ObjectExists, from_url
from dingvault.vault.backends.s3 import MiB, S3Backend

pytestmark = pytest.mark.s3


def test_listing_more_than_one_page(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(prefix="repo")
    keys = [f"data/{i % 256:02x}/{i:06d}" for i in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: b.put(k, k.encode()), keys))
    calls = []
    b._client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
    listed = list(b.list("data/"))
    assert sorted(i.key for i in listed) == sorted(keys)
    assert len(calls) == 2  # S3 pages at 1000 keys: the listing followed the continuation token
    assert {i.key for i in b.list("data/0a/")} == {k for k in keys if k.startswith("data/0a/")}


def test_prefixes_isolate_repositories_in_one_bucket(moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    a = moto_s3.backend(bucket, "org-a/vault")
    b = moto_s3.backend(bucket, "org-b/vault")
    a.put("config", b"a")
    b.put("config", b"b")
    assert a.get("config") == b"a" and b.get("config") == b"b"
    assert [i.key for i in a.list()] == ["config"]
    keys = [o["Key"] for o in moto_s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["org-a/vault/config", "org-b/vault/config"]


def small_parts(moto_s3: MotoS3, **kw) -> S3Backend:
    return moto_s3.backend(multipart_threshold=5 * MiB, part_size=5 * MiB, **kw)


def test_multipart_upload_of_a_large_stream(moto_s3: MotoS3) -> None:
    b = small_parts(moto_s3)
    data = os.urandom(11 * MiB + 3)
    b.put_stream("data/ab/big", io.BytesIO(data))  # size unknown: read to EOF
    assert b.get("data/ab/big") == data
    assert b.get("data/ab/big", 5 * MiB - 2, 4) == data[5 * MiB - 2 : 5 * MiB + 2]  # across a part boundary
    head = moto_s3.client().head_object(Bucket=b.bucket, Key="data/ab/big")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: it really was a multipart upload
    with b.open("data/ab/big") as f:
        assert f.read(MiB) == data[:MiB]


def test_multipart_create_only_conflict_aborts_the_upload(moto_s3: MotoS3) -> None:
    b = small_parts(moto_s3)
    other = moto_s3.backend(b.bucket)

    class RacingStream(io.RawIOBase):
        """Another writer creates the key while our parts are uploading."""

        def __init__(self) -> None:
            self.left = 11 * MiB

        def read(self, n: int = -1) -> bytes:
            if self.left == 6 * MiB:
                other.put("data/ab/race", b"the other writer")
            n = min(n if n >= 0 else self.left, self.left, MiB)
            self.left -= n
            return b"z" * n

    with pytest.raises(ObjectExists, match="data/ab/race"):
        b.put_stream("data/ab/race", RacingStream(), 11 * MiB)
    assert b.get("data/ab/race") == b"the other writer"
    assert moto_s3.client().list_multipart_uploads(Bucket=b.bucket).get("Uploads", []) == []


def test_multipart_size_mismatch_aborts(moto_s3: MotoS3) -> None:
    b = small_parts(moto_s3)
    with pytest.raises(BackendError, match="ended after"):
        b.put_stream("data/ab/short", io.BytesIO(b"q" * (6 * MiB)), 7 * MiB)
    assert not b.exists("data/ab/short")
    assert moto_s3.client().list_multipart_uploads(Bucket=b.bucket).get("Uploads", []) == []


def test_cleanup_aborts_stale_multipart_uploads(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(prefix="repo")
    c = moto_s3.client()
    c.create_multipart_upload(Bucket=b.bucket, Key="repo/data/ab/crashed")
    c.create_multipart_upload(Bucket=b.bucket, Key="elsewhere/not-ours")
    # moto reports every upload as initiated in 2010, so "recent" means "younger than 100 years" here.
    assert b.cleanup(older_than=100 * 365 * 86400) == 0  # too recent: may be a live writer
    assert b.cleanup(older_than=3600) == 1
    left = [u["Key"] for u in c.list_multipart_uploads(Bucket=b.bucket).get("Uploads", [])]
    assert left == ["elsewhere/not-ours"]


def _refuse_conditional(b: S3Backend) -> list[str]:
    """Make the store behave like one without If-None-Match support (HTTP 501)."""
    seen: list[str] = []
    real = b._client.put_object

    def put_object(**kw):
        seen.append("conditional" if "IfNoneMatch" in kw else "plain")
        if "IfNoneMatch" in kw:
            raise ClientError(
                {
                    "Error": {"Code": "NotImplemented", "Message": "If-None-Match"},
                    "ResponseMetadata": {"HTTPStatusCode": 501},
                },
                "PutObject",
            )
        return real(**kw)

    b._client.put_object = put_object  # type: ignore[method-assign]
    return seen


def test_falls_back_to_head_then_put_when_conditional_writes_are_unsupported(moto_s3: MotoS3, caplog) -> None:
    b = moto_s3.backend()
    seen = _refuse_conditional(b)
    b.put("k1", b"one")
    b.put("k2", b"two")
    assert seen == ["conditional", "plain", "plain"]  # detected once, then no more conditional tries
    assert "not race-free" in caplog.text
    with pytest.raises(ObjectExists):
        b.put("k1", b"again")  # HEAD still catches the sequential case
    assert b.get("k1") == b"one"


def test_conditional_writes_on_refuses_to_fall_back(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(conditional_writes="on")
    _refuse_conditional(b)
    with pytest.raises(BackendError, match="NotImplemented"):
        b.put("k1", b"one")


def test_conditional_writes_off_uses_head(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(conditional_writes="off")
    seen = _refuse_conditional(b)
    b.put("k1", b"one")
    with pytest.raises(ObjectExists):
        b.put("k1", b"two")
    assert seen == ["plain"]


class _EmptyRaw:
    """The raw body botocore expects on a short-circuited response."""

    def stream(self, **kw):
        yield b""


def _status(request, code: int) -> AWSResponse:
    return AWSResponse(request.url, code, {}, _EmptyRaw())


def test_throttling_and_5xx_are_retried(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(max_attempts=4)
    failures = {"left": 2}

    def flaky(request, **kw):
        if failures["left"] > 0:
            failures["left"] -= 1
            return _status(request, 503)
        return None  # send for real

    b._client.meta.events.register("before-send.s3.PutObject", flaky)
    b.put("k", b"made it")
    assert failures["left"] == 0
    assert b.get("k") == b"made it"


def test_persistent_5xx_becomes_a_clear_error(moto_s3: MotoS3) -> None:
    b = moto_s3.backend(max_attempts=2)
    b._client.meta.events.register("before-send.s3.GetObject", lambda request, **kw: _status(request, 500))
    b.put("k", b"x")
    with pytest.raises(BackendError, match="k"):
        b.get("k")


def test_unreachable_endpoint_fails_fast_with_a_clear_error(moto_s3: MotoS3) -> None:
    port = free_port()  # nothing listens there
    b = S3Backend("bucket", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", **FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(BackendError, match=rf"S3 unreachable at http://127.0.0.1:{port} after 4 attempts"):
        b.put("k", b"x")
    assert time.monotonic() - started < 15


def test_missing_bucket_is_named(moto_s3: MotoS3) -> None:
    b = moto_s3.backend("no-such-bucket-here")
    with pytest.raises(BackendError, match="no-such-bucket-here"):
        list(b.list())


def test_credentials_file_must_be_private(moto_s3: MotoS3, tmp_path) -> None:
    creds = tmp_path / "s3-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI\n")
    os.chmod(creds, 0o644)
    url = moto_s3.url(moto_s3.new_bucket())
    with pytest.raises(BackendError, match="readable by other users"):
        from_url(url, credentials_file=creds)
    os.chmod(creds, 0o600)
    b = from_url(url, credentials_file=creds, **FAST_RETRY)
    b.put("k", b"x")
    assert b._client._request_signer._credentials.access_key == "AKIDEXAMPLE"  # the file's, not the env's
    assert "wJalrXUtnFEMI" not in b.url and "AKIDEXAMPLE" not in repr(b)


def test_a_download_cut_mid_body_is_retried(moto_s3: MotoS3) -> None:
    from botocore.exceptions import ResponseStreamingError

    b = moto_s3.backend()
    b.put("k", b"whole object")
    real = b._client.get_object
    cuts = {"left": 1}

    class CutBody:
        def read(self, *a):
            raise ResponseStreamingError(error="connection reset mid-body")

        def close(self) -> None:
            pass

    def get_object(**kw):
        if cuts["left"]:
            cuts["left"] -= 1
            return {"Body": CutBody()}
        return real(**kw)

    b._client.get_object = get_object  # type: ignore[method-assign]
    assert b.get("k") == b"whole object"
    cuts["left"] = 10  # more cuts than retries: a clear error, not a hang
    with pytest.raises(BackendError, match="reading k from s3://"):
        b.get("k")


def test_a_put_whose_acknowledgement_was_lost_succeeds_on_retry(moto_s3: MotoS3) -> None:
    """The PUT lands, the connection drops before the answer, the retry meets If-None-Match:
    the backend must see its own bytes there and succeed, not report a conflict."""
    from botocore.exceptions import ConnectionClosedError

    b = moto_s3.backend()
    real = b._client.put_object
    calls = {"n": 0}

    def lossy_put(**kw):
        calls["n"] += 1
        real(**kw)
        if calls["n"] == 1:
            raise ConnectionClosedError(endpoint_url=moto_s3.endpoint_url)
        return {}

    b._client.put_object = lossy_put  # type: ignore[method-assign]
    b.put("data/ab/pack", b"pack bytes")
    assert calls["n"] == 2 and b.get("data/ab/pack") == b"pack bytes"
    with pytest.raises(ObjectExists):
        b.put("data/ab/pack", b"other bytes")


def test_multipart_create_only_is_idempotent(moto_s3: MotoS3) -> None:
    b = small_parts(moto_s3)
    data = os.urandom(11 * MiB)
    b.put_stream("data/ab/big", io.BytesIO(data), len(data))
    b.put_stream("data/ab/big", io.BytesIO(data), len(data))  # same bytes: fine
    other = bytearray(data)
    other[7 * MiB] ^= 1
    with pytest.raises(ObjectExists):
        b.put_stream("data/ab/big", io.BytesIO(bytes(other)), len(other))
    assert b.get("data/ab/big") == data
    assert moto_s3.client().list_multipart_uploads(Bucket=b.bucket).get("Uploads", []) == []
