"""The real store (vault + SQLite catalog) on hostile records, and the catalog export/rebuild round trip."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from dingvault.backup.catalog_restore import rebuild_from_vault
from dingvault.backup.engine import BackupEngine
from dingvault.backup.payload import decode_version
from dingvault.backup.session import init_home, open_session
from dingvault.backup.store_api import Commit
from dingvault.backup.store_api import VersionRecord as StoreVersion
from dingvault.backup.vault_store import VaultCatalogStore
from dingvault.catalog import CatalogError
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
        last = s.catalog.list_runs(limit=1)[0]
        # What set the pace is kept with the run (read back by `status --json` and the benchmark).
        assert last.stats["pipeline"]["in_flight_limit"] == 3000
        assert last.stats["pipeline"]["in_flight_peak"] >= 2
        errors = s.catalog.run_errors(last.id)
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


def _version(store: VaultCatalogStore, kind: str, sid: str, container: str, body: bytes) -> StoreVersion:
    blob = store.put_version(body, "internal")
    return StoreVersion(kind, sid, container, blob, None, {"title": sid}, [], len(body))


def test_a_commit_is_one_catalog_transaction_with_deletions_per_kind(tmp_path, monkeypatch):
    home = open_home(tmp_path / "home")
    init_home(home, "pw", kdf=FAST_KDF_FOR_TESTS)
    with open_session(home, "pw") as s:
        store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
        first = store.start_run("full", ["files"])
        seed = [
            _version(store, "file", f"{c}/{i}", c, b"%s %d" % (c.encode(), i))
            for c in ("s1", "s2")
            for i in range(3)
        ]
        store.durable()
        done = store.commit(first, Commit(versions=seed, cursors={("files", ""): {"page": 1}}))
        assert done.new == {"file": 6}

        second = store.start_run("full", ["files"])
        again = [seed[0], _version(store, "file", "s1/1", "s1", b"s1 1, changed")]
        store.durable()
        done = store.commit(
            second,
            Commit(
                versions=again,
                seen=[("file", "s2/0", "s2")],
                complete=[("file", "s1"), ("file", "s2"), ("file", "s3")],
                cursors={("files", ""): {"page": 2}},
            ),
        )
        assert (done.unchanged, done.changed, done.deleted) == ({"file": 1}, {"file": 1}, {"file": 3})
        assert sorted(s.catalog.live_ids("file")) == ["s1/0", "s1/1", "s2/0"]

        # A commit the catalog refuses half way leaves nothing of itself: not its versions, not its
        # deletion marks, and above all not its cursor.
        third = store.start_run("full", ["files"])
        late = [_version(store, "file", "s3/0", "s3", b"new")]
        store.durable()

        def refuse(conn, values):
            raise sa.exc.OperationalError("INSERT INTO cursors", {}, Exception("disk I/O error"))

        monkeypatch.setattr(s.catalog, "_set_cursor", refuse)
        with pytest.raises(CatalogError):
            store.commit(
                third, Commit(versions=late, complete=[("file", "s2")], cursors={("files", ""): {"page": 3}})
            )
        monkeypatch.undo()
        assert s.catalog.get_cursor("files") == {"page": 2}
        assert s.catalog.get_item("file", "s3/0") is None
        assert sorted(s.catalog.live_ids("file")) == ["s1/0", "s1/1", "s2/0"]
        store.close()


def test_catalog_fields_keep_what_the_columns_accept():
    from dingvault.backup.vault_store import _catalog_fields

    class Name(str):
        pass

    fields = {
        "title": "報銷\x00申請",
        "owner": True,  # not an id: dropped
        "owner_userid": "u1",  # the next key for the same column
        "dept_id": 12,
        "created": "not a time",
        "modified": 1_767_225_600_000,
        "status": Name("DONE"),
        "size": 3.5,
        "type": False,
        "name": "x" * 3000,
        "path": None,
        "sha256": ["not", "kept"],
    }
    assert _catalog_fields(fields) == {
        "title": "報銷\\x00申請",
        "owner_userid": "u1",
        "department": "12",
        "created_raw": "not a time",
        "modified_at": 1_767_225_600_000,
        "status": "DONE",
        "size": 3.5,
        "type": False,
        "name": "x" * 2000,
    }
