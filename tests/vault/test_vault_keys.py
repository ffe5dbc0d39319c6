"""Key slots: passphrases, the recovery key, passwd, restricted levels, tamper resistance."""

from __future__ import annotations

import orjson
import pytest
from vault_helpers import PASSPHRASE, make_vault

from dingvault.vault import LevelNotAvailable, Vault, VaultError, VaultExists, VaultNotFound, WrongPassphrase
from dingvault.vault.backends import MemoryBackend
from dingvault.vault.keys import FAST_KDF_FOR_TESTS


def test_wrong_passphrase_is_a_clear_error(mem_vault: Vault, cache_dir) -> None:
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        Vault.open(mem_vault.backend, "not it", cache_dir=cache_dir)


def test_recovery_key_opens_with_any_formatting(mem_backend: MemoryBackend, cache_dir) -> None:
    v, recovery = make_vault(mem_backend, cache_dir)
    with v.writer() as w:
        bid = w.put_blob(b"payload", "confidential")
    v.close()
    sloppy = recovery.replace("-", " ").lower()
    v2 = Vault.open(mem_backend, sloppy, cache_dir=cache_dir)
    assert v2.get_blob(bid) == b"payload"
    assert v2.slot is not None and v2.slot.kind == "recovery"


def test_init_twice_and_open_nothing(mem_vault: Vault, cache_dir) -> None:
    with pytest.raises(VaultExists):
        Vault.init(mem_vault.backend, "x", kdf=FAST_KDF_FOR_TESTS, cache_dir=cache_dir)
    with pytest.raises(VaultNotFound, match="no vault"):
        Vault.open(MemoryBackend("empty"), "x", cache_dir=cache_dir)


def test_change_passphrase_rewrites_no_data(mem_vault: Vault, cache_dir) -> None:
    with mem_vault.writer() as w:
        bid = w.put_blob(b"kept", "internal")
    before = {i.key for i in mem_vault.backend.list("data/")}
    mem_vault.change_passphrase("new passphrase", kdf=FAST_KDF_FOR_TESTS)
    assert {i.key for i in mem_vault.backend.list("data/")} == before
    with pytest.raises(WrongPassphrase):
        Vault.open(mem_vault.backend, PASSPHRASE, cache_dir=cache_dir)
    v2 = Vault.open(mem_vault.backend, "new passphrase", cache_dir=cache_dir)
    assert v2.get_blob(bid) == b"kept"


def test_restricted_key_cannot_read_or_write_other_levels(mem_vault: Vault, cache_dir) -> None:
    with mem_vault.writer() as w:
        pub = w.put_blob(b"public notice", "public")
        conf = w.put_blob("salary 薪金 MOP 30000".encode(), "confidential")
    slot = mem_vault.add_key("auditor", levels=["public"], label="auditor", kdf=FAST_KDF_FOR_TESTS)
    assert slot.levels == ("public",)
    v2 = Vault.open(mem_vault.backend, "auditor", cache_dir=cache_dir / "aud")
    assert v2.levels == ("public",)
    assert v2.get_blob(pub) == b"public notice"
    with pytest.raises(LevelNotAvailable, match="confidential"):
        v2.get_blob(conf)
    with v2.writer() as w, pytest.raises(LevelNotAvailable):
        w.put_blob(b"x", "internal")
    # A restricted key cannot grant more than it holds.
    with pytest.raises(VaultError, match="cannot grant"):
        v2.add_key("escalate", levels=["confidential"], kdf=FAST_KDF_FOR_TESTS)


def test_key_list_and_remove_rules(mem_vault: Vault) -> None:
    slots = mem_vault.list_keys()
    assert sorted(s.kind for s in slots) == ["passphrase", "recovery"]
    extra = mem_vault.add_key("second", label="ops", kdf=FAST_KDF_FOR_TESTS)
    assert len(mem_vault.list_keys()) == 3
    mem_vault.remove_key(extra.slot_id)
    assert len(mem_vault.list_keys()) == 2
    with pytest.raises(VaultError, match="in use"):
        mem_vault.remove_key(mem_vault.slot.slot_id)  # type: ignore[union-attr]
    recovery = next(s for s in mem_vault.list_keys() if s.kind == "recovery")
    mem_vault.remove_key(recovery.slot_id)
    # Now the slot in use is the last full one: removing it would lose the vault.
    with pytest.raises(VaultError):
        mem_vault.remove_key(mem_vault.slot.slot_id)  # type: ignore[union-attr]


def test_lowering_the_kdf_cost_in_a_slot_is_detected(mem_vault: Vault, cache_dir) -> None:
    slot = mem_vault.slot
    assert slot is not None
    doc = orjson.loads(mem_vault.backend.get(slot.key))
    doc["kdf"]["t"] = doc["kdf"]["t"] + 1
    mem_vault.backend.put(slot.key, orjson.dumps(doc), overwrite=True)
    for s in mem_vault.list_keys():
        if s.slot_id != slot.slot_id:
            mem_vault.backend.delete(s.key)
    with pytest.raises(WrongPassphrase):
        Vault.open(mem_vault.backend, PASSPHRASE, cache_dir=cache_dir)


def test_no_key_material_in_plaintext(mem_vault: Vault) -> None:
    secrets_ = [mem_vault.material.master, *mem_vault.material.levels.values(), mem_vault.meta_key]
    for info in mem_vault.backend.list(""):
        data = mem_vault.backend.get(info.key)
        for s in secrets_:
            assert s not in data
            assert s.hex().encode() not in data


def test_restricted_key_cannot_prune(mem_vault: Vault, cache_dir) -> None:
    from dingvault.vault import prune

    mem_vault.add_key("ops", levels=["public", "internal"], kdf=FAST_KDF_FOR_TESTS)
    v2 = Vault.open(mem_vault.backend, "ops", cache_dir=cache_dir / "ops")
    with pytest.raises(VaultError, match="every level"):
        prune(v2)
    assert list(mem_vault.backend.list("locks/")) == []
