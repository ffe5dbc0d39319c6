"""Robot messages (§3.2, §3.3): the `robot.message` mutation pushes a message as a Stream
CALLBACK on `/v1.0/im/bot/messages/get`; `POST /v1.0/robot/messageFiles/download` turns a
`downloadCode` into a signed, expiring URL served under `/_blob/robot/`; `robot_message` truth.

The download URL lives 1 hour (uncertain: the reference shows an `Expires` parameter, not its span).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dingtalk_emulator.api.storage import oss_error, range_response
from dingtalk_emulator.envelope import ApiError, Call, api_endpoint
from dingtalk_emulator.files import signing
from dingtalk_emulator.files.robot_model import RobotModel, SentMessage
from dingtalk_emulator.files.world import FilesWorld, world
from dingtalk_emulator.state import EmulatorState, MutationError
from dingtalk_emulator.stream import ROBOT_MESSAGE_TOPIC

ROBOT_SCOPE = "qyapi_robot_sendmsg"
URL_SECONDS = 3600
_LOCK = threading.Lock()


def robot(state: EmulatorState) -> RobotModel:
    w = world(state)
    model = getattr(w, "robot", None)
    if model is None:
        with _LOCK:
            model = getattr(w, "robot", None)
            if model is None:
                model = RobotModel(
                    w.seed,
                    w.people,
                    w.groups,
                    state.org.robot_code,
                    w.corp_id,
                    w.prof.robot_conversations,
                    w.prof.robot_messages,
                    w.signing_key,
                )
                w.robot = model  # type: ignore[attr-defined]
    return model


@api_endpoint(ROBOT_SCOPE)
async def message_file_download(call: Call) -> dict[str, Any]:
    model = robot(call.state)
    robot_code = call.body.get("robotCode")
    code = call.body.get("downloadCode")
    if not robot_code:
        raise ApiError(400, "invalidParameter.robotCode.empty", "robotCode is empty")
    if robot_code != model.robot_code:
        raise ApiError(400, "invalidParameter.robotCode.auth", "robotCode does not belong to this app")
    parsed = model.parse_code(str(code or ""), str(robot_code))
    sent = {m.index: m for m in model.sent}
    if parsed is None or parsed[0] not in sent:
        raise ApiError(400, "invalidParameter.downloadCode", "downloadCode is invalid or expired")
    expires = int(call.state.clock()) + URL_SECONDS
    payload = signing.encode_payload([parsed[0], parsed[1]])
    sig = signing.sign(world(call.state).signing_key, "robot", payload, str(expires))
    return {"downloadUrl": f"{call.state.base_url}/_blob/robot/{payload}?Expires={expires}&Signature={sig}"}


def blob_routes(state: EmulatorState) -> list[Route]:
    async def robot_blob(request: Request) -> Response:
        w = world(state)
        model = robot(state)
        payload = request.path_params["payload"]
        expires = request.query_params.get("Expires", "")
        sig = request.query_params.get("Signature", "")
        if not expires or not sig:
            return oss_error(403, "AccessDenied", "Missing Expires or Signature")
        if not signing.verify(w.signing_key, sig, "robot", payload, expires):
            return oss_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        try:
            if state.clock() > int(expires):
                return oss_error(403, "AccessDenied", "Request has expired")
        except ValueError:
            return oss_error(403, "AccessDenied", "Invalid Expires")
        parsed = signing.decode_payload(payload)
        sent = {m.index: m for m in model.sent}
        if not (isinstance(parsed, list) and len(parsed) == 2) or parsed[0] not in sent:
            return oss_error(404, "NoSuchKey", "The specified key does not exist")
        msg = sent[parsed[0]].payload
        part, _mime = model.media(
            parsed[0], parsed[1], msg["msgtype"], msg.get("content", {}).get("fileName", "")
        )
        # The object is served with a generic name (the reference: rename it from the message).
        return range_response(request, part, "application/octet-stream", filename="file.file")

    return [Route("/_blob/robot/{payload}", robot_blob, methods=["GET", "HEAD"])]


MAX_BATCH = 10_000


def m_robot_message(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    """Send one message, or `count` (≤ 10,000) in one call — e.g. to load a Stream client."""
    count = int(params.get("count", 1))
    if not 1 <= count <= MAX_BATCH:
        raise MutationError(f"count must be 1..{MAX_BATCH}")
    model = robot(state)
    if model.next_index + count > model.pool:
        raise MutationError(
            f"only {model.pool - model.next_index} of the profile's {model.pool} robot messages are left"
        )
    if count == 1:
        return _send_one(state, model, params)
    base = int(params.get("rand", model.next_index))
    results = [_send_one(state, model, {**params, "rand": base + i}) for i in range(count)]
    return {
        "sent": count,
        "delivered": sum(r["delivered"] for r in results),
        "first": results[0]["msgId"],
        "last": results[-1]["msgId"],
    }


def _send_one(state: EmulatorState, model: RobotModel, params: dict[str, Any]) -> dict[str, Any]:
    rand = int(params.get("rand", model.next_index))
    which = params.get("conversation")
    convs = model.all_conversations()
    if which in (None, "", "single", "group"):
        pool = [c for c in convs if which in (None, "") or c.type == ("1" if which == "single" else "2")]
    else:
        pool = [c for c in convs if c.conversation_id == which]
    if not pool:
        raise MutationError(f"no robot conversation matches {which!r}")
    conv = pool[rand % len(pool)]
    msgtype = params.get("msgtype")
    try:
        msg = model.build(model.next_index, state.now_ms(), conv, msgtype, params.get("text"))
    except ValueError as e:
        raise MutationError(str(e)) from None
    index = model.next_index
    model.next_index += 1
    persisted = _delivered_before_restart(state)
    if msg["msgId"] in persisted:
        # Replaying the --state journal: this message reached a client before the restart; it is
        # not pushed again (robot messages are never re-pushed) but stays in the truth.
        message_id, delivered = "", True
    else:
        message_id = state.hub.publish_callback(ROBOT_MESSAGE_TOPIC, msg)
        delivered = bool(getattr(state.hub, "callback_delivered", lambda _m: False)(message_id))
        if delivered:
            _remember_delivered(state, msg["msgId"])
    model.sent.append(SentMessage(index, msg, message_id, delivered))
    return {
        "conversationId": conv.conversation_id,
        "msgId": msg["msgId"],
        "msgtype": msg["msgtype"],
        "delivered": delivered,
    }


_DELIVERED_FILE = "robot_delivered.txt"


def _delivered_before_restart(state: EmulatorState) -> set[str]:
    """msgIds delivered in earlier runs of a `--state DIR` emulator (the journal records the
    mutation, not whether a Stream client was there to receive it)."""
    w = world(state)
    cached = getattr(w, "robot_delivered", None)
    if cached is None:
        cached = set()
        if state.config.state_dir:
            path = Path(state.config.state_dir) / _DELIVERED_FILE
            if path.exists():
                cached = {line.strip() for line in path.read_text().splitlines() if line.strip()}
        w.robot_delivered = cached  # type: ignore[attr-defined]
    return cached


def _remember_delivered(state: EmulatorState, msg_id: str) -> None:
    if not state.config.state_dir:
        return
    path = Path(state.config.state_dir) / _DELIVERED_FILE
    try:
        with open(path, "a") as f:
            f.write(msg_id + "\n")
    except OSError as e:  # the message was delivered; only its survival across a restart is lost
        raise MutationError(f"robot message delivered but its delivery could not be persisted: {e}") from e


def truth_messages(state: EmulatorState) -> Iterator[dict[str, Any]]:
    model = robot(state)
    for m in list(model.sent):
        if not m.delivered:
            continue  # lost: nobody was connected, and robot messages are never re-pushed
        if not m.media_sha256 and m.payload["msgtype"] in ("picture", "richText", "file", "audio", "video"):
            m.media_sha256 = model.media_sha256(m.index, m.payload)
        item = {
            "id": f"{m.payload['conversationId']}/{m.payload['msgId']}",
            "msgtype": m.payload["msgtype"],
            "conversationType": m.payload["conversationType"],
            "createAt": m.payload["createAt"],
            "senderStaffId": m.payload["senderStaffId"],
        }
        if m.media_sha256:
            item["sha256"] = m.media_sha256[0]
        yield item


def register(state: EmulatorState) -> None:
    state.mutations["robot.message"] = m_robot_message
    state.truth["robot_message"] = truth_messages


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/v1.0/robot/messageFiles/download", message_file_download, methods=["POST"]),
        *blob_routes(state),
    ]


__all__ = ["FilesWorld", "robot"]
