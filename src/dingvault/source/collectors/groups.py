"""Groups (dingtalk-api.md §3.4): metadata and membership of the group chats the API can reach.

Ordinary group chat *history* is not available through any public API (§3.1); what is captured is
each reachable group's `chat_info` (name, owner, members, status) — see `conversations.py` for
which groups are reachable — plus, in the files family, each group's file space.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import Collector, as_list, content_hash
from dingvault.source.collectors.conversations import CHAT_GET, TO_OPEN_CID, Conversation
from dingvault.source.items import Batch, CompleteListing, CursorKey, Item, Mode, ScopeFilter

CONTAINER = "groups"


class GroupsCollector(Collector):
    name = "groups"
    family = "groups"
    kinds = ("group",)
    scopes = ("qyapi_chat_read",)
    apis = (CHAT_GET, TO_OPEN_CID)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        conversations = await self.context.conversations()
        items = [group_item(c) for c in conversations if c.open_conversation_id and c.chat_info is not None]
        unread = [c for c in conversations if c.error is not None]
        # Every run re-reads every reachable group; one that could not be read must not be taken
        # for deleted.
        complete = [CompleteListing("group", CONTAINER)] if not unread else None
        yield Batch(items=items, complete=complete)
        for conversation in unread:
            self.problems.append(f"group chat {conversation.chatid}: {conversation.error}")
        self.finish()


def group_item(conversation: Conversation) -> Item:
    info = conversation.chat_info or {}
    raw: dict[str, Any] = {"chat_info": info, "chatid": conversation.chatid}
    raw["openConversationId"] = conversation.open_conversation_id
    status = info.get("status")
    return Item(
        kind="group",
        source_id=str(conversation.open_conversation_id),
        raw=raw,
        fields={
            "name": info.get("name"),
            "title": info.get("name"),
            "owner": info.get("owner"),
            "member_count": len(as_list(info.get("useridlist"))),
            "dept_id": conversation.dept_id,
            "status": {1: "normal", 2: "disbanded"}.get(status, status)
            if isinstance(status, int)
            else status,
        },
        version_key=content_hash(raw),
        container=CONTAINER,
    )
