"""Stream mode (dingtalk-api.md §7.2): connection registration and the WebSocket hub.

Interface (stable; the rest of the emulator codes against it):

    hub = StreamHub(app_key=..., app_secret=..., corp_id=..., unified_app_id=...)
    hub.routes()                      -> Starlette routes: POST /v1.0/gateway/connections/open, WS /connect
    hub.publish_event(event_type, data: dict) -> eventId    (EVENT frame, re-pushed until ACKed)
    hub.publish_callback(topic, data: dict)   -> messageId  (CALLBACK frame, fire-and-forget)
    hub.drop_connections(reason)      -> sends SYSTEM/disconnect to every open connection
"""

from __future__ import annotations

from typing import Any


class StreamHub:  # placeholder until the real hub lands; keeps the interface importable
    def __init__(self, *, app_key: str, app_secret: str, corp_id: str, unified_app_id: str) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.corp_id = corp_id
        self.unified_app_id = unified_app_id

    def routes(self) -> list[Any]:
        return []

    def publish_event(self, event_type: str, data: dict[str, Any]) -> str:
        return ""

    def publish_callback(self, topic: str, data: dict[str, Any]) -> str:
        return ""

    def drop_connections(self, reason: str = "connection is expired") -> None:
        return None
