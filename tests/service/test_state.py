"""The service's durable state: the event inbox dedupes and survives a reopen; holds reach prune."""

from __future__ import annotations

from dingvault.service.state import ServiceHolds, ServiceState
from dingvault.vault.holds import HoldProvider, held_snapshots


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


def test_offboarding_holds_are_a_hold_provider_until_they_expire(tmp_path):
    state = ServiceState.in_home(tmp_path)
    now = [1000.0]
    holds = ServiceHolds(state, clock=lambda: now[0])
    assert isinstance(holds, HoldProvider)
    state.add_hold("offboarding", "user/u1", 2000.0, ["snapA", "snapB"], {"userid": "u1"})
    state.add_hold("offboarding", "user/u2", 5000.0, ["snapC"], {"userid": "u2"})
    assert held_snapshots(holds) == {"snapA", "snapB", "snapC"}
    now[0] = 3000.0
    assert held_snapshots(holds) == {"snapC"}
    assert [h.summary["userid"] for h in state.holds()] == ["u1", "u2"]
