"""Storage endpoints (dingtalk-api.md §5.2–§5.4) against the in-process emulator: field names and
types, pagination end conditions, permission filtering, signed downloads, mutations and truth."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from dingtalk_emulator.server import create_app
from dingtalk_emulator.state import EmulatorConfig


@dataclass
class Emu:
    client: TestClient
    state: Any
    headers: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.client.post(
            path, params=params, json=body if body is not None else {}, headers=self.headers
        )

    def mutate(self, op: str, **params: Any) -> Any:
        return self.client.post("/_emulator/mutate", json={"op": op, **params})

    def truth(self, kind: str) -> list[dict[str, Any]]:
        r = self.client.get("/_emulator/truth", params={"kind": kind})
        assert r.status_code == 200
        return r.json()["items"]


def make_emu(seed: int = 5, **cfg: Any) -> Emu:
    app, state = create_app(EmulatorConfig(profile="demo", limits="off", seed=seed, **cfg))
    state.base_url = "http://testserver"
    client = TestClient(app)
    r = client.post(
        "/v1.0/oauth2/accessToken", json={"appKey": state.org.app_key, "appSecret": state.org.app_secret}
    )
    return Emu(client, state, {"x-acs-dingtalk-access-token": r.json()["accessToken"]})


@pytest.fixture
def emu() -> Emu:
    return make_emu()


@pytest.fixture
def events(emu: Emu) -> list[tuple[str, dict[str, Any]]]:
    recorded: list[tuple[str, dict[str, Any]]] = []
    original = emu.state.hub.publish_event

    def record(event_type: str, data: dict[str, Any]) -> str:
        recorded.append((event_type, data))
        return original(event_type, data)

    emu.state.hub.publish_event = record
    return recorded


def admin(emu: Emu) -> str:
    return emu.state.org.people.admin.unionid


def plain_user(emu: Emu) -> Any:
    return next(u for u in emu.state.org.people.users if not u.admin)


def all_spaces(emu: Emu, unionid: str, page: int = 2) -> list[dict[str, Any]]:
    out, token = [], None
    for _ in range(100):
        params: dict[str, Any] = {"unionId": unionid, "spaceType": "org", "maxResults": page}
        if token:
            params["nextToken"] = token
        r = emu.get("/v1.0/drive/spaces", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["spaces"]
        token = body["nextToken"]
        assert isinstance(token, str)
        if token == "":
            return out
    raise AssertionError("pagination never ended")


def walk(emu: Emu, space_id: str, unionid: str) -> list[dict[str, Any]]:
    out, stack = [], ["0"]
    while stack:
        parent, token = stack.pop(), None
        while True:
            params: dict[str, Any] = {"unionId": unionid, "parentId": parent, "maxResults": 3}
            if token:
                params["nextToken"] = token
            r = emu.get(f"/v1.0/storage/spaces/{space_id}/dentries", **params)
            assert r.status_code == 200, r.text
            body = r.json()
            out += body["dentries"]
            stack += [d["id"] for d in body["dentries"] if d["type"] == "FOLDER"]
            token = body.get("nextToken")
            if not token:
                break
    return out


def test_drive_spaces_fields_and_empty_string_end(emu: Emu) -> None:
    spaces = all_spaces(emu, admin(emu))
    assert len(spaces) >= 3
    assert len({s["spaceId"] for s in spaces}) == len(spaces)
    for s in spaces:
        assert set(s) >= {
            "spaceId",
            "spaceName",
            "spaceType",
            "quota",
            "usedQuota",
            "permissionMode",
            "createTime",
            "modifyTime",
        }
        assert s["spaceType"] == "org" and isinstance(s["quota"], int) and s["createTime"].endswith("Z")
    truth_drive = {t["id"] for t in emu.truth("drive_space") if t["origin"] == "drive"}
    assert {s["spaceId"] for s in spaces} == truth_drive  # the admin manages every org space


def test_spaces_are_filtered_by_the_operators_departments(emu: Emu) -> None:
    user = plain_user(emu)
    mine = {s["spaceId"] for s in all_spaces(emu, user.unionid)}
    everything = {s["spaceId"] for s in all_spaces(emu, admin(emu))}
    assert mine < everything and mine  # the company-wide space plus their department's
    hidden = sorted(everything - mine)[0]
    r = emu.get(f"/v1.0/storage/spaces/{hidden}/dentries", unionId=user.unionid, parentId="0")
    assert r.status_code == 403 and r.json()["code"] == "permissionDenied"
    assert "requestid" in r.json()


def test_bad_requests(emu: Emu) -> None:
    r = emu.get("/v1.0/drive/spaces", spaceType="org")
    assert r.status_code == 400  # no operator
    r = emu.get("/v1.0/drive/spaces", unionId="nobody", spaceType="org")
    assert r.status_code == 403 and r.json()["code"] == "permissionDenied"
    r = emu.get("/v1.0/drive/spaces", unionId=admin(emu), spaceType="org", maxResults=51)
    assert r.status_code == 400 and r.json()["code"] == "param.error.maxresults"
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    r = emu.get(f"/v1.0/storage/spaces/{sid}/dentries", unionId=admin(emu), parentId="0", maxResults=51)
    assert r.status_code == 400
    r = emu.get(f"/v1.0/storage/spaces/{sid}/dentries", unionId=admin(emu), parentId="0", nextToken="%%%")
    assert r.status_code == 400
    r = emu.get("/v1.0/storage/spaces/123/dentries", unionId=admin(emu), parentId="0")
    assert r.status_code == 404 and r.json()["code"] == "spaceNotExist"
    r = emu.client.get(f"/v1.0/storage/spaces/{sid}/dentries", params={"unionId": admin(emu)})
    assert r.status_code == 400 and r.json()["code"] == "InvalidAuthentication"  # no token


def test_dentry_listing_walk_matches_truth_and_listall(emu: Emu) -> None:
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    walked = walk(emu, sid, admin(emu))
    d = next(x for x in walked if x["type"] == "FILE")
    for key, typ in {
        "id": str,
        "spaceId": str,
        "parentId": str,
        "name": str,
        "size": int,
        "path": str,
        "version": int,
        "status": str,
        "extension": str,
        "creatorId": str,
        "modifierId": str,
        "createTime": str,
        "modifiedTime": str,
        "uuid": str,
        "storageDriver": str,
    }.items():
        assert isinstance(d[key], typ), key
    assert d["path"].startswith("./") and d["path"].endswith(d["name"])
    truth = {t["id"]: t for t in emu.truth("file") if t["id"].startswith(sid + "/")}
    assert {f"{sid}/{x['id']}" for x in walked} == set(truth)
    for x in walked:
        t = truth[f"{sid}/{x['id']}"]
        assert (t["name"], t["parentId"], t["version"], t["path"]) == (
            x["name"],
            x["parentId"],
            x["version"],
            x["path"],
        )
        if x["type"] == "FILE":
            assert t["size"] == x["size"]
    flat, token = [], None
    while True:
        option: dict[str, Any] = {"maxResults": 4, "order": "DESC"}
        if token:
            option["nextToken"] = token
        r = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/listAll", {"option": option}, unionId=admin(emu))
        assert r.status_code == 200
        flat += r.json()["dentries"]
        token = r.json().get("nextToken")
        if not token:
            break
    assert sorted(x["id"] for x in flat) == sorted(x["id"] for x in walked)
    times = [x["modifiedTime"] for x in flat]
    assert times == sorted(times, reverse=True)


def test_ordering_options(emu: Emu) -> None:
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    r = emu.get(
        f"/v1.0/storage/spaces/{sid}/dentries", unionId=admin(emu), parentId="0", orderBy="SIZE", order="DESC"
    )
    sizes = [d.get("size", 0) for d in r.json()["dentries"]]
    assert sizes == sorted(sizes, reverse=True)
    r = emu.get(f"/v1.0/storage/spaces/{sid}/dentries", unionId=admin(emu), parentId="0", orderBy="BOGUS")
    assert r.status_code == 400


def first_file(emu: Emu, ext: str | None = None) -> tuple[str, dict[str, Any]]:
    for s in all_spaces(emu, admin(emu)):
        for d in walk(emu, s["spaceId"], admin(emu)):
            if d["type"] == "FILE" and (ext is None or d["extension"] == ext):
                return s["spaceId"], d
    raise AssertionError("no file")


def download_info(emu: Emu, sid: str, did: str, version: int | None = None) -> dict[str, Any]:
    body = {"option": {"version": version}} if version else {"option": {}}
    r = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/{did}/downloadInfos/query", body, unionId=admin(emu))
    assert r.status_code == 200, r.text
    assert r.json()["protocol"] == "HEADER_SIGNATURE"
    return r.json()["headerSignatureInfo"]


def local(url: str) -> str:
    assert url.startswith("http://testserver/_blob/")
    return url.removeprefix("http://testserver")


def test_signed_download_rules(emu: Emu) -> None:
    sid, d = first_file(emu)
    info = download_info(emu, sid, d["id"])
    assert info["expirationSeconds"] == 900 and info["resourceUrls"] and info["headers"]
    url = local(info["resourceUrls"][0])
    assert emu.client.get(url).status_code == 403  # headers missing
    bad = dict(info["headers"], Authorization=info["headers"]["Authorization"][:-3] + "xyz")
    assert emu.client.get(url, headers=bad).status_code == 403
    other_date = dict(info["headers"], **{"x-oss-date": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert emu.client.get(url, headers=other_date).status_code == 403
    full = emu.client.get(url, headers=info["headers"])
    assert full.status_code == 200 and len(full.content) == d["size"]
    truth = {t["id"]: t for t in emu.truth("file")}[f"{sid}/{d['id']}"]
    assert hashlib.sha256(full.content).hexdigest() == truth["sha256"]
    part = emu.client.get(url, headers={**info["headers"], "Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == full.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{d['size']}"
    tail = emu.client.get(url, headers={**info["headers"], "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full.content[-10:]
    open_end = emu.client.get(url, headers={**info["headers"], "Range": f"bytes={d['size'] - 5}-"})
    assert open_end.content == full.content[-5:]
    bad_range = emu.client.get(url, headers={**info["headers"], "Range": f"bytes={d['size']}-"})
    assert bad_range.status_code == 416
    emu.state.clock.advance(901)
    expired = emu.client.get(url, headers=info["headers"])
    assert expired.status_code == 403 and b"expired" in expired.content


def test_versions_listing_and_old_version_download(emu: Emu) -> None:
    sid, d = first_file(emu, "docx")
    r = emu.mutate("file.update", spaceId=sid, dentryId=d["id"])
    assert r.status_code == 200, r.text
    r = emu.get(f"/v1.0/storage/spaces/{sid}/dentries/{d['id']}/versions", unionId=admin(emu))
    assert r.status_code == 200
    versions = r.json()["dentries"]
    assert [v["version"] for v in versions] == list(range(d["version"] + 1, 0, -1))
    assert all(v["id"] == d["id"] for v in versions)
    old = download_info(emu, sid, d["id"], version=1)
    new = download_info(emu, sid, d["id"])
    a = emu.client.get(local(old["resourceUrls"][0]), headers=old["headers"]).content
    b = emu.client.get(local(new["resourceUrls"][0]), headers=new["headers"]).content
    assert a != b and len(a) == versions[-1]["size"] and len(b) == versions[0]["size"]
    truth = {t["id"]: t for t in emu.truth("file")}[f"{sid}/{d['id']}"]
    assert [v["sha256"] for v in truth["versions"]][0] == hashlib.sha256(a).hexdigest()
    assert truth["sha256"] == hashlib.sha256(b).hexdigest()
    r = emu.post(
        f"/v1.0/storage/spaces/{sid}/dentries/{d['id']}/downloadInfos/query",
        {"option": {"version": 99}},
        unionId=admin(emu),
    )
    assert r.status_code == 400


def test_single_dentry_query(emu: Emu) -> None:
    sid, d = first_file(emu)
    r = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/{d['id']}/query", {"option": {}}, unionId=admin(emu))
    assert r.status_code == 200 and r.json()["dentry"] == d
    r = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/1/query", {}, unionId=admin(emu))
    assert r.status_code == 404 and r.json()["code"] == "dentryNotExist"
    r = emu.post(
        f"/v1.0/storage/spaces/{sid}/dentries/query", {"dentryIds": [d["id"], "1"]}, unionId=admin(emu)
    )
    assert r.status_code == 200
    ok, missing = r.json()["resultItems"]
    assert ok["success"] is True and ok["dentry"] == d
    assert missing == {"spaceId": sid, "dentryId": "1", "success": False, "errorCode": "dentryNotExist"}
    assert (
        emu.post(
            f"/v1.0/storage/spaces/{sid}/dentries/query", {"dentryIds": []}, unionId=admin(emu)
        ).status_code
        == 400
    )
    org = emu.get(f"/v1.0/storage/orgs/{emu.state.org.corp_id}", unionId=admin(emu)).json()["org"]
    assert org["corpId"] == emu.state.org.corp_id and org["partitions"][0]["quota"]["used"] > 0
    assert emu.get("/v1.0/storage/orgs/dingother", unionId=admin(emu)).status_code == 403


def test_events_only_after_subscription(emu: Emu, events: list) -> None:
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    r = emu.mutate("file.upload", spaceId=sid, name="before.txt", extension="txt")
    assert r.status_code == 200 and r.json()["event"] is False
    assert not events
    r = emu.post(
        "/v1.0/storage/events/subscribe",
        {"scope": "ORG", "scopeId": emu.state.org.corp_id},
        unionId=admin(emu),
    )
    assert r.status_code == 200 and r.json() == {"success": True}
    r = emu.post("/v1.0/storage/events/subscribe", {"scope": "ORG", "scopeId": "wrong"}, unionId=admin(emu))
    assert r.status_code == 400
    up = emu.mutate("file.upload", spaceId=sid, name="合約草稿.docx", extension="docx").json()
    emu.mutate("file.update", spaceId=sid, dentryId=up["dentryId"])
    emu.mutate("file.delete", spaceId=sid, dentryId=up["dentryId"])
    assert [e[0] for e in events] == [
        "storage_dentry_create",
        "storage_dentry_update",
        "storage_dentry_delete",
    ]
    data = events[0][1]
    assert data == {
        "spaceId": sid,
        "dentryId": up["dentryId"],
        "eventScope": "ORG",
        "eventScopeId": emu.state.org.corp_id,
        "extension": "docx",
        "unionId": data["unionId"],
        "type": "FILE",
    }


def test_mutations_change_listing_and_truth(emu: Emu) -> None:
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    folder = emu.mutate("folder.create", spaceId=sid, name="二〇二七年度").json()
    up = emu.mutate(
        "file.upload",
        spaceId=sid,
        parentId=folder["dentryId"],
        name="報價單.xlsx",
        extension="xlsx",
        size=30_000,
    ).json()
    truth = {t["id"]: t for t in emu.truth("file")}
    t = truth[f"{sid}/{up['dentryId']}"]
    assert t["path"] == "./二〇二七年度/報價單.xlsx" and t["size"] == 30_000 and len(t["sha256"]) == 64
    assert (
        emu.mutate("file.upload", spaceId=sid, parentId=folder["dentryId"], name="報價單.xlsx").status_code
        == 400
    )
    emu.mutate("file.rename", spaceId=sid, dentryId=up["dentryId"], name="報價單（最終）.xlsx")
    emu.mutate("file.move", spaceId=sid, dentryId=up["dentryId"], parentId="0")
    upd = emu.mutate("file.update", spaceId=sid, dentryId=up["dentryId"]).json()
    assert upd["version"] == 2
    t2 = {t["id"]: t for t in emu.truth("file")}[f"{sid}/{up['dentryId']}"]
    assert t2["path"] == "./報價單（最終）.xlsx" and t2["version"] == 2 and t2["sha256"] != t["sha256"]
    assert [v["sha256"] for v in t2["versions"]][0] == t["sha256"]
    emu.mutate("file.delete", spaceId=sid, dentryId=folder["dentryId"])
    assert folder["dentryId"] not in {d["id"] for d in walk(emu, sid, admin(emu))}
    t3 = {t["id"]: t for t in emu.truth("file")}
    assert t3[f"{sid}/{folder['dentryId']}"]["deleted"] is True
    r = emu.get("/v1.0/storage/recycleBins", unionId=admin(emu), recycleBinScope="SPACE", scopeId=sid)
    bin_id = r.json()["recycleBin"]["id"]
    items = emu.get(f"/v1.0/storage/recycleBins/{bin_id}/recycleItems", unionId=admin(emu)).json()[
        "recycleItems"
    ]
    assert folder["dentryId"] in {i["dentryId"] for i in items}
    assert (
        emu.mutate("file.move", spaceId=sid, dentryId=up["dentryId"], parentId=folder["dentryId"]).status_code
        == 400
    )


def test_folder_cannot_move_into_itself(emu: Emu) -> None:
    sid = all_spaces(emu, admin(emu))[0]["spaceId"]
    a = emu.mutate("folder.create", spaceId=sid, name="A").json()["dentryId"]
    b = emu.mutate("folder.create", spaceId=sid, name="B", parentId=a).json()["dentryId"]
    assert emu.mutate("file.move", spaceId=sid, dentryId=a, parentId=b).status_code == 400


def test_random_mutations_run(emu: Emu) -> None:
    r = emu.client.post("/_emulator/mutate", json={"op": "random", "count": 40, "seed": 3})
    assert r.status_code == 200
    assert len(r.json()["results"]) == 40


def test_group_file_space(emu: Emu) -> None:
    group = next(g for g in emu.truth("group") if g["origin"] == "dept" and g["memberCount"])
    w = emu.state.org.files_world
    member = w.people.user(w.groups.members(w.groups.groups[group["id"]])[0])
    r = emu.post(
        "/v1.0/convFile/conversations/spaces/query",
        {"openConversationId": group["id"]},
        unionId=member.unionid,
    )
    assert r.status_code == 200
    space = r.json()["space"]
    assert (
        set(space) == {"spaceId", "corpId", "createTime", "modifiedTime"}
        and space["spaceId"] == group["spaceId"]
    )
    outsider = next(
        u for u in w.people.users if u.unionid not in w.groups.member_unionids(w.groups.groups[group["id"]])()
    )
    r = emu.post(
        "/v1.0/convFile/conversations/spaces/query",
        {"openConversationId": group["id"]},
        unionId=outsider.unionid,
    )
    assert r.status_code == 403 and r.json()["code"] == "permissionDenied"
    r = emu.post(
        "/v1.0/convFile/conversations/spaces/query", {"openConversationId": "cidnope"}, unionId=member.unionid
    )
    assert r.status_code == 404 and r.json()["code"] == "conversationNotExist"


def test_same_seed_same_world_other_seed_differs() -> None:
    a, b, c = make_emu(seed=9), make_emu(seed=9), make_emu(seed=10)
    ta, tb, tc = a.truth("file"), b.truth("file"), c.truth("file")
    assert ta == tb
    assert {t["id"] for t in ta} != {t["id"] for t in tc}


def test_scope_refusal(emu: Emu) -> None:
    e = make_emu(scopes={"Drive.Space.Read"})
    r = e.post("/v1.0/storage/spaces/1/dentries/2/downloadInfos/query", {}, unionId=admin(e))
    assert r.status_code == 403 and r.json()["accessdenieddetail"]["requiredScopes"] == [
        "Storage.DownloadInfo.Read"
    ]


def test_hostile_names_are_listed_and_downloadable(emu: Emu) -> None:
    from dingtalk_emulator.files.storage_model import HOSTILE_NAMES

    company = next(t for t in emu.truth("drive_space") if t["spaceName"] == "全公司共享文件")
    listed = {d["name"]: d for d in walk(emu, company["id"], admin(emu))}
    assert set(HOSTILE_NAMES) <= set(listed)
    d = listed["tab\tand\nnewline.csv"]
    info = download_info(emu, company["id"], d["id"])
    body = emu.client.get(local(info["resourceUrls"][0]), headers=info["headers"]).content
    assert len(body) == d["size"] and body.decode("utf-8")


def test_personal_space_type(emu: Emu) -> None:
    user = plain_user(emu)
    r = emu.get("/v1.0/drive/spaces", unionId=user.unionid, spaceType="personal")
    assert r.status_code == 200
    spaces = r.json()["spaces"]
    assert len(spaces) == 1 and spaces[0]["spaceType"] == "personal" and r.json()["nextToken"] == ""
    mine = emu.get("/v2.0/wiki/mineWorkspaces", operatorId=user.unionid).json()["workspace"]
    truth = {t["id"]: t for t in emu.truth("wiki_workspace")}[mine["workspaceId"]]
    assert truth["spaceId"] == spaces[0]["spaceId"]
    assert emu.get("/v1.0/drive/spaces", unionId=user.unionid, spaceType="team").status_code == 400


def test_mutations_replay_from_the_state_journal(tmp_path: Any) -> None:
    first = make_emu(seed=77, state_dir=str(tmp_path))
    sid = all_spaces(first, admin(first))[0]["spaceId"]
    up = first.mutate("file.upload", spaceId=sid, name="journal.docx", extension="docx").json()
    first.mutate("file.update", spaceId=sid, dentryId=up["dentryId"])
    first.mutate("file.rename", spaceId=sid, dentryId=up["dentryId"], name="journal-2.docx")
    assert (
        first.client.post("/_emulator/mutate", json={"op": "random", "count": 15, "seed": 4}).status_code
        == 200
    )
    kinds = ("file", "group", "doc", "wiki_node")
    before = {k: first.truth(k) for k in kinds}
    second = make_emu(seed=77, state_dir=str(tmp_path))
    for k in kinds:
        assert second.truth(k) == before[k], k


def test_generated_content_does_not_depend_on_when_the_world_is_built() -> None:
    """The files world is built lazily; org mutations before or after that must give the same files."""
    ops = [
        ("user.leave", {"rand": 3}),
        ("dept.create", {"name": "新部門", "parent_id": 1}),
        ("user.join", {"rand": 5}),
    ]
    early, late = make_emu(seed=88), make_emu(seed=88)
    early.truth("file")  # builds the files world before the org changes
    for e in (early, late):
        for op, params in ops:
            assert e.mutate(op, **params).status_code == 200
    for kind in ("file", "drive_space", "wiki_workspace", "group"):
        assert early.truth(kind) == late.truth(kind), kind
    sid = next(t["id"] for t in early.truth("drive_space") if t["origin"] == "drive")
    assert walk(early, sid, admin(early)) == walk(late, sid, admin(late))  # creators, modifiers, times too


def test_head_multirange_and_deleted_downloads(emu: Emu) -> None:
    sid, d = first_file(emu)
    info = download_info(emu, sid, d["id"])
    url = local(info["resourceUrls"][0])
    head = emu.client.head(url, headers=info["headers"])
    assert (
        head.status_code == 200 and head.headers["content-length"] == str(d["size"]) and head.content == b""
    )
    assert head.headers["accept-ranges"] == "bytes"
    multi = emu.client.get(url, headers={**info["headers"], "Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and len(multi.content) == d["size"]  # several ranges: whole body
    garbage = emu.client.get(url, headers={**info["headers"], "Range": "pages=1-2"})
    assert garbage.status_code == 416
    assert emu.mutate("file.delete", spaceId=sid, dentryId=d["id"]).status_code == 200
    r = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/{d['id']}/downloadInfos/query", {}, unionId=admin(emu))
    assert r.status_code == 404 and r.json()["code"] == "dentryNotExist"
    gone = emu.post(f"/v1.0/storage/spaces/{sid}/dentries/{d['id']}/query", {}, unionId=admin(emu)).json()[
        "dentry"
    ]
    assert gone["status"] == "DELETED"
