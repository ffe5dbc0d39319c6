"""The connector: read an organisation's DingTalk through the Open Platform API.

    from dingvault.source import ClientConfig, DingTalkClient, build_collectors, probe

    async with DingTalkClient(ClientConfig(app_key=..., app_secret=...)) as client:
        print(await probe(client))                      # which families the granted scopes allow
        for collector in build_collectors(client):
            async for batch in collector.collect(mode="full", cursors={}, scope=AllScope()):
                ...                                      # store batch.items, then commit batch.cursor

Public surface: the client and its errors (`client`, `errors`), the item model (`items`,
`filenames`), the collectors (`collectors`), `probe`, and the coverage data (`coverage`).
Everything in a module whose name starts with `_` is private.
"""

from dingvault.source.client import ClientConfig, DingTalkClient, RetryPolicy
from dingvault.source.collectors import FAMILIES, CollectorSettings, build_collectors
from dingvault.source.errors import (
    AuthenticationError,
    BadResponse,
    DingTalkError,
    DownloadError,
    IncompleteCollection,
    IpBanned,
    NotFound,
    PermissionDenied,
    QuotaExhausted,
    Throttled,
)
from dingvault.source.filenames import safe_filename
from dingvault.source.items import AllScope, AttachmentRef, Batch, CompleteListing, CursorUpdate, Item
from dingvault.source.probe import FamilyProbe, probe

__all__ = [
    "FAMILIES",
    "AllScope",
    "AttachmentRef",
    "AuthenticationError",
    "BadResponse",
    "Batch",
    "ClientConfig",
    "CollectorSettings",
    "CompleteListing",
    "CursorUpdate",
    "DingTalkClient",
    "DingTalkError",
    "DownloadError",
    "FamilyProbe",
    "IncompleteCollection",
    "IpBanned",
    "Item",
    "NotFound",
    "PermissionDenied",
    "QuotaExhausted",
    "RetryPolicy",
    "Throttled",
    "build_collectors",
    "probe",
    "safe_filename",
]
