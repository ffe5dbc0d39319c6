"""The service's durable state: the event inbox dedupes and survives a reopen; holds reach prune."""

from __future__ import annotations

from datetime import UTC, datetime

from dingvault.catalog import Catalog, CatalogHolds
from dingvault.service.state import ServiceHolds, ServiceState, migrate_legacy_holds, service_holds_in_home
from dingvault.vault.holds import HoldProvider, held_snapshots


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_an_event_is_durable_once_and_a_redelivery_is_dropped(tmp_path):
    state = ServiceState.in_home(tmp_path)
    assert state.add_event("ev1", "event", "bpms_instance_change", 1000, {"processInstanceId": "p1"}) is True
    assert state.add_event("ev1", "event", "bpms_instance_change", 1000, {"processInstanceId": "p1"}) is False
    assert state.add_event("ev2", "event", "user_add_org", None, {"userId": ["u1"]}) is True
    state.close()
    # What was ACKed must still be there after a crash/restart: reopen the file.
    again = ServiceState.in_home(tmp_path)
    pending = again.pending()
    assert [e.id for e in pending] == ["ev1", "ev2"]
    assert pending[0].data == {"processInstanceId": "p1"} and pending[0].born_ms == 1000
    again.mark_done(["ev1"])
    assert [e.id for e in again.pending()] == ["ev2"]
    # A handled event is still known: a late redelivery is not queued again.
    assert again.add_event("ev1", "event", "bpms_instance_change", 1000, {}) is False
    assert again.counts() == {"done": 1, "pending": 1}


def test_failed_attempts_are_counted_and_give_up_after_the_limit(tmp_path):
    state = ServiceState.in_home(tmp_path)
    state.add_event("ev", "event", "todo_task_create", None, {})
    assert state.mark_failed(["ev"], "boom", max_attempts=3) == []
    assert state.mark_failed(["ev"], "boom", max_attempts=3) == []
    assert state.pending()[0].attempts == 2
    assert state.mark_failed(["ev"], "boom", max_attempts=3) == ["ev"]
    assert state.pending() == []
    assert state.event_status("ev") == "failed"


def test_kv_values_survive_a_reopen(tmp_path):
    state = ServiceState.in_home(tmp_path)
    state.put("stream_down_since", 123.5)
    state.put("stream_down_since", 124.5)
    state.close()
    assert ServiceState.in_home(tmp_path).get("stream_down_since") == 124.5
    assert ServiceState.in_home(tmp_path).get("missing", "d") == "d"


def _catalog(tmp_path):
    return Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}")


def test_catalog_holds_are_a_hold_provider_until_they_expire(tmp_path):
    catalog = _catalog(tmp_path)
    now = [1000.0]
    holds = ServiceHolds(CatalogHolds(catalog), clock=lambda: now[0])
    assert isinstance(holds, HoldProvider)
    CatalogHolds(catalog).add("offboarding", "user/u1", _utc(2000.0), ["snapA", "snapB"], {"userid": "u1"})
    CatalogHolds(catalog).add("offboarding", "user/u2", _utc(5000.0), ["snapC"], {"userid": "u2"})
    assert held_snapshots(holds) == {"snapA", "snapB", "snapC"}
    now[0] = 3000.0
    assert held_snapshots(holds) == {"snapC"}


def test_state_db_holds_are_honoured_then_moved_into_the_catalog_once(tmp_path):
    # An installation of an older release: its offboarding holds are in the state DB only.
    state = ServiceState.in_home(tmp_path)
    state.add_hold("offboarding", "user/u1", 2000.0, ["snapA"], {"userid": "u1"})
    state.add_hold("offboarding", "user/u2", 5000.0, ["snapC"], {"userid": "u2", "名": "陳"})
    catalog = _catalog(tmp_path)
    store = CatalogHolds(catalog)
    holds = ServiceHolds(store, state, clock=lambda: 1000.0)
    assert held_snapshots(holds) == {"snapA", "snapC"}  # before the move: read from the state DB
    assert migrate_legacy_holds(state, store) == 2
    assert migrate_legacy_holds(state, store) == 0  # once
    moved = store.list_holds()
    assert [(h.subject, h.snapshot_ids, h.until) for h in moved] == [
        ("user/u1", ("snapA",), _utc(2000.0)),
        ("user/u2", ("snapC",), _utc(5000.0)),
    ]
    assert moved[1].summary == {"userid": "u2", "名": "陳"}
    assert [h.created_at for h in moved] == [_utc(h.created) for h in state.legacy_holds()]
    # From now on the catalog is the only source: a hold released there is no longer held.
    store.release(moved[0].id)
    assert held_snapshots(holds) == {"snapC"}
    assert len(state.legacy_holds()) == 2  # nothing deleted from the old file


def test_an_interrupted_move_does_not_duplicate_holds(tmp_path):
    state = ServiceState.in_home(tmp_path)
    state.add_hold("offboarding", "user/u1", 2000.0, ["snapA"], {})
    state.add_hold("offboarding", "user/u2", 2000.0, ["snapB"], {})
    store = CatalogHolds(_catalog(tmp_path))
    # The first hold reached the catalog, then the process died before the "moved" flag.
    first = state.legacy_holds()[0]
    store.add(
        first.label, first.subject, _utc(first.until), first.snapshot_ids, created_at=_utc(first.created)
    )
    assert migrate_legacy_holds(state, store) == 1
    assert [h.subject for h in store.list_holds()] == ["user/u1", "user/u2"]


def test_service_holds_in_home_reads_the_homes_catalog(tmp_path):
    from dingvault.backup.session import init_home
    from dingvault.home import open_home
    from dingvault.vault.keys import FAST_KDF_FOR_TESTS

    home = open_home(tmp_path / "home")
    assert service_holds_in_home(home.path) is None  # no catalog, no service state
    init_home(home, "pass phrase", kdf=FAST_KDF_FOR_TESTS)
    with Catalog.open(home.load_settings().catalog_url) as catalog:
        CatalogHolds(catalog).add("offboarding", "user/u1", None, ["snapX"])
    holds = service_holds_in_home(home.path)
    assert holds is not None and held_snapshots(holds) == {"snapX"}
