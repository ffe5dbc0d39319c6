"""The official SDK (`alibabacloud-dingtalk`) against the files-world endpoints: its request
encoding reaches the right handlers and its response models accept what the emulator returns."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(profile="demo", limits="off", seed=61, exclusive=True)) as emu:
        yield emu


@pytest.fixture(scope="module")
def token(emulator: RunningEmulator) -> str:
    org = emulator.state.org
    r = httpx.post(
        emulator.base_url + "/v1.0/oauth2/accessToken",
        json={"appKey": org.app_key, "appSecret": org.app_secret},
    )
    return r.json()["accessToken"]


def _call(client: Any, method: str, req: Any, headers: Any, *path: Any) -> Any:
    return getattr(client, f"{method}_with_options")(*path, req, headers, util_models.RuntimeOptions()).body


def call(
    emulator: RunningEmulator,
    token: str,
    module: str,
    method: str,
    request: str,
    path: tuple[Any, ...] = (),
    **fields: Any,
) -> Any:
    client_mod = importlib.import_module(f"alibabacloud_dingtalk.{module}.client")
    models = importlib.import_module(f"alibabacloud_dingtalk.{module}.models")
    config = open_api_models.Config(
        protocol="http", region_id="central", endpoint=emulator.base_url.removeprefix("http://")
    )
    headers = getattr(models, request.removesuffix("Request") + "Headers")(x_acs_dingtalk_access_token=token)
    return _call(client_mod.Client(config), method, getattr(models, request)(**fields), headers, *path)


def test_storage_through_the_sdk(emulator: RunningEmulator, token: str) -> None:
    admin = emulator.state.org.people.admin.unionid
    spaces = call(
        emulator,
        token,
        "drive_1_0",
        "list_spaces",
        "ListSpacesRequest",
        union_id=admin,
        space_type="org",
        max_results=50,
    )
    assert spaces.spaces and spaces.next_token == ""
    sid = spaces.spaces[0].space_id
    info = call(emulator, token, "storage_1_0", "get_space", "GetSpaceRequest", path=(sid,), union_id=admin)
    assert (
        info.space.id == sid
        and info.space.name == spaces.spaces[0].space_name
        and info.space.capabilities.can_search
    )
    listed = call(
        emulator,
        token,
        "storage_1_0",
        "list_dentries",
        "ListDentriesRequest",
        path=(sid,),
        union_id=admin,
        parent_id="0",
        max_results=50,
    )
    assert listed.dentries
    models = importlib.import_module("alibabacloud_dingtalk.storage_1_0.models")
    flat = call(
        emulator,
        token,
        "storage_1_0",
        "list_all_dentries",
        "ListAllDentriesRequest",
        path=(sid,),
        union_id=admin,
        option=models.ListAllDentriesRequestOption(max_results=50, order="ASC"),
    )
    assert {d.id for d in listed.dentries} <= {d.id for d in flat.dentries}
    f = next(d for d in flat.dentries if d.type == "FILE")
    assert isinstance(f.size, int) and f.space_id == sid
    versions = call(
        emulator,
        token,
        "storage_1_0",
        "list_dentry_versions",
        "ListDentryVersionsRequest",
        path=(sid, f.id),
        union_id=admin,
        max_results=50,
    )
    assert versions.dentries[0].version == f.version
    one = call(
        emulator,
        token,
        "storage_1_0",
        "get_dentry",
        "GetDentryRequest",
        path=(sid, f.id),
        union_id=admin,
        option=models.GetDentryRequestOption(with_thumbnail=False),
    )
    assert one.dentry.name == f.name
    sub = call(
        emulator,
        token,
        "storage_1_0",
        "subscribe_event",
        "SubscribeEventRequest",
        union_id=admin,
        scope="ORG",
        scope_id=emulator.state.org.corp_id,
    )
    assert sub.success is True
    dl = call(
        emulator,
        token,
        "storage_1_0",
        "get_file_download_info",
        "GetFileDownloadInfoRequest",
        path=(sid, f.id),
        union_id=admin,
        option=models.GetFileDownloadInfoRequestOption(prefer_intranet=False),
    )
    sig = dl.header_signature_info
    assert dl.protocol == "HEADER_SIGNATURE" and sig.expiration_seconds == 900
    body = httpx.get(sig.resource_urls[0], headers=sig.headers).content
    assert len(body) == f.size


def test_wiki_and_docs_through_the_sdk(emulator: RunningEmulator, token: str) -> None:
    admin = emulator.state.org.people.admin.unionid
    wss = call(
        emulator,
        token,
        "wiki_2_0",
        "list_workspaces",
        "ListWorkspacesRequest",
        operator_id=admin,
        max_results=30,
        with_permission_role=True,
    )
    assert wss.workspaces and wss.workspaces[0].root_node_id
    mine = call(
        emulator, token, "wiki_2_0", "get_mine_workspace", "GetMineWorkspaceRequest", operator_id=admin
    )
    assert mine.workspace.type == "PERSONAL"
    stack, doc = [w.root_node_id for w in wss.workspaces], None
    while stack and doc is None:
        page = call(
            emulator,
            token,
            "wiki_2_0",
            "list_nodes",
            "ListNodesRequest",
            parent_node_id=stack.pop(),
            operator_id=admin,
            max_results=50,
        )
        for n in page.nodes:
            if n.category == "ALIDOC":
                doc = n
            elif n.has_children:
                stack.append(n.node_id)
    assert doc is not None
    # The SDK's doc_2_0 module (2.2.65) cannot be imported (NameError: DentryModel), so this call goes
    # over plain HTTP, as the connector has to.
    ids = httpx.get(
        f"{emulator.base_url}/v2.0/doc/dentries/{doc.node_id}/queryDentryId",
        params={"operatorId": admin},
        headers={"x-acs-dingtalk-access-token": token},
    ).json()
    assert ids["dentryUuid"] == doc.node_id and ids["spaceId"]
    blocks = call(
        emulator,
        token,
        "doc_1_0",
        "doc_blocks_query",
        "DocBlocksQueryRequest",
        path=(doc.node_id,),
        operator_id=admin,
    )
    assert blocks.success and blocks.result.data


def test_robot_and_exclusive_through_the_sdk(emulator: RunningEmulator, token: str) -> None:
    emulator.state.hub.callback_delivered = lambda _mid: True  # no Stream client here; count it as pushed
    r = httpx.post(
        emulator.base_url + "/_emulator/mutate",
        json={"op": "robot.message", "conversation": "single", "msgtype": "picture"},
    )
    assert r.status_code == 200, r.text
    code = emulator.state.org.files_world.robot.sent[-1].payload["content"]["downloadCode"]
    got = call(
        emulator,
        token,
        "robot_1_0",
        "robot_message_file_download",
        "RobotMessageFileDownloadRequest",
        download_code=code,
        robot_code=emulator.state.org.robot_code,
    )
    assert httpx.get(got.download_url).content[:4] == b"\x89PNG"

    def audit_page(**after: Any) -> Any:
        return call(
            emulator,
            token,
            "exclusive_1_0",
            "list_audit_log",
            "ListAuditLogRequest",
            start_date=0,
            end_date=2**62,
            page_size=20,
            **after,
        )

    logs = audit_page()
    assert len(logs.list) == 20
    nxt = audit_page(next_gmt_create=logs.list[-1].gmt_create, next_biz_id=int(logs.list[-1].biz_id))
    assert nxt.list[0].biz_id != logs.list[-1].biz_id and nxt.list[0].gmt_create >= logs.list[-1].gmt_create
    groups = call(
        emulator,
        token,
        "exclusive_1_0",
        "search_org_inner_group_info",
        "SearchOrgInnerGroupInfoRequest",
        page_start=1,
        page_size=10,
        uuid="u-1",
        operator_user_id=emulator.state.org.people.admin.userid,
    )
    assert groups.total_count >= groups.item_count == len(groups.items) > 0
    assert isinstance(groups.items[0].group_create_time, int)
