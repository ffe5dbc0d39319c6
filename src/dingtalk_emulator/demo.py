"""`dingvault demo` / `dingtalk-emulator demo`: start the demo company and show what it serves."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

from dingtalk_emulator.company.seeding import local_datetime
from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig


def _show(title: str, method: str, path: str, payload: Any, max_chars: int = 600) -> None:
    text = json.dumps(payload, ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars] + " …"
    print(f"\n▶ {title}\n  {method} {path}\n  {text}")


def show_demo(port: int = 0, seed: int = 1, serve: bool = False) -> int:
    started = time.monotonic()
    try:
        emu = RunningEmulator(
            EmulatorConfig(port=port, profile="demo", seed=seed, limits="realistic")
        ).start()
    except (RuntimeError, OSError) as e:  # e.g. the port is taken
        print(f"dingtalk-emulator demo: could not start on port {port or 'auto'}: {e}", file=sys.stderr)
        return 1
    try:
        base = emu.base_url
        with httpx.Client(base_url=base, timeout=10) as http:
            org = http.get("/_emulator/org").raise_for_status().json()
            print(
                f"DingTalk emulator — {org['orgName']} — {base}  (started in {time.monotonic() - started:.2f} s)"
            )
            print("\nCredentials (an org-internal app; point dingvault's api and oapi base URLs here):")
            for key in ("corpId", "appKey", "appSecret", "robotCode", "agentId", "unifiedAppId"):
                print(f"  {key:13} {org[key]}")
            print("\nRecords the API serves (ground truth, GET /_emulator/truth?kind=K):")
            for kind, n in org["counts"].items():
                print(f"  {kind:18} {n:>8,}")

            tok = http.post(
                "/v1.0/oauth2/accessToken", json={"appKey": org["appKey"], "appSecret": org["appSecret"]}
            ).json()
            _show(
                "App access token (§1.1)",
                "POST",
                "/v1.0/oauth2/accessToken",
                {**tok, "accessToken": tok["accessToken"][:8] + "…"},
            )
            token = tok["accessToken"]
            h = {"x-acs-dingtalk-access-token": token}
            q = {"access_token": token}

            depts = http.post("/topapi/v2/department/listsub", params=q, json={"dept_id": 1}).json()
            _show("Top-level departments (legacy oapi)", "POST", "/topapi/v2/department/listsub", depts)
            first = depts["result"][4]["dept_id"]
            users = http.post(
                "/topapi/v2/user/list", params=q, json={"dept_id": first, "cursor": 0, "size": 2}
            ).json()
            _show(f"Users of department {first}", "POST", "/topapi/v2/user/list", users)

            tpls = http.get(
                "/v1.0/workflow/processes/managements/templates",
                params={"userId": org["adminUserId"]},
                headers=h,
            ).json()
            _show(
                "Approval templates (new API)",
                "GET",
                "/v1.0/workflow/processes/managements/templates",
                [t["flowTitle"] for t in tpls["result"]],
            )
            now_ms = int(time.time() * 1000)
            code = tpls["result"][2]["processCode"]
            ids = http.post(
                "/v1.0/workflow/processes/instanceIds/query",
                json={
                    "processCode": code,
                    "startTime": now_ms - 110 * 86_400_000,
                    "maxResults": 5,
                    "nextToken": 0,
                },
                headers=h,
            ).json()
            _show(
                "Contract approvals in the last 110 days",
                "POST",
                "/v1.0/workflow/processes/instanceIds/query",
                ids,
            )
            if ids["result"]["list"]:
                detail = http.get(
                    "/v1.0/workflow/processInstances",
                    params={"processInstanceId": ids["result"]["list"][0]},
                    headers=h,
                ).json()
                r = detail["result"]
                _show(
                    "One approval",
                    "GET",
                    "/v1.0/workflow/processInstances",
                    {k: r.get(k) for k in ("title", "status", "result", "createTime", "formComponentValues")},
                )

            userid = users["result"]["list"][0]["userid"] if users["result"]["list"] else org["adminUserId"]
            att = http.post(
                "/attendance/list",
                params=q,
                json={
                    "workDateFrom": local_datetime(now_ms - 6 * 86_400_000),
                    "workDateTo": local_datetime(now_ms),
                    "userIdList": [userid],
                    "offset": 0,
                    "limit": 2,
                },
            ).json()
            _show("Attendance results (7-day window, offset/limit)", "POST", "/attendance/list", att)

            leave = http.get(
                "/v1.0/contact/empLeaveRecords",
                params={
                    "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 364 * 86400)),
                    "maxResults": 3,
                    "nextToken": "0",
                },
                headers=h,
            ).json()
            _show("Employees who left (365-day window)", "GET", "/v1.0/contact/empLeaveRecords", leave)

            denied = http.get(
                "/v1.0/workflow/processInstances",
                params={"processInstanceId": "nope"},
                headers={"x-acs-dingtalk-access-token": "bad"},
            )
            _show(
                f"A bad token → HTTP {denied.status_code}",
                "GET",
                "/v1.0/workflow/processInstances",
                denied.json(),
            )

            mutated = http.post("/_emulator/mutate", json={"op": "approval.start"}).json()
            _show(
                "Control API: start an approval (pushes bpms_instance_change over Stream)",
                "POST",
                "/_emulator/mutate",
                mutated,
            )
        if serve:
            print(f"\nServing on {base} — Ctrl-C to stop.")
            try:
                while emu.thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        emu.stop()
