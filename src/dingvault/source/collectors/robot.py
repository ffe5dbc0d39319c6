"""Robot-visible messages (dingtalk-api.md §3.2, §3.3).

The only chat content the API gives a standard org: every 1:1 message sent to the app's robot and
group messages that @-mention it, pushed in real time over Stream (topic `/v1.0/im/bot/messages/get`)
or HTTP. They **cannot be back-filled**: `collect` yields nothing; the service's event listener turns
each pushed payload into an item with `robot_message_item(payload)` and hands it to the engine.
Media (`picture`, `audio`, `video`, `file`, pictures inside `richText`) are fetched later by
`downloadCode` through `POST /v1.0/robot/messageFiles/download` (a signed URL; the downloaded
object has a generic name, so the message's `fileName`/type names it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import Collector, as_list, content_hash, iso_from_ms, ref_dict
from dingvault.source.errors import BadResponse
from dingvault.source.items import AttachmentRef, Batch, CursorKey, Item, Mode, ScopeFilter

MESSAGE_FILE_DOWNLOAD = "/v1.0/robot/messageFiles/download"
MEDIA_EXTENSIONS = {"picture": "png", "audio": "amr", "video": "mp4"}


class RobotCollector(Collector):
    name = "robot"
    family = "robot"
    kinds = ("robot_message",)
    scopes = ("qyapi_robot_sendmsg",)
    apis = (MESSAGE_FILE_DOWNLOAD,)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        # Nothing to list: robot messages arrive only as they are sent (no history API, §3.1).
        return
        yield  # pragma: no cover - makes this an async generator

    @property
    def robot_code(self) -> str:
        # An app robot's code is the app's client id (the stream SDK uses it so, §3.3).
        return self.settings.robot_code or self.client.config.app_key

    def message_item(self, payload: Mapping[str, Any]) -> Item:
        return robot_message_item(payload, self.robot_code)

    async def _media_url(self, download_code: str, robot_code: str) -> tuple[str, dict[str, str]]:
        body = await self.client.api(
            "POST", MESSAGE_FILE_DOWNLOAD, json={"downloadCode": download_code, "robotCode": robot_code}
        )
        url = body.get("downloadUrl")
        if not isinstance(url, str) or not url:
            raise BadResponse(
                "messageFiles/download answer without downloadUrl", endpoint=MESSAGE_FILE_DOWNLOAD
            )
        return url, {}

    async def open_attachment(self, ref: AttachmentRef | Mapping[str, Any]) -> AsyncIterator[bytes]:
        data = ref_dict(ref)
        code, robot_code = str(data["downloadCode"]), str(data.get("robotCode") or self.robot_code)
        url, headers = await self._media_url(code, robot_code)

        async def refresh() -> tuple[str, dict[str, str]]:
            return await self._media_url(code, robot_code)

        async for chunk in self.client.download(url, headers, refresh=refresh):
            yield chunk


def robot_message_item(payload: Mapping[str, Any], robot_code: str) -> Item:
    """An item for one pushed robot message (the callback's `data`, verbatim in `raw`)."""
    message = dict(payload)
    conversation, msg_id = message.get("conversationId"), message.get("msgId")
    if not conversation or not msg_id:
        raise BadResponse("robot message without conversationId/msgId", endpoint="robot callback")
    msgtype = str(message.get("msgtype") or "")
    text = (message.get("text") or {}).get("content") if isinstance(message.get("text"), dict) else None
    return Item(
        kind="robot_message",
        source_id=f"{conversation}/{msg_id}",
        raw={"message": message},
        fields={
            "title": (text or "").strip()[:80] or msgtype,
            "created": iso_from_ms(message.get("createAt")),
            "owner": message.get("senderStaffId"),
            "conversation": message.get("conversationTitle"),
            "conversation_type": {"1": "single", "2": "group"}.get(str(message.get("conversationType"))),
            "msgtype": msgtype,
        },
        version_key=content_hash(message),
        attachments=media_refs(message, robot_code),
        container=str(conversation),
    )


def media_refs(message: Mapping[str, Any], robot_code: str) -> list[AttachmentRef]:
    msgtype = str(message.get("msgtype") or "")
    content = message.get("content") if isinstance(message.get("content"), dict) else {}
    refs: list[AttachmentRef] = []

    def add(code: Any, name: str) -> None:
        if code:
            refs.append(
                AttachmentRef(
                    name=name,
                    size=None,
                    ref={"downloadCode": str(code), "robotCode": robot_code},
                    kind="robot_media",
                )
            )

    msg_id = str(message.get("msgId") or "media")
    if msgtype in ("picture", "audio", "video", "file"):
        name = content.get("fileName") or f"{msg_id}.{MEDIA_EXTENSIONS.get(msgtype, 'file')}"
        add(content.get("downloadCode"), str(name))
    elif msgtype == "richText":
        for n, part in enumerate(as_list(content.get("richText"))):
            if isinstance(part, dict) and (part.get("downloadCode") or part.get("pictureDownloadCode")):
                add(part.get("downloadCode") or part.get("pictureDownloadCode"), f"{msg_id}-{n}.png")
    return refs
