"""The vault's exceptions. Every one carries a message that says what failed and where."""

from __future__ import annotations


class VaultError(Exception):
    """Base class for every vault failure."""


class WrongPassphrase(VaultError):
    """No key slot of the vault opens with the given passphrase or recovery key."""


class VaultNotFound(VaultError):
    """The backend holds no vault (no ``config`` object)."""


class VaultExists(VaultError):
    """``init`` found a vault already there."""


class LevelNotAvailable(VaultError):
    """The key slot used to open the vault does not hold the data key of this level."""


class BlobNotFound(VaultError):
    """No index entry (and no pending write) for this blob id."""


class IntegrityError(VaultError):
    """Stored bytes failed authentication, a hash check or a structural check."""


class VaultLocked(VaultError):
    """Another process holds a lock that conflicts with the one requested."""


class HoldViolation(VaultError):
    """An operation would remove data that a hold still needs."""
