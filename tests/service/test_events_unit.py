"""The listener's pieces without a network: back-off, durable-then-ACK answers, event planning."""

from __future__ import annotations

import asyncio
import random

from dingtalk_stream import AckMessage
from dingtalk_stream.frames import CallbackMessage, EventMessage

from dingvault.service.events import ROBOT_MESSAGE_TOPIC, Backoff, StreamListener
from dingvault.service.state import InboxEvent, ServiceState
from dingvault.service.targeted import family_for, plan_events


def test_backoff_grows_to_the_ceiling_never_zero_and_resets():
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [b.next() for _ in range(10)]
    assert all(d >= 0.25 for d in delays)  # never a tight loop
    assert delays[0] <= 0.5 and max(delays) <= 8.0 and min(delays[5:]) >= 4.0
    b.reset()
    assert b.next() <= 0.5


def _event(event_id: str | None, event_type: str, data: dict) -> EventMessage:
    headers = {"messageId": "m-" + str(event_id), "eventType": event_type, "eventBornTime": "1700000000000",
               "eventCorpId": "dingcorp"}  # fmt: skip
    if event_id:
        headers["eventId"] = event_id
    return EventMessage.from_dict({"headers": headers, "data": __import__("json").dumps(data)})


def test_an_event_is_acked_only_once_it_is_durable(tmp_path):
    state = ServiceState.in_home(tmp_path)
    stored: list[int] = []
    corps: list[str] = []
    listener = StreamListener("k", "s", api_base="http://127.0.0.1:9", state=state,
                              on_stored=lambda: stored.append(1), on_corp=corps.append)  # fmt: skip
    ev = _event("e1", "bpms_instance_change", {"processInstanceId": "p"})
    code, _ = asyncio.run(listener.event_handler.process(ev))
    assert code == AckMessage.STATUS_OK and state.event_status("e1") == "pending" and stored == [1]
    assert corps == ["dingcorp"]
    # Redelivered: ACKed again (DingTalk must stop re-pushing) but not queued twice.
    code, _ = asyncio.run(listener.event_handler.process(ev))
    assert code == AckMessage.STATUS_OK and stored == [1] and listener.duplicates == 1
    # Neither eventId nor messageId: refused (400), nothing stored.
    bare = EventMessage.from_dict({"headers": {"eventType": "x"}, "data": "{}"})
    code, _ = asyncio.run(listener.event_handler.process(bare))
    assert code == AckMessage.STATUS_BAD_REQUEST and [e.id for e in state.pending()] == ["e1"]
    state.close()


def test_a_failing_disk_means_no_ack(tmp_path):
    class BrokenState(ServiceState):
        def add_event(self, *args, **kwargs):  # type: ignore[override]
            raise OSError("disk full")

    listener = StreamListener("k", "s", api_base="http://127.0.0.1:9", state=BrokenState(tmp_path / "s.db"))
    code, _ = asyncio.run(listener.event_handler.process(_event("e1", "user_add_org", {"userId": ["u"]})))
    assert code == AckMessage.STATUS_SYSTEM_EXCEPTION


def test_robot_messages_dedupe_by_msg_id(tmp_path):
    state = ServiceState.in_home(tmp_path)
    listener = StreamListener("k", "s", api_base="http://127.0.0.1:9", state=state)
    handler = listener.callback_handler_map[ROBOT_MESSAGE_TOPIC]
    payload = {"msgId": "msgA", "conversationId": "cid1", "createAt": 1700000000000, "msgtype": "text"}
    for frame_id in ("f1", "f2"):  # the same chat message in two frames
        msg = CallbackMessage.from_dict({"headers": {"messageId": frame_id, "topic": ROBOT_MESSAGE_TOPIC},
                                         "data": __import__("json").dumps(payload)})  # fmt: skip
        code, _ = asyncio.run(handler.process(msg))
        assert code == AckMessage.STATUS_OK
    (only,) = state.pending()
    assert only.id == "msg:msgA" and only.born_ms == 1700000000000 and only.data == payload


def _inbox(i: int, type_: str, data: dict, source: str = "event") -> InboxEvent:
    return InboxEvent(f"e{i}", source, type_, None, 0.0, data, 0)


def test_events_are_planned_as_targeted_fetches_family_runs_and_leavers():
    plan = plan_events([
        _inbox(1, "bpms_instance_change", {"processInstanceId": "p1", "processCode": "PC"}),
        _inbox(2, "bpms_task_change", {"processInstanceId": "p1", "processCode": "PC"}),
        _inbox(3, "bpms_task_change", {}),  # malformed: no instance id
        _inbox(4, ROBOT_MESSAGE_TOPIC, {"msgId": "m", "conversationId": "c"}, source="callback"),
        _inbox(5, "user_leave_org", {"userId": ["u1", "u2"]}),
        _inbox(6, "user_add_org", {"userId": ["u3"]}),
        _inbox(7, "chat_update_title", {"chatId": "chat1"}),
        _inbox(8, "storage_dentry_update", {"spaceId": "s", "dentryId": "d"}),
        _inbox(9, "robot_msg_read", {}),
        _inbox(10, ROBOT_MESSAGE_TOPIC, {"text": "no ids"}, source="callback"),
    ])  # fmt: skip
    assert plan.approvals == {"p1": "PC"}
    assert [m["msgId"] for m in plan.robot_messages] == ["m"]
    # Users and the dentry are read record by record; a new user still refreshes the families
    # whose spaces and groups a person brings (personal drive, department groups).
    assert plan.families == {"files", "groups"}
    assert plan.contacts.users == {"u3"} and set(plan.contacts.leavers) == {"u1", "u2"}
    assert list(plan.dentries) == ["s/d"]
    assert plan.leavers == ["u1", "u2"] and plan.chat_ids == {"chat1"}
    assert plan.ignored == ["e9"] and plan.malformed == ["e3", "e10"]
    assert family_for("calendar_event_change") == "calendar" and family_for("todo_task_delete") == "todo"
    assert (
        family_for("attend_user_daily_summary_refresh") == "attendance" and family_for("org_change") is None
    )
