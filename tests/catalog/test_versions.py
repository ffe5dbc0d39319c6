"""record_version(s): new / changed / unchanged, idempotence, fields, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dingvault.catalog import (
    Catalog,
    CatalogInputError,
    CatalogStateError,
    VersionRecord,
)
from dingvault.catalog.schema import items, versions


def _version_rows(catalog: Catalog) -> int:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(versions)).scalar_one()


def test_new_then_unchanged_then_changed(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    assert catalog.record_version("approval", "P1", "hash-a", "2024-01-01", run_id=run) == "new"
    assert catalog.record_version("approval", "P1", "hash-a", "2024-01-01", run_id=run) == "unchanged"
    assert catalog.record_version("approval", "P1", "hash-b", "2024-02-01", run_id=run) == "changed"
    history = catalog.item_versions("approval", "P1")
    assert [(h.seq, h.content_hash, h.version_key) for h in history] == [
        (1, "hash-a", "2024-01-01"),
        (2, "hash-b", "2024-02-01"),
    ]
    item = catalog.get_item("approval", "P1")
    assert item is not None
    assert item.latest_version_id == history[-1].id
    assert item.version_count == 2
    assert item.last_seen_run_id == run


def test_rerun_after_crash_never_duplicates(catalog: Catalog) -> None:
    page = [
        VersionRecord("file", f"space1/d{i}", f"h{i}", version_key=i, container="space1") for i in range(50)
    ]
    assert catalog.record_versions(page) == ["new"] * 50
    # The process died after the commit but before saving its cursor: the page is replayed.
    assert catalog.record_versions(page) == ["unchanged"] * 50
    assert catalog.record_versions(page, batch_size=7) == ["unchanged"] * 50
    assert _version_rows(catalog) == 50


def test_same_hash_with_other_metadata_is_still_unchanged(catalog: Catalog) -> None:
    catalog.record_version("todo", "T1", "h", "v1", {"title": "first"})
    assert (
        catalog.record_version("todo", "T1", "h", "v2", {"title": "other"}, level="confidential")
        == "unchanged"
    )
    (only,) = catalog.item_versions("todo", "T1")
    assert (only.version_key, only.title, only.level) == ("v1", "first", "internal")


def test_revert_to_earlier_content_is_a_new_version(catalog: Catalog) -> None:
    outcomes = [catalog.record_version("doc", "D", h) for h in ("A", "B", "A")]
    assert outcomes == ["new", "changed", "changed"]
    assert [v.content_hash for v in catalog.item_versions("doc", "D")] == ["A", "B", "A"]


def test_batch_with_the_same_item_several_times(catalog: Catalog) -> None:
    batch = [
        VersionRecord("user", "u1", "h1"),
        VersionRecord("user", "u1", "h1"),
        VersionRecord("user", "u1", "h2"),
        VersionRecord("user", "u2", "x"),
        VersionRecord("user", "u1", "h2"),
    ]
    assert catalog.record_versions(batch) == ["new", "unchanged", "changed", "new", "unchanged"]
    assert [v.seq for v in catalog.item_versions("user", "u1")] == [1, 2]
    item = catalog.get_item("user", "u1")
    assert item is not None and item.version_count == 2


def test_fields_attachments_and_levels_are_stored(catalog: Catalog) -> None:
    created = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))  # Macau time
    catalog.record_version(
        "approval",
        "P9",
        "blob-9",
        "1709256600000",
        {
            "title": "請假申請 合約",
            "owner_userid": "manager01",
            "department": 12345,
            "created_at": created,
            "modified_at": 1709260200000,  # epoch ms, DingTalk's convention
            "template": "PROC-1",
        },
        ["blob-att-1", {"blob_id": "blob-att-2", "name": "合同.pdf", "size": 42}],
        "confidential",
        size=2048,
        container="PROC-1",
    )
    (v,) = catalog.item_versions("approval", "P9")
    assert v.title == "請假申請 合約"
    assert v.owner_userid == "manager01"
    assert v.department == "12345"
    assert v.source_created_at == datetime(2024, 3, 1, 1, 30, tzinfo=UTC)
    assert v.source_modified_at == datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    assert v.source_created_at.tzinfo is not None
    assert v.extra == {"template": "PROC-1"}
    assert v.attachments == [
        {"blob_id": "blob-att-1"},
        {"blob_id": "blob-att-2", "name": "合同.pdf", "size": 42},
    ]
    assert (v.level, v.size) == ("confidential", 2048)
    item = catalog.get_item("approval", "P9")
    assert item is not None and item.container == "PROC-1"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (VersionRecord("", "id", "h"), "kind"),
        (VersionRecord("k", "", "h"), "source_id"),
        (VersionRecord("k", "id", ""), "content_hash"),
        (VersionRecord("k", "x" * 600, "h"), "source_id"),
        (VersionRecord("k", "id\x00", "h"), "NUL"),
        (VersionRecord("k", "id", "h", level="secret"), "level"),
        (VersionRecord("k", "id", "h", captured_at=datetime(2024, 1, 1)), "timezone"),
        (VersionRecord("k", "id", "h", fields={"created_at": "yesterday"}), "ISO 8601"),
        (VersionRecord("k", "id", "h", fields={"created_at": "2024-01-01T00:00:00"}), "timezone"),
        (VersionRecord("k", "id", "h", fields={"weird": object()}), "JSON"),
        (VersionRecord("k", "id", "h", fields=["title"]), "mapping"),  # type: ignore[arg-type]
        (VersionRecord("k", "id", "h", attachments="blob"), "attachments"),
        (VersionRecord("k", "id", "h", attachments=[{"name": "no id"}]), "blob_id"),
        (VersionRecord("k", "id", "h", size=-1), "size"),
        (VersionRecord("k", "id", "h", run_id=0), "run_id"),
        (VersionRecord("k", "id", "h", version_key=1.5), "version_key"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_refused_before_any_write(catalog: Catalog, record: VersionRecord, message: str) -> None:
    good = VersionRecord("k", "good", "h")
    with pytest.raises(CatalogInputError, match=message):
        catalog.record_versions([good, record])
    # The whole batch was refused: not even the good record was written.
    assert catalog.get_item("k", "good") is None


def test_unknown_run_is_a_state_error_and_writes_nothing(catalog: Catalog) -> None:
    with pytest.raises(CatalogStateError):
        catalog.record_versions([VersionRecord("k", "a", "h"), VersionRecord("k", "b", "h", run_id=999)])
    assert catalog.get_item("k", "a") is None
    with catalog.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one() == 0


def test_many_batches_and_latest_version_keys(catalog: Catalog) -> None:
    records = [VersionRecord("file", f"f{i:05d}", f"h{i}", version_key=f"k{i}") for i in range(2500)]
    outcomes = catalog.record_versions(records, batch_size=1000)
    assert outcomes.count("new") == 2500
    keys = catalog.latest_version_keys("file", ["f00001", "f02499", "missing"])
    assert keys == {"f00001": "k1", "f02499": "k2499"}
    latest = list(catalog.iter_latest_versions("file"))
    assert len(latest) == 2500
    assert latest[10].source_id == "f00010" and latest[10].content_hash == "h10"


def test_iter_latest_versions_pages(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._PAGE", 3)
    catalog.record_versions([VersionRecord("user", f"u{i}", "a") for i in range(8)])
    catalog.record_version("user", "u3", "b")
    catalog.record_version("dept", "d1", "a")
    catalog.mark_deleted("user", ["u5"], None)
    got = {(v.source_id, v.content_hash) for v in catalog.iter_latest_versions("user")}
    assert got == {(f"u{i}", "b" if i == 3 else "a") for i in range(8) if i != 5}
    assert len(list(catalog.iter_latest_versions())) == 8
    assert len(list(catalog.iter_latest_versions(include_deleted=True))) == 9


def test_crash_inside_a_batch_leaves_no_half_written_versions(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.record_versions([VersionRecord("doc", f"d{i}", "v1") for i in range(10)])

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed after the versions were inserted")

    # The versions of the batch are written, then the process "dies" before the items point at them.
    monkeypatch.setattr(type(catalog._bulk), "update_items", crash)
    with pytest.raises(RuntimeError):
        catalog.record_versions([VersionRecord("doc", f"d{i}", "v2") for i in range(10)])
    monkeypatch.undo()
    assert _version_rows(catalog) == 10  # the whole batch rolled back
    assert all(catalog.get_item("doc", f"d{i}").version_count == 1 for i in range(10))  # type: ignore[union-attr]
    # The rerun records each change exactly once.
    assert (
        catalog.record_versions([VersionRecord("doc", f"d{i}", "v2") for i in range(10)]) == ["changed"] * 10
    )
    assert _version_rows(catalog) == 20


def test_iter_latest_blobs_is_the_manifest_view_of_the_latest_versions(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._PAGE", 3)
    run = catalog.start_run("full")
    catalog.record_versions(
        [
            VersionRecord(
                "file",
                f"f{i}",
                f"h{i}",
                attachments=[{"blob_id": f"b{i}", "blob_ids": [f"b{i}", f"c{i}"], "name": "甲.pdf"}]
                if i % 2
                else (),
                run_id=run,
            )
            for i in range(7)
        ]
        + [VersionRecord("user", f"u{i}", f"uh{i}", run_id=run) for i in range(3)]
    )
    catalog.record_versions([VersionRecord("file", "f1", "h1-v2", attachments=["x1"], run_id=run)])
    catalog.mark_deleted("user", ["u1"], run)
    expected = [
        (v.kind, v.source_id, v.seq, v.content_hash, v.attachments) for v in catalog.iter_latest_versions()
    ]
    got = list(catalog.iter_latest_blobs())
    assert got == expected
    assert len(got) == 9 and ("user", "u1") not in {(k, s) for k, s, *_ in got}
    by_id = {s: (seq, h, atts) for _k, s, seq, h, atts in got}
    assert by_id["f1"] == (2, "h1-v2", [{"blob_id": "x1"}])
    assert by_id["f3"][2] == [{"blob_id": "b3", "blob_ids": ["b3", "c3"], "name": "甲.pdf"}]
    assert by_id["f0"][2] == []


def test_latest_states_are_what_change_detection_compares(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._IN_CHUNK", 2)  # several statements
    run = catalog.start_run("full")
    att = {"blob_id": "b", "blob_ids": ["b", "c"], "identity": "id-1", "size": 3}
    catalog.record_versions(
        [
            VersionRecord("file", "a", "ha", version_key="k1", attachments=[att], run_id=run),
            VersionRecord("file", "b", "hb", run_id=run),
            VersionRecord("file", "c", "hc", version_key=7, run_id=run),
            VersionRecord("user", "a", "hu", run_id=run),
        ]
    )
    catalog.record_versions([VersionRecord("file", "b", "hb2", version_key="k2", run_id=run)])
    catalog.mark_deleted("file", ["c"], run)
    got = {s[0]: s[1:] for s in catalog.latest_states("file", ["c", "a", "b", "missing", "a"])}
    assert got == {
        "a": (False, "k1", "ha", [att]),
        "b": (False, "k2", "hb2", []),
        "c": (True, "7", "hc", []),
    }
    assert list(catalog.latest_states("file", [])) == []
    with pytest.raises(CatalogInputError):
        list(catalog.latest_states("", ["a"]))
