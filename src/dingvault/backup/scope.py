"""Scope: which part of the organisation a backup covers (Corso's "selectors", as a first-class object).

A scope selects departments (each with or without its subtree), users, kinds, drive spaces, and
excludes files by extension or size. An empty scope is the whole organisation.

Department membership is **resolved at run time from the department tree of this run**: the engine
feeds every department and user item it sees (``learn_department`` / ``learn_user``) before the other
families run, so a user moved into an included department is included from the next run on, and a
department created under an included subtree is included too. Nothing about membership is frozen in
the config file except the selectors themselves.

Collectors only rely on the small protocol below (``includes_user``, ``includes_dept``,
``includes_kind``, ``includes_file``; ``includes_space`` where they list drive spaces — None when every space is wanted).
``includes_file`` answering False means "keep the file's metadata, do not download its content".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingvault.source.items import KINDS

# The item kinds of the shared ground-truth contract (docs/coverage.md lists where each comes from).
KNOWN_KINDS: tuple[str, ...] = KINDS

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


class ScopeError(ValueError):
    """A scope selector in the config or on the command line is invalid; the message names it."""


def parse_size(value: int | str | None, name: str = "max_file_size") -> int | None:
    """``5GB``, ``500MiB``, ``1024`` → bytes; None/0/"" → no limit. ``name``: the setting, for errors."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int):
        if value < 0:
            raise ScopeError(f"{name} must be positive, got {value}")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ScopeError(f"{name} {value!r} is not a size such as 500MB or 5GiB")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    letter = unit[:1] if unit[:1] in "kmgt" and unit else ""
    power = "kmgt".index(letter) + 1 if letter else 0
    return int(number * (base**power if letter else _UNITS.get(unit, 1)))


@dataclass(frozen=True)
class DeptSelector:
    dept_id: str
    subtree: bool = True


@dataclass
class Scope:
    departments: list[DeptSelector] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    spaces: set[str] = field(default_factory=set)
    exclude_extensions: set[str] = field(default_factory=set)
    max_file_size: int | None = None
    # `--dept` on the command line: a further limit on top of `departments` (never a widening).
    cli_departments: list[DeptSelector] = field(default_factory=list)
    # Learned during a run: dept_id -> parent_id, and userid -> its department ids.
    _parents: dict[str, str | None] = field(default_factory=dict, repr=False)
    _user_depts: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _included_cache: dict[str, bool] = field(default_factory=dict, repr=False)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, table: Mapping[str, Any] | None) -> Scope:
        table = dict(table or {})
        unknown = set(table) - {
            "departments",
            "users",
            "kinds",
            "spaces",
            "exclude_extensions",
            "max_file_size",
        }
        if unknown:
            raise ScopeError(f"unknown [scope] keys: {', '.join(sorted(unknown))}")
        depts: list[DeptSelector] = []
        for entry in table.get("departments", []) or []:
            if isinstance(entry, Mapping):
                if "id" not in entry:
                    raise ScopeError(f"[scope] departments entry {dict(entry)!r} has no id")
                depts.append(DeptSelector(str(entry["id"]), bool(entry.get("subtree", True))))
            else:
                depts.append(DeptSelector(str(entry), True))
        scope = cls(
            departments=depts,
            users={str(u) for u in table.get("users", []) or []},
            spaces={str(s) for s in table.get("spaces", []) or []},
            exclude_extensions={_norm_ext(e) for e in table.get("exclude_extensions", []) or []},
            max_file_size=parse_size(table.get("max_file_size")),
        )
        scope.kinds = scope._check_kinds(table.get("kinds", []) or [])
        return scope

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.departments:
            out["departments"] = [{"id": d.dept_id, "subtree": d.subtree} for d in self.departments]
        if self.users:
            out["users"] = sorted(self.users)
        if self.kinds:
            out["kinds"] = sorted(self.kinds)
        if self.spaces:
            out["spaces"] = sorted(self.spaces)
        if self.exclude_extensions:
            out["exclude_extensions"] = sorted(self.exclude_extensions)
        if self.max_file_size:
            out["max_file_size"] = self.max_file_size
        return out

    @staticmethod
    def _check_kinds(kinds: Iterable[str]) -> set[str]:
        result = {str(k).strip() for k in kinds if str(k).strip()}
        bad = result - set(KNOWN_KINDS)
        if bad:
            raise ScopeError(
                f"unknown kind(s) {', '.join(sorted(bad))}; known kinds: {', '.join(KNOWN_KINDS)}"
            )
        return result

    def narrowed(self, kinds: Iterable[str] | None = None, depts: Iterable[str] | None = None) -> Scope:
        """This scope further limited by command-line ``--kinds`` / ``--dept`` (never widened)."""
        new = Scope(
            departments=list(self.departments),
            users=set(self.users),
            kinds=set(self.kinds),
            spaces=set(self.spaces),
            exclude_extensions=set(self.exclude_extensions),
            max_file_size=self.max_file_size,
        )
        if kinds:
            wanted = self._check_kinds(kinds)
            new.kinds = (new.kinds & wanted) if new.kinds else wanted
            if not new.kinds:
                raise ScopeError("--kinds selects nothing inside the configured scope")
        if depts:
            # A command-line department narrows to its subtree; membership in the configured scope
            # is still required (checked in includes_dept through the configured selectors).
            new.cli_departments = [DeptSelector(str(d), True) for d in depts]
        return new

    # ---- tree learning ------------------------------------------------------------------------
    @property
    def needs_tree(self) -> bool:
        """True when membership depends on the department tree (so contacts must be read first)."""
        return bool(self.departments or self.cli_departments)

    @property
    def is_everything(self) -> bool:
        return not (self.needs_tree or self.users or self.kinds or self.spaces)

    def learn_department(self, dept_id: Any, parent_id: Any) -> None:
        self._parents[str(dept_id)] = None if parent_id in (None, "", 0, "0") else str(parent_id)
        self._included_cache.clear()

    def learn_user(self, userid: str, dept_ids: Iterable[Any]) -> None:
        self._user_depts[str(userid)] = tuple(str(d) for d in dept_ids)

    # ---- the protocol collectors use ----------------------------------------------------------
    def includes_kind(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds

    def includes_dept(self, dept_id: Any) -> bool:
        dept = str(dept_id)
        cached = self._included_cache.get(dept)
        if cached is None:
            cached = self._matches(dept, self.departments) and self._matches(dept, self.cli_departments)
            self._included_cache[dept] = cached
        return cached

    def includes_user(self, userid: Any) -> bool:
        uid = str(userid)
        if not self.needs_tree:
            return not self.users or uid in self.users
        if uid in self.users and not self.cli_departments:
            return True
        return any(self.includes_dept(d) for d in self._user_depts.get(uid, ()))

    @property
    def includes_space(self) -> Callable[[Any], bool] | None:
        """A space filter, or None when every space is wanted.

        None (rather than an always-true function) tells a collector that its listing of spaces is
        the whole listing, so it may detect deleted spaces; a filtered listing never can.
        """
        if not self.spaces:
            return None
        spaces = self.spaces
        return lambda space_id: str(space_id) in spaces

    def includes_file(self, name: str | None, size: int | None) -> bool:
        if self.max_file_size is not None and size is not None and size > self.max_file_size:
            return False
        if self.exclude_extensions and name:
            lowered = name.lower()
            if any(lowered.endswith(ext) for ext in self.exclude_extensions):
                return False
        return True

    # ---- helpers ------------------------------------------------------------------------------
    def _matches(self, dept: str, selectors: list[DeptSelector]) -> bool:
        if not selectors:
            return True
        direct = {s.dept_id for s in selectors}
        if dept in direct:
            return True
        subtree_roots = {s.dept_id for s in selectors if s.subtree}
        if not subtree_roots:
            return False
        seen: set[str] = set()
        current = self._parents.get(dept)
        while current is not None and current not in seen:  # `seen` guards a cyclic (bad) tree
            if current in subtree_roots:
                return True
            seen.add(current)
            current = self._parents.get(current)
        return False


def _norm_ext(ext: str) -> str:
    ext = str(ext).strip().lower()
    return ext if ext.startswith(".") else "." + ext
