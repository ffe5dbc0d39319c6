"""Groups (§3.4, §7.5): chat/get for department and API-created groups, chatid conversion,
member paging, lifecycle mutations with their chat_* events, and the group truth."""

from __future__ import annotations

from typing import Any

import pytest
from test_files_storage import Emu, make_emu


@pytest.fixture
def emu() -> Emu:
    return make_emu(seed=31)


@pytest.fixture
def events(emu: Emu) -> list[tuple[str, dict[str, Any]]]:
    recorded: list[tuple[str, dict[str, Any]]] = []
    original = emu.state.hub.publish_event
    emu.state.hub.publish_event = lambda t, d: (recorded.append((t, d)), original(t, d))[1]
    return recorded


def legacy_token(emu: Emu) -> str:
    return emu.headers["x-acs-dingtalk-access-token"]


def dept_chat(emu: Emu) -> tuple[int, str]:
    people = emu.state.org.people
    dept = next(d for d in people.departments if d.dept_id != 1 and people.members(d.dept_id))
    r = emu.client.post(
        "/topapi/v2/department/get",
        params={"access_token": legacy_token(emu)},
        json={"dept_id": dept.dept_id},
    )
    assert r.json()["errcode"] == 0
    return dept.dept_id, r.json()["result"]["dept_group_chat_id"]


def test_department_group_is_reachable_through_chat_get(emu: Emu) -> None:
    dept_id, chatid = dept_chat(emu)
    r = emu.client.get("/chat/get", params={"access_token": legacy_token(emu), "chatid": chatid})
    body = r.json()
    assert r.status_code == 200 and body["errcode"] == 0
    info = body["chat_info"]
    assert info["chatid"] == chatid and info["status"] == 1 and info["conversationTag"] == 2
    members = {u.userid for u in emu.state.org.people.members(dept_id)}
    assert set(info["useridlist"]) == members and info["owner"] in members


def test_unknown_chat_is_40016(emu: Emu) -> None:
    r = emu.client.get(
        "/chat/get", params={"access_token": legacy_token(emu), "chatid": "chatnotcreatedbyapi"}
    )
    assert r.status_code == 200 and r.json()["errcode"] == 40016
    r = emu.client.get("/chat/get", params={"chatid": "x"})
    assert r.json()["errcode"] in (40014, 40001)


def test_convert_and_member_paging(emu: Emu) -> None:
    _, chatid = dept_chat(emu)
    r = emu.post(f"/v1.0/im/chat/{chatid}/convertToOpenConversationId")
    assert r.status_code == 200
    cid = r.json()["openConversationId"]
    assert cid.startswith("cid")
    group = {g["id"]: g for g in emu.truth("group")}[cid]
    assert group["chatId"] == chatid
    collected: list[str] = []
    token = None
    while True:
        body: dict[str, Any] = {"openConversationId": cid, "maxResults": 1}
        if token:
            body["nextToken"] = token
        r = emu.post("/v1.0/im/sceneGroups/members/batchQuery", body)
        assert r.status_code == 200
        page = r.json()
        assert page["success"] is True and set(page["staffIdNickMap"]) == set(page["memberUserIds"])
        assert len(page["unionIdList"]) == len(page["memberUserIds"])
        collected += page["memberUserIds"]
        if not page["hasMore"]:
            assert page["nextToken"] == ""
            break
        token = page["nextToken"]
    assert len(collected) == group["memberCount"] == len(set(collected))
    assert emu.post("/v1.0/im/chat/chatnope/convertToOpenConversationId").status_code == 400


def test_lifecycle_mutations_emit_events_and_change_truth(emu: Emu, events: list) -> None:
    created = emu.mutate("group.create", name="審計專案群").json()
    cid = created["openConversationId"]
    r = emu.client.get("/chat/get", params={"access_token": legacy_token(emu), "chatid": created["chatId"]})
    assert r.json()["chat_info"]["name"] == "審計專案群"
    before = {g["id"]: g for g in emu.truth("group")}[cid]
    outsider = next(u.userid for u in emu.state.org.people.users if u.userid not in created["members"])
    assert emu.mutate("group.add_member", openConversationId=cid, userIds=[outsider]).status_code == 200
    assert emu.mutate("group.remove_member", openConversationId=cid, userIds=[outsider]).status_code == 200
    assert emu.mutate("group.rename", openConversationId=cid, name="審計專案群（二期）").status_code == 200
    assert emu.mutate("group.disband", openConversationId=cid).status_code == 200
    assert [e[0] for e in events] == [
        "chat_add_member",
        "chat_remove_member",
        "chat_update_title",
        "chat_disband",
    ]
    add = events[0][1]
    assert (
        add["userId"] == [outsider]
        and add["openConversationId"] == cid
        and add["chatId"] == created["chatId"]
    )
    assert add["unionId"] == [emu.state.org.people.user(outsider).unionid]
    assert set(events[3][1]) == {
        "timeStamp",
        "chatId",
        "corpId",
        "operatorUnionId",
        "openConversationId",
        "operator",
    }
    after = {g["id"]: g for g in emu.truth("group")}[cid]
    assert (
        after["status"] == 2
        and after["name"] == "審計專案群（二期）"
        and after["version"] > before["version"]
    )
    r = emu.client.get("/chat/get", params={"access_token": legacy_token(emu), "chatid": created["chatId"]})
    assert r.json()["chat_info"]["status"] == 2
    assert emu.mutate("group.add_member", openConversationId=cid).status_code == 400  # disbanded
    assert emu.mutate("group.rename", openConversationId="cidnope").status_code == 400


def test_truth_lists_department_and_api_groups(emu: Emu) -> None:
    groups = emu.truth("group")
    origins = {g["origin"] for g in groups}
    assert origins == {"dept", "api"}
    people = emu.state.org.people
    assert sum(g["origin"] == "dept" for g in groups) == len(
        [d for d in people.departments if d.dept_id != 1]
    )


def test_groups_follow_department_mutations(emu: Emu) -> None:
    r = emu.mutate("dept.create", name="澳門新項目組")
    assert r.status_code == 200, r.text
    dept_id = r.json().get("dept_id") or r.json().get("deptId")
    r = emu.client.post(
        "/topapi/v2/department/get", params={"access_token": legacy_token(emu)}, json={"dept_id": dept_id}
    )
    chatid = r.json()["result"]["dept_group_chat_id"]
    r = emu.client.get("/chat/get", params={"access_token": legacy_token(emu), "chatid": chatid})
    assert r.json()["errcode"] == 0 and r.json()["chat_info"]["name"] == "澳門新項目組"
    cid = emu.post(f"/v1.0/im/chat/{chatid}/convertToOpenConversationId").json()["openConversationId"]
    group = {g["id"]: g for g in emu.truth("group")}[cid]
    assert group["status"] == 1 and group["spaceId"] in {s["id"] for s in emu.truth("drive_space")}
    assert emu.mutate("dept.remove", dept_id=dept_id).status_code == 200
    assert {g["id"]: g for g in emu.truth("group")}[cid]["status"] == 2
