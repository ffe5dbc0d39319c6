"""Group chats the API can reach (dingtalk-api.md §3.4), shared by the groups and files families.

No API lists all groups of a standard org. Reachable are: department groups (their chatid is the
department's `dept_group_chat_id`), groups the app created through the API, and groups configured
by the operator (`CollectorSettings.known_chat_ids`). For each chatid:

* `GET /chat/get?chatid=...` → `chat_info` (name, owner, useridlist, status 1 normal / 2 disbanded);
* `POST /v1.0/im/chat/{chatId}/convertToOpenConversationId` → `openConversationId` (the response
  field name comes from the official SDK's model, the doc page does not show it — uncertain),
  which is the group's identity and what the group file space is looked up by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dingvault.source.collectors.base import bounded_map, is_family_fatal
from dingvault.source.errors import DingTalkError, NotFound

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient
    from dingvault.source.collectors.directory import Directory

CHAT_GET = "/chat/get"
TO_OPEN_CID = "/v1.0/im/chat/{chatId}/convertToOpenConversationId"


@dataclass
class Conversation:
    chatid: str
    open_conversation_id: str | None
    chat_info: dict[str, Any] | None
    dept_id: int | None  # the department whose group this is, if any
    error: str | None = None  # why it could not be read

    @property
    def owner(self) -> str | None:
        owner = (self.chat_info or {}).get("owner")
        return str(owner) if owner else None


async def load_conversations(
    client: DingTalkClient, directory: Directory, extra_chat_ids: list[str], *, concurrency: int = 8
) -> list[Conversation]:
    wanted: dict[str, int | None] = {}
    for dept in directory.departments.values():
        chatid = (dept.detail or {}).get("dept_group_chat_id")
        if chatid:
            wanted.setdefault(str(chatid), dept.dept_id)
    for chatid in extra_chat_ids:
        wanted.setdefault(chatid, None)
    out: list[Conversation] = []

    async def read(chatid: str) -> Conversation:
        info: dict[str, Any] | None = None
        try:
            body = await client.oapi("GET", CHAT_GET, params={"chatid": chatid})
            candidate = body.get("chat_info")
            info = candidate if isinstance(candidate, dict) else None
        except NotFound:
            # 40016: no such chat (e.g. a department without a group): nothing to capture.
            return Conversation(chatid, None, None, wanted[chatid])
        answer = await client.api("POST", TO_OPEN_CID, path={"chatId": chatid})
        cid = answer.get("openConversationId")
        return Conversation(chatid, str(cid) if cid else None, info, wanted[chatid])

    async for chatid, result in bounded_map(read, list(wanted), concurrency):
        if isinstance(result, BaseException):
            if is_family_fatal(result):
                raise result
            reason = str(result) if isinstance(result, DingTalkError) else repr(result)
            out.append(Conversation(chatid, None, None, wanted[chatid], error=reason))
            continue
        out.append(result)
    return out
