"""Holds: what prune and forget must never remove, whatever the retention policy says.

Governance (legal hold, retention) implements ``HoldProvider``; the vault only asks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class HoldProvider(Protocol):
    def held_snapshot_ids(self) -> Iterable[str]:
        """Snapshots that must not be forgotten (and whose data prune must keep)."""
        ...

    def held_blob_ids(self) -> Iterable[bytes]:
        """Individual blobs to keep even if no snapshot references them any more."""
        ...


class StaticHolds:
    """A HoldProvider over fixed sets (tests, the CLI's ``--hold`` options)."""

    def __init__(self, snapshots: Iterable[str] = (), blobs: Iterable[bytes] = ()) -> None:
        self._snapshots = tuple(snapshots)
        self._blobs = tuple(blobs)

    def held_snapshot_ids(self) -> Iterable[str]:
        return self._snapshots

    def held_blob_ids(self) -> Iterable[bytes]:
        return self._blobs


def held_snapshots(holds: HoldProvider | Iterable[HoldProvider] | None) -> set[str]:
    return {s for h in _providers(holds) for s in h.held_snapshot_ids()}


def held_blob_iter(holds: HoldProvider | Iterable[HoldProvider] | None) -> Iterable[bytes]:
    for h in _providers(holds):
        yield from h.held_blob_ids()


def _providers(holds: HoldProvider | Iterable[HoldProvider] | None) -> list[HoldProvider]:
    if holds is None:
        return []
    if isinstance(holds, HoldProvider):
        return [holds]
    return list(holds)
