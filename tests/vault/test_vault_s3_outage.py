"""S3 unreachable mid-backup: a clear error, a consistent vault, and work resumes when it is back."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("s3fixture", reason="the S3 test fixtures (backends work) are not in this checkout")

from s3fixture import FAST_RETRY, MotoS3  # the moto_s3 fixture comes through conftest
from vault_helpers import PASSPHRASE, make_vault

from dingvault.vault import Vault, VaultError, verify
from dingvault.vault.backends import BackendError
from dingvault.vault.backends.s3 import S3Backend


@pytest.mark.s3
def test_s3_outage_during_writes(moto_s3: MotoS3, tmp_path) -> None:
    server = MotoS3().start()  # our own endpoint, so stopping it disturbs no other test
    try:
        bucket = moto_s3.new_bucket("outage")
        backend = S3Backend(bucket, "v", endpoint_url=server.endpoint_url, region="us-east-1", **FAST_RETRY)
        vault, _ = make_vault(backend, tmp_path / "cache")
        with vault.writer() as w:
            kept = w.put_blob(b"before the outage", "internal")
            sid = w.commit_snapshot([("item/kept", [kept])])
        server.stop()
        with pytest.raises((VaultError, BackendError), match="unreachable"):
            # Opening a writer takes a lock (a PUT): the outage is reported at once, clearly.
            with vault.writer() as w:
                w.put_blob(os.urandom(50_000), "confidential")
        server.start()
        report = verify(vault, read_data=True)
        assert report.ok, [str(e) for e in report.errors]
        assert [r.key for r in vault.records(sid)] == ["item/kept"]
        with vault.writer() as w:
            sid2 = w.commit_snapshot([("item/after", [w.put_blob(b"after the outage", "public")])])
        again = Vault.open(backend, PASSPHRASE, cache_dir=tmp_path / "cache2")
        assert [r.key for r in again.records(sid2)] == ["item/after"]
        again.close()
    finally:
        server.stop()


@pytest.mark.s3
def test_s3_outage_between_packs_and_snapshot(moto_s3: MotoS3, tmp_path) -> None:
    server = MotoS3().start()
    try:
        bucket = moto_s3.new_bucket("outage2")
        backend = S3Backend(bucket, "v", endpoint_url=server.endpoint_url, region="us-east-1", **FAST_RETRY)
        vault, _ = make_vault(backend, tmp_path / "cache")
        w = vault.writer(max_pack_age=None)
        ids = [w.put_blob(os.urandom(30_000), "internal") for _ in range(5)]
        w.flush()
        server.stop()
        with pytest.raises(VaultError, match="unreachable"):
            w.commit_snapshot([(f"item/{i}", [b]) for i, b in enumerate(ids)])
        server.start()
        w.close()
        assert vault.snapshot_ids() == []  # nothing half-committed
        assert verify(vault, read_data=True).ok
    finally:
        server.stop()
