"""The replica registry: add / list / remove, validation, persistence."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from dingvault.vault.replicas import Replica, ReplicaError, ReplicaRegistry


def test_add_list_remove_persists(tmp_path) -> None:
    reg = ReplicaRegistry.in_home(tmp_path)
    assert reg.list() == []
    hk = Replica(
        "hk-s3", "s3://bkt/vault?endpoint_url=https://oss.example&region=hk", "hk", ("public", "internal")
    )
    usb = Replica("usb", str(tmp_path / "usb"), "mo")
    reg.add(hk)
    reg.add(usb)
    again = ReplicaRegistry(tmp_path / "replicas.json")  # a fresh reader sees the same thing
    assert again.list() == [hk, usb]
    assert again.get("usb").levels == ("public", "internal", "confidential")
    assert again.remove("hk-s3") == hk
    assert [r.name for r in ReplicaRegistry.in_home(tmp_path).list()] == ["usb"]
    assert stat.S_IMODE(os.stat(tmp_path / "replicas.json").st_mode) == 0o600
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".replicas-")]  # no temp files left


def test_levels_are_canonical_and_checked() -> None:
    r = Replica("a", "/x", levels=("Confidential", "public", "public"))
    assert r.levels == ("public", "confidential")
    assert r.allows("public") and not r.allows("internal")
    with pytest.raises(ReplicaError, match="unknown level"):
        Replica("a", "/x", levels=("secret",))
    with pytest.raises(ReplicaError, match="unknown level"):
        Replica("a", "/x", levels=("meta",))
    with pytest.raises(ReplicaError, match="at least one level"):
        Replica("a", "/x", levels=())


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "a" * 64, "sp ace", "../x"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ReplicaError, match="invalid replica name"):
        Replica(name, "/x")


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIA:secret@bucket/p",
        "s3://bucket/p?aws_access_key_id=AKIA",
        "s3://bucket/p?security_token=abc",
    ],
)
def test_credentials_in_url_are_refused(url: str, tmp_path) -> None:
    with pytest.raises(ReplicaError, match="credentials must not be in a replica URL") as info:
        Replica("r", url)
    assert "AKIA" not in str(info.value) and "secret" not in str(info.value).split("(")[1].split(")")[0]
    assert not (tmp_path / "replicas.json").exists()


def test_unknown_scheme_refused() -> None:
    with pytest.raises(ReplicaError, match="unsupported replica URL scheme"):
        Replica("r", "ftp://host/x")


def test_relative_paths_refused() -> None:
    with pytest.raises(ReplicaError, match="must be absolute"):
        Replica("r", "backups/vault")


def test_duplicates_refused_unless_replacing(tmp_path) -> None:
    reg = ReplicaRegistry.in_home(tmp_path)
    reg.add(Replica("a", "/x"))
    with pytest.raises(ReplicaError, match="already exists"):
        reg.add(Replica("a", "/y"))
    with pytest.raises(ReplicaError, match="already uses"):
        reg.add(Replica("b", "/x"))
    reg.add(Replica("a", "/y", region="mo"), replace=True)
    assert reg.get("a") == Replica("a", "/y", region="mo")
    with pytest.raises(ReplicaError, match="no replica named 'zz'"):
        reg.get("zz")
    with pytest.raises(ReplicaError, match="no replica named"):
        reg.remove("zz")


def test_concurrent_adds_lose_nothing(tmp_path) -> None:
    def add(i: int) -> None:
        ReplicaRegistry.in_home(tmp_path).add(Replica(f"r{i}", f"/srv/r{i}"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.name for r in ReplicaRegistry.in_home(tmp_path).list()) == sorted(
        f"r{i}" for i in range(12)
    )


def test_damaged_registry_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "replicas.json").write_text("{not json")
    with pytest.raises(ReplicaError, match="not valid JSON"):
        ReplicaRegistry.in_home(tmp_path).list()
    (tmp_path / "replicas.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ReplicaError, match="unknown format"):
        ReplicaRegistry.in_home(tmp_path).list()
    (tmp_path / "replicas.json").write_text(json.dumps({"version": 1, "replicas": [{"name": "x"}]}))
    with pytest.raises(ReplicaError, match="malformed replica entry"):
        ReplicaRegistry.in_home(tmp_path).list()
