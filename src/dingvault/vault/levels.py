"""Classification levels and the storage classes that carry them.

A *class* is what a pack holds and which key encrypts it: the three classification levels, plus
``meta`` for the vault's own structures (snapshot trees), which every key slot can read.
"""

from __future__ import annotations

from enum import IntEnum

LEVELS = ("public", "internal", "confidential")


class StorageClass(IntEnum):
    META = 0
    PUBLIC = 1
    INTERNAL = 2
    CONFIDENTIAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | StorageClass) -> StorageClass:
        if isinstance(value, StorageClass):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown level {value!r}; expected one of {', '.join(LEVELS)} (or meta)"
            ) from None


def parse_level(value: str | int | StorageClass) -> StorageClass:
    """A classification level (``public``/``internal``/``confidential``); ``meta`` is refused."""
    cls = StorageClass.parse(value)
    if cls is StorageClass.META:
        raise ValueError("'meta' is the vault's own class, not a classification level")
    return cls
