"""Cursors: committed on every set, restored by a new process, replaced not duplicated."""

from __future__ import annotations

import pytest

from dingvault.catalog import Catalog, CatalogInputError


def test_cursor_survives_a_restart(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        assert catalog.get_cursor("approvals", "PROC-1") is None
        run = catalog.start_run("full", ["approvals"])
        for page in range(3):
            catalog.set_cursor("approvals", "PROC-1", {"cursor": page, "window": [1, 2]}, run)
        # "Killed" here: no finish_run, no close.
    with Catalog.open(catalog_url) as catalog:  # a new process
        assert catalog.get_cursor("approvals", "PROC-1") == {"cursor": 2, "window": [1, 2]}
        (info,) = catalog.list_cursors("approvals")
        assert (info.container_key, info.run_id) == ("PROC-1", 1)
        assert info.updated_at.tzinfo is not None


def test_cursors_are_per_collector_and_container(catalog: Catalog) -> None:
    catalog.set_cursor("files", "space-1", {"nextToken": "a"})
    catalog.set_cursor("files", "space-2", {"nextToken": "b"})
    catalog.set_cursor("todos", "", {"nextToken": "c"})
    assert catalog.get_cursor("files", "space-2") == {"nextToken": "b"}
    assert catalog.get_cursor("todos") == {"nextToken": "c"}
    assert [c.container_key for c in catalog.list_cursors("files")] == ["space-1", "space-2"]
    assert len(catalog.list_cursors()) == 3
    assert catalog.delete_cursor("files", "space-1") is True
    assert catalog.delete_cursor("files", "space-1") is False
    assert catalog.get_cursor("files", "space-1") is None


@pytest.mark.parametrize(
    ("collector", "key", "state"),
    [
        ("", "c", {}),
        ("files", "c", ["not", "a", "mapping"]),
        ("files", "c", {"when": object()}),
        ("files", None, {}),
    ],
)
def test_bad_cursor_input(catalog: Catalog, collector: str, key: str, state: dict) -> None:
    with pytest.raises(CatalogInputError):
        catalog.set_cursor(collector, key, state)
    assert catalog.list_cursors() == []
