"""The real store (vault + SQLite catalog) on hostile records, and the catalog export/rebuild round trip."""

from __future__ import annotations

import asyncio

from dingvault.backup.catalog_restore import rebuild_from_vault
from dingvault.backup.engine import BackupEngine
from dingvault.backup.payload import decode_version
from dingvault.backup.session import init_home, open_session
from dingvault.backup.vault_store import VaultCatalogStore
from dingvault.home import open_home
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

from .fakes import ScriptedCollector, att, make_item


def test_hostile_fields_ids_and_keys_are_stored_and_recorded(tmp_path):
    home = open_home(tmp_path / "home")
    init_home(home, "pw", kdf=FAST_KDF_FOR_TESTS)
    items = [
        make_item("file", f"s/{i}", "1", attachments=[att(f"f{i}", name="../../x\x00\u202e.txt")])
        for i in range(3)
    ]
    items[0].fields.update(
        title="title\x00with NUL" + "長" * 20000, owner={"not": "a string"}, created="garbage"
    )
    items[1].version_key = "k" * 1000  # longer than the catalog's column
    items[2].source_id = "x" * 600  # longer than the catalog allows: recorded as a failure, not a crash
    coll = ScriptedCollector("files", "files", [items], contents={f"f{i}": b"data %d" % i for i in range(3)})
    with open_session(home, "pw") as s:
        store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
        stats = asyncio.run(BackupEngine(store, [coll]).run("full"))
        store.close()
        assert stats.new["file"] == 2
        errors = s.catalog.run_errors(s.catalog.list_runs(limit=1)[0].id)
        assert [e.error_class for e in errors] == ["CatalogInputError"]
        info = s.catalog.get_item("file", "s/0")
        (version,) = s.catalog.item_versions("file", "s/0")
        assert "\x00" not in (version.title or "")
        doc = decode_version(s.vault.get_blob(bytes.fromhex(version.content_hash)))
        assert doc["fields"]["title"].startswith("title\x00with NUL")  # the original is kept verbatim
        assert doc["attachments"][0]["name"] == "../../x\x00\u202e.txt"
        assert (
            "/" not in doc["attachments"][0]["safe_name"] and "\x00" not in doc["attachments"][0]["safe_name"]
        )
        assert info is not None and not info.deleted_at_source
        # the long version key still detects "unchanged" on the next run
    again = ScriptedCollector("files", "files", [items[:2]], contents={})
    with open_session(home, "pw") as s:
        store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
        s.catalog.delete_cursor("files", "")
        stats = asyncio.run(BackupEngine(store, [again]).run("full"))
        store.close()
        assert stats.unchanged["file"] == 2 and sum(again.downloads.values()) == 0


def test_catalog_rebuilt_from_the_vault_alone_equals_the_original(tmp_path):
    home = open_home(tmp_path / "home")
    init_home(home, "pw", kdf=FAST_KDF_FOR_TESTS)
    pages = [
        [make_item("approval", f"a{p}{i}", "1", attachments=[att(f"f{p}{i}")]) for i in range(20)]
        for p in range(3)
    ]
    coll = ScriptedCollector(
        "approvals", "approvals", pages, contents={f"f{p}{i}": b"%d" % i for p in range(3) for i in range(20)}
    )
    with open_session(home, "pw") as s:
        store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
        asyncio.run(BackupEngine(store, [coll]).run("full"))
        store.close()
        before = s.catalog.counts_per_kind()
        latest = sorted((v.source_id, v.content_hash) for v in s.catalog.iter_latest_versions())
        cursors = s.catalog.list_cursors()
        target = f"sqlite:///{tmp_path / 'rebuilt.db'}"
        result = rebuild_from_vault(s.vault, target)
    from dingvault.catalog import Catalog

    rebuilt = Catalog.open(target)
    try:
        assert result["rows"]["versions"] == 60
        assert rebuilt.counts_per_kind() == before
        assert sorted((v.source_id, v.content_hash) for v in rebuilt.iter_latest_versions()) == latest
        assert [(c.collector, c.state) for c in rebuilt.list_cursors()] == [
            (c.collector, c.state) for c in cursors
        ]
        assert rebuilt.list_runs(limit=1)[0].status == "succeeded"
    finally:
        rebuilt.close()
