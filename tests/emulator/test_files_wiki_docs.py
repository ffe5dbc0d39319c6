"""Knowledge bases and online documents (§5.2, §5.3, §5.5)."""

from __future__ import annotations

from typing import Any

import pytest
from test_files_storage import Emu, admin, make_emu, plain_user

from dingtalk_emulator.files.blocks import canonical_sha256


@pytest.fixture
def emu() -> Emu:
    return make_emu(seed=21)


def workspaces(emu: Emu, unionid: str) -> list[dict[str, Any]]:
    out, token = [], None
    while True:
        params: dict[str, Any] = {"operatorId": unionid, "maxResults": 3, "withPermissionRole": "true"}
        if token:
            params["nextToken"] = token
        r = emu.get("/v2.0/wiki/workspaces", **params)
        assert r.status_code == 200, r.text
        out += r.json()["workspaces"]
        token = r.json().get("nextToken")
        if not token:
            return out


def nodes(emu: Emu, unionid: str, root: str) -> list[dict[str, Any]]:
    out, stack = [], [root]
    while stack:
        parent, token = stack.pop(), None
        while True:
            params: dict[str, Any] = {"operatorId": unionid, "parentNodeId": parent, "maxResults": 2}
            if token:
                params["nextToken"] = token
            r = emu.get("/v2.0/wiki/nodes", **params)
            assert r.status_code == 200, r.text
            out += r.json()["nodes"]
            stack += [n["nodeId"] for n in r.json()["nodes"] if n["hasChildren"]]
            token = r.json().get("nextToken")
            if not token:
                break
    return out


def test_workspace_fields_and_limits(emu: Emu) -> None:
    wss = workspaces(emu, admin(emu))
    assert wss and all(w["type"] == "TEAM" for w in wss)
    for key in (
        "workspaceId",
        "corpId",
        "teamId",
        "rootNodeId",
        "name",
        "type",
        "url",
        "creatorId",
        "createTime",
        "permissionRole",
    ):
        assert key in wss[0]
    assert emu.get("/v2.0/wiki/workspaces", operatorId=admin(emu), maxResults=31).status_code == 400
    truth = {t["id"] for t in emu.truth("wiki_workspace") if t["type"] == "TEAM"}
    assert {w["workspaceId"] for w in wss} == truth
    user = plain_user(emu)
    assert len(workspaces(emu, user.unionid)) < len(wss)


def test_node_tree_matches_truth_and_converts_to_storage_ids(emu: Emu) -> None:
    ws = workspaces(emu, admin(emu))[0]
    tree = nodes(emu, admin(emu), ws["rootNodeId"])
    assert tree
    truth = {t["id"]: t for t in emu.truth("wiki_node")}
    assert {f"{ws['workspaceId']}/{n['nodeId']}" for n in tree} == {
        k for k in truth if k.startswith(ws["workspaceId"] + "/")
    }
    for n in tree:
        assert n["category"] in {"ALIDOC", "DOCUMENT", "IMAGE", "OTHER"} and isinstance(
            n["createTimestamp"], int
        )
        r = emu.get(f"/v2.0/doc/dentries/{n['nodeId']}/queryDentryId", operatorId=admin(emu))
        assert r.status_code == 200
        ids = r.json()
        assert ids["dentryUuid"] == n["nodeId"]
        t = truth[f"{ws['workspaceId']}/{n['nodeId']}"]
        assert (ids["spaceId"], ids["dentryId"]) == (t["spaceId"], t["dentryId"])
    files = [n for n in tree if n["type"] == "FILE" and n["category"] != "ALIDOC"]
    docs = [n for n in tree if n["category"] == "ALIDOC"]
    if files:  # a knowledge-base file downloads through the storage endpoint
        ids = emu.get(f"/v2.0/doc/dentries/{files[0]['nodeId']}/queryDentryId", operatorId=admin(emu)).json()
        r = emu.post(
            f"/v1.0/storage/spaces/{ids['spaceId']}/dentries/{ids['dentryId']}/downloadInfos/query",
            {},
            unionId=admin(emu),
        )
        assert r.status_code == 200
    assert docs
    ids = emu.get(f"/v2.0/doc/dentries/{docs[0]['nodeId']}/queryDentryId", operatorId=admin(emu)).json()
    r = emu.post(
        f"/v1.0/storage/spaces/{ids['spaceId']}/dentries/{ids['dentryId']}/downloadInfos/query",
        {},
        unionId=admin(emu),
    )
    assert r.status_code == 400 and r.json()["code"] == "operationNotSupported"


def test_unknown_nodes_and_permissions(emu: Emu) -> None:
    r = emu.get("/v2.0/wiki/nodes", operatorId=admin(emu), parentNodeId="nope")
    assert r.status_code == 404
    r = emu.get("/v2.0/doc/dentries/nope/queryDentryId", operatorId=admin(emu))
    assert r.status_code == 404
    ws = workspaces(emu, admin(emu))
    user = plain_user(emu)
    visible = {w["workspaceId"] for w in workspaces(emu, user.unionid)}
    hidden = next(w for w in ws if w["workspaceId"] not in visible)
    r = emu.get("/v2.0/wiki/nodes", operatorId=user.unionid, parentNodeId=hidden["rootNodeId"])
    assert r.status_code == 403 and r.json()["code"] == "permissionDenied"


def test_mine_workspace_is_personal(emu: Emu) -> None:
    user = plain_user(emu)
    r = emu.get("/v2.0/wiki/mineWorkspaces", operatorId=user.unionid)
    assert r.status_code == 200
    ws = r.json()["workspace"]
    assert ws["type"] == "PERSONAL"
    other = next(u for u in emu.state.org.people.users if u.unionid != user.unionid)
    assert (
        emu.get("/v2.0/wiki/nodes", operatorId=other.unionid, parentNodeId=ws["rootNodeId"]).status_code
        == 403
    )
    assert (
        emu.get("/v2.0/wiki/nodes", operatorId=user.unionid, parentNodeId=ws["rootNodeId"]).status_code == 200
    )


def first_doc(emu: Emu) -> str:
    for ws in workspaces(emu, admin(emu)):
        for n in nodes(emu, admin(emu), ws["rootNodeId"]):
            if n["category"] == "ALIDOC":
                return n["nodeId"]
    raise AssertionError("no online document")


def test_blocks_shape_filters_and_truth(emu: Emu) -> None:
    key = first_doc(emu)
    r = emu.get(f"/v1.0/doc/suites/documents/{key}/blocks", operatorId=admin(emu))
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    blocks = body["result"]["data"]
    assert blocks[0]["blockType"] == "heading"
    para = next(b for b in blocks if b["blockType"] == "paragraph")
    assert (
        isinstance(para["paragraph"]["text"], str)
        and isinstance(para["id"], str)
        and isinstance(para["index"], int)
    )
    truth = {t["id"]: t for t in emu.truth("doc")}[key]
    assert truth["block_count"] == len(blocks) and truth["sha256"] == canonical_sha256(blocks)
    only = emu.get(
        f"/v1.0/doc/suites/documents/{key}/blocks", operatorId=admin(emu), blockType="paragraph"
    ).json()["result"]["data"]
    assert only and all(b["blockType"] == "paragraph" for b in only)
    window = emu.get(
        f"/v1.0/doc/suites/documents/{key}/blocks", operatorId=admin(emu), startIndex=1, endIndex=2
    ).json()["result"]["data"]
    assert [b["index"] for b in window] == [1, 2]


def test_doc_edit_changes_blocks_and_truth(emu: Emu) -> None:
    key = first_doc(emu)
    before = emu.get(f"/v1.0/doc/suites/documents/{key}/blocks", operatorId=admin(emu)).json()["result"][
        "data"
    ]
    sha_before = {t["id"]: t for t in emu.truth("doc")}[key]["sha256"]
    r = emu.mutate("doc.edit", dentryUuid=key)
    assert r.status_code == 200, r.text
    after = emu.get(f"/v1.0/doc/suites/documents/{key}/blocks", operatorId=admin(emu)).json()["result"][
        "data"
    ]
    assert len(after) == len(before) + 1  # a revision note appended; earlier blocks kept or edited in place
    assert before[0] == after[0]
    t = {t["id"]: t for t in emu.truth("doc")}[key]
    assert t["sha256"] != sha_before and t["sha256"] == canonical_sha256(after)
    assert emu.mutate("doc.edit", dentryUuid="nope").status_code == 400


def test_blocks_of_a_plain_file_are_refused(emu: Emu) -> None:
    ws = workspaces(emu, admin(emu))
    plain = next(
        n
        for w in ws
        for n in nodes(emu, admin(emu), w["rootNodeId"])
        if n["type"] == "FILE" and n["category"] != "ALIDOC"
    )
    r = emu.get(f"/v1.0/doc/suites/documents/{plain['nodeId']}/blocks", operatorId=admin(emu))
    assert r.status_code == 400 and r.json()["code"] == "operationNotSupported"


def test_root_node_resolves_to_the_workspace_space(emu: Emu) -> None:
    ws = workspaces(emu, admin(emu))[0]
    r = emu.get(f"/v2.0/doc/dentries/{ws['rootNodeId']}/queryDentryId", operatorId=admin(emu))
    assert r.status_code == 200
    ids = r.json()
    truth = {t["id"]: t for t in emu.truth("wiki_workspace")}[ws["workspaceId"]]
    assert ids == {"dentryUuid": ws["rootNodeId"], "dentryId": "0", "spaceId": truth["spaceId"]}
    listed = emu.get(
        f"/v1.0/storage/spaces/{ids['spaceId']}/dentries", unionId=admin(emu), parentId="0"
    ).json()["dentries"]
    top = emu.get("/v2.0/wiki/nodes", operatorId=admin(emu), parentNodeId=ws["rootNodeId"]).json()["nodes"]
    assert {d["uuid"] for d in listed} == {n["nodeId"] for n in top}
    user = plain_user(emu)
    hidden = next(
        w
        for w in workspaces(emu, admin(emu))
        if w["workspaceId"] not in {x["workspaceId"] for x in workspaces(emu, user.unionid)}
    )
    assert (
        emu.get(
            f"/v2.0/doc/dentries/{hidden['rootNodeId']}/queryDentryId", operatorId=user.unionid
        ).status_code
        == 403
    )


def test_sensitive_truth_points_at_real_text(emu: Emu) -> None:
    entries = [e for e in emu.truth("sensitive") if e["kind"] in ("file", "doc")]
    assert {e["type"] for e in entries} >= {"macau_id", "hkid_id", "mainland_id", "bank_card", "phone"}
    assert len({e["id"] for e in entries}) == len(entries)
    doc = next(e for e in entries if e["kind"] == "doc")
    blocks = emu.get(f"/v1.0/doc/suites/documents/{doc['itemId']}/blocks", operatorId=admin(emu)).json()[
        "result"
    ]["data"]
    index = int(doc["where"].removeprefix("blocks[").removesuffix("]"))
    assert doc["value"] in blocks[index]["paragraph"]["text"]
    docx = {t["id"] for t in emu.truth("file") if t.get("extension") == "docx"}
    file_entry = next(e for e in entries if e["kind"] == "file" and e["itemId"] in docx)
    sid, did = file_entry["itemId"].split("/")
    info = emu.post(
        f"/v1.0/storage/spaces/{sid}/dentries/{did}/downloadInfos/query", {}, unionId=admin(emu)
    ).json()["headerSignatureInfo"]
    body = emu.client.get(
        info["resourceUrls"][0].removeprefix("http://testserver"), headers=info["headers"]
    ).content
    assert file_entry["value"].encode() in body  # docx parts are stored uncompressed
