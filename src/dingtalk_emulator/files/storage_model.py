"""The storage model (§5.1): spaces holding dentries (files and folders) with versions.

Spaces are created at start-up (a few dozen: one per top-level department plus a company-wide
space, one per group, one per knowledge base), but a space's dentries are generated only when it is
first touched — a pure function of (seed, space) — and then kept as small objects; mutations edit
them in place. File bytes are never stored: `ContentSpec`s describe them (see render.py).

Permissions: an org drive space lists departments whose members (and sub-departments' members)
may read it; the org admin manages every org space; group spaces belong to the group's members;
knowledge-base spaces follow their workspace; "my docs" belong to one person.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dingtalk_emulator.company.seeding import iso_seconds

from . import corpus
from .blob import Part
from .render import MIN_SIZE, ContentSpec, render
from .seeding import h64, rng
from .sizing import FilesProfile, pick_size

EXT_WEIGHTS = (("docx", 30), ("xlsx", 20), ("pdf", 20), ("csv", 10), ("txt", 10), ("png", 10))
CATEGORY = {
    "docx": "DOCUMENT",
    "xlsx": "DOCUMENT",
    "pdf": "DOCUMENT",
    "csv": "DOCUMENT",
    "txt": "DOCUMENT",
    "png": "IMAGE",
    "adoc": "ALIDOC",
}
DAY_MS = 86_400_000
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HOSTILE_NAMES = (
    "..",
    "..\\..\\windows\\system32.txt",
    "CON.txt",
    " 前後有空格 .docx",
    "報告\u202egpj.exe.txt",  # right-to-left override hides the real extension
    "tab\tand\nnewline.csv",
    "emoji 📄 合約.pdf",
    "very long name " + "長" * 200 + ".txt",
    "NFD cafe\u0301 vs NFC café.txt",
    "same name.TXT",
    "same name.txt",
)
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def iso(ms: int) -> str:
    return iso_seconds(int(ms // 1000) * 1000)  # whole seconds, floored


def b62id(length: int, *parts: object) -> str:
    n = int.from_bytes(hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=24).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


def numeric_id(*parts: object, digits: int = 11) -> str:
    low = 10 ** (digits - 1)
    return str(low + h64(*parts) % (9 * low))


@dataclass
class Version:
    version: int
    size: int
    modified_ms: int
    modifier: str  # unionId


@dataclass
class Dentry:
    space_id: str
    dentry_id: str
    parent_id: str
    type: str  # FILE | FOLDER
    name: str
    ext: str
    kind: str
    lang: str
    creator: str
    create_ms: int
    uuid: str
    content_key: str
    versions: list[Version] = field(default_factory=list)
    status: str = "NORMAL"
    driver: str = "DINGTALK"  # ALIDOC for online documents
    deleted_ms: int = 0
    deleted_by: str = ""
    doc_version: int = 1  # online documents: bumped by doc.edit

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def category(self) -> str:
        return "OTHER" if self.type == "FOLDER" else CATEGORY.get(self.ext, "OTHER")

    def spec(self, version: int | None = None) -> ContentSpec:
        v = self.versions[(version or self.current.version) - 1]
        return ContentSpec(self.content_key, self.ext, v.version, v.size, self.kind, self.lang)


@dataclass
class Space:
    space_id: str
    name: str
    space_type: str  # org | personal (the API value)
    origin: str  # drive | group | wiki
    create_ms: int
    n_files: int
    acl_depts: tuple[int, ...] | None = None  # None: everyone in the org
    members: Callable[[], set[str]] | None = None  # unionIds (groups, personal spaces)
    owner: str = ""
    admin_managed: bool = True
    quota: int = 1 << 40
    hostile_names: bool = False  # add the HOSTILE_NAMES files (the company-wide space)
    authors: Callable[[], list[str]] | None = None  # who wrote the generated files (default: initial readers)
    # Filled lazily:
    dentries: dict[str, Dentry] | None = None
    children: dict[str, list[str]] | None = None
    modify_ms: int = 0
    rev: int = 0  # bumped by every mutation; keys the listing cache
    cache: dict[Any, Any] = field(default_factory=dict)


class StorageModel:
    def __init__(
        self, seed: int, people: Any, prof: FilesProfile, anchor_ms: int, initial: Any = None
    ) -> None:
        self.seed = seed
        self.people = people
        self.initial = initial if initial is not None else people  # the org as generated
        self.prof = prof
        self.anchor_ms = anchor_ms
        self.spaces: dict[str, Space] = {}
        self._lock = threading.RLock()
        self.digests: dict[tuple[str, int], str] = {}  # (content key, version) -> sha256 (bounded below)
        self.subscriptions: list[dict[str, str]] = []  # POST /v1.0/storage/events/subscribe records
        self._drive: list[Space] = []
        self._drive_count = -1

    # -- spaces -----------------------------------------------------------------------------
    def add_space(self, space: Space) -> Space:
        self.spaces[space.space_id] = space
        return space

    def new_space_id(self, *parts: object) -> str:
        sid = numeric_id(self.seed, "space", *parts)
        while sid in self.spaces:
            sid = str(int(sid) + 1)
        return sid

    def can_read(self, space: Space, unionid: str, people: Any = None) -> bool:
        people = people or self.people
        user = people.by_unionid(unionid)
        if user is None:
            return False
        if space.owner:
            return space.owner == unionid
        if space.members is not None:
            return unionid in space.members() or (space.admin_managed and user.admin)
        if user.admin and space.admin_managed:
            return True
        if space.acl_depts is None:
            return True
        return any(self._under(d, space.acl_depts, people) for d in user.dept_id_list)

    def _under(self, dept_id: int, roots: tuple[int, ...], people: Any) -> bool:
        seen = 0
        while dept_id and seen < 64:
            if dept_id in roots:
                return True
            dept = people.dept(dept_id)
            if dept is None:
                return False
            dept_id = dept.parent_id
            seen += 1
        return False

    def readers(self, space: Space) -> list[str]:
        if space.owner:
            return [space.owner]
        if space.members is not None:
            return sorted(space.members())
        return [u.unionid for u in self.people.users if self.can_read(space, u.unionid)]

    # -- dentries ---------------------------------------------------------------------------
    def tree(self, space: Space) -> dict[str, Dentry]:
        if space.dentries is None:
            with self._lock:
                if space.dentries is None:
                    self._generate(space)
        assert space.dentries is not None
        return space.dentries

    def _authors(self, space: Space) -> list[str]:
        # From the org as generated, so a space's content does not depend on when it is first listed.
        if space.owner:
            return [space.owner]
        if space.authors is not None:
            found = space.authors()
        else:
            found = [u.unionid for u in self.initial.users if self.can_read(space, u.unionid, self.initial)]
        return found or [self.initial.admin.unionid]

    def _generate(self, space: Space) -> None:
        dentries: dict[str, Dentry] = {}
        children: dict[str, list[str]] = {"0": []}
        authors = self._authors(space)
        n = space.n_files
        n_folders = 0 if n < 4 else max(1, n // 8)
        base = int(numeric_id(self.seed, "dentry-base", space.space_id, digits=12))
        folder_ids: list[str] = []
        names_in: dict[str, set[str]] = {}

        def unique(parent: str, name: str) -> str:
            taken = names_in.setdefault(parent, set())
            stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
            candidate, k = name, 1
            while candidate in taken:
                k += 1
                candidate = f"{stem} ({k}){dot}{ext}" if dot else f"{name} ({k})"
            taken.add(candidate)
            return candidate

        for j in range(n_folders + n):
            r = rng(self.seed, "dentry", space.space_id, j)
            did = str(base + j * 7 + 1)
            is_folder = j < n_folders
            if is_folder:
                parent = "0" if j < 3 or not folder_ids else r.choice(["0", *folder_ids[:j]])
            else:
                parent = "0" if not folder_ids or r.random() < 0.3 else r.choice(folder_ids)
            created = space.create_ms + int(
                r.random() * max(DAY_MS, self.anchor_ms - space.create_ms - DAY_MS)
            )
            creator = r.choice(authors)
            lang = corpus.pick_lang(self.seed, space.space_id, j)
            kind = corpus.pick_kind(self.seed, space.space_id, j)
            if is_folder:
                ext = ""
                name = unique(parent, _folder_name(r, lang))
            else:
                ext = self._pick_ext(r, space)
                title = corpus.TITLES[(kind, lang)].format(**_title_slots(r, lang))
                name = unique(parent, _UNSAFE.sub("_", title) + ("" if ext == "adoc" else "." + ext))
            d = Dentry(
                space_id=space.space_id,
                dentry_id=did,
                parent_id=parent,
                type="FOLDER" if is_folder else "FILE",
                name=name,
                ext=ext,
                kind=kind,
                lang=lang,
                creator=creator,
                create_ms=created,
                uuid=b62id(32, self.seed, "uuid", space.space_id, did),
                content_key=f"{self.seed}/{space.space_id}/{did}",
            )
            if ext == "adoc":
                d.driver = "ALIDOC"
            if is_folder:
                d.versions = [Version(1, 0, created, creator)]
                folder_ids.append(did)
            else:
                d.versions = self._versions(r, d, authors)
            dentries[did] = d
            children.setdefault(parent, []).append(did)
            children.setdefault(did, []) if is_folder else None
        if space.hostile_names:
            self._add_hostile(space, dentries, children, base + 7 * (n_folders + n) + 1, authors)
        space.dentries, space.children = dentries, children

    def _add_hostile(
        self,
        space: Space,
        dentries: dict[str, Dentry],
        children: dict[str, list[str]],
        first_id: int,
        authors: list[str],
    ) -> None:
        """Files whose names a careless exporter or restorer would mishandle (no "/": DingTalk names
        cannot contain it), so the vault's export and restore paths meet them in every profile."""
        for k, name in enumerate(HOSTILE_NAMES):
            r = rng(self.seed, "hostile", space.space_id, k)
            did = str(first_id + 7 * k)
            ext = name.rsplit(".", 1)[-1] if "." in name and name.rsplit(".", 1)[-1] in MIN_SIZE else "txt"
            created = space.create_ms + DAY_MS * (1 + k)
            d = Dentry(
                space_id=space.space_id,
                dentry_id=did,
                parent_id="0",
                type="FILE",
                name=name,
                ext=ext,
                kind=corpus.pick_kind(self.seed, "hostile", k),
                lang="zh-Hant",
                creator=authors[0],
                create_ms=created,
                uuid=b62id(32, self.seed, "uuid", space.space_id, did),
                content_key=f"{self.seed}/{space.space_id}/{did}",
            )
            d.versions = [Version(1, max(MIN_SIZE[ext], 20_000 + r.randrange(10_000)), created, authors[0])]
            dentries[did] = d
            children["0"].append(did)

    def _pick_ext(self, r: Any, space: Space) -> str:
        if space.origin == "wiki" and r.random() < 0.45:
            return "adoc"
        total = sum(w for _, w in EXT_WEIGHTS)
        x = r.randrange(total)
        for ext, w in EXT_WEIGHTS:
            if x < w:
                return ext
            x -= w
        return "txt"

    def _versions(self, r: Any, d: Dentry, authors: list[str]) -> list[Version]:
        if d.ext == "adoc":
            return [Version(1, 0, d.create_ms, d.creator)]
        count = (
            1
            if r.random() < 0.7
            else min(self.prof.max_versions, 2 + int(r.random() * (self.prof.max_versions - 1)))
        )
        size = pick_size(r, self.prof, MIN_SIZE[d.ext], big_ok=d.ext in ("docx", "xlsx", "pdf", "png"))
        out = []
        t = d.create_ms
        for v in range(1, count + 1):
            out.append(Version(v, size, t, d.creator if v == 1 else r.choice(authors)))
            size = max(MIN_SIZE[d.ext], size + int(size * r.uniform(-0.02, 0.08)))
            t = min(self.anchor_ms - 60_000, t + int(r.random() * 30 * DAY_MS) + 60_000)
        return out

    def touch(self, space: Space, now_ms: int) -> None:
        """Record a change in the space: bumps its modify time and invalidates cached listings."""
        space.modify_ms = max(space.modify_ms, now_ms)
        space.rev += 1
        space.cache.clear()

    def cached(self, space: Space, key: Any, compute: Callable[[], Any]) -> Any:
        """Per-space memo of listings, dentry JSON and sums; cleared by `touch` (bounded per space)."""
        hit = space.cache.get(key)
        if hit is None:
            if len(space.cache) > 50_000:
                space.cache.clear()
            hit = space.cache[key] = compute()
        return hit

    def sorted_children(
        self, space: Space, parent_id: str, key_name: str, key: Callable[[Dentry], Any], desc: bool
    ) -> list[Dentry]:
        return self.cached(
            space,
            ("children", parent_id, key_name, desc),
            lambda: sorted(self.listing(space, parent_id), key=key, reverse=desc),
        )

    def used_quota(self, space: Space) -> int:
        if space.dentries is None:
            return 0 if space.n_files == 0 else -1
        return self.cached(
            space,
            ("used",),
            lambda: sum(
                v.size for d in self.tree(space).values() if d.status == "NORMAL" for v in d.versions
            ),
        )

    def drive_spaces(self) -> list[Space]:
        if self._drive_count != len(self.spaces):
            self._drive = [s for s in self.spaces.values() if s.origin == "drive"]
            self._drive_count = len(self.spaces)
        return self._drive

    def get(self, space: Space, dentry_id: str) -> Dentry | None:
        return self.tree(space).get(dentry_id)

    def listing(self, space: Space, parent_id: str) -> list[Dentry]:
        tree = self.tree(space)
        assert space.children is not None
        return [tree[i] for i in space.children.get(parent_id, []) if tree[i].status == "NORMAL"]

    def all_dentries(self, space: Space) -> list[Dentry]:
        return list(self.tree(space).values())

    def path_of(self, d: Dentry) -> str:
        parts = [d.name]
        tree = self.tree(self.spaces[d.space_id])
        parent, guard = d.parent_id, 0
        while parent != "0" and parent in tree and guard < 64:
            parts.append(tree[parent].name)
            parent = tree[parent].parent_id
            guard += 1
        return "./" + "/".join(reversed(parts))

    # -- content ----------------------------------------------------------------------------
    def content(self, d: Dentry, version: int | None = None) -> Part:
        return render(d.spec(version))

    def sha256(self, d: Dentry, version: int | None = None) -> str:
        spec = d.spec(version)
        key = (spec.key, spec.version)
        digest = self.digests.get(key)
        if digest is None:
            h = hashlib.sha256()
            for chunk in render(spec).chunks():
                h.update(chunk)
            digest = h.hexdigest()
            if len(self.digests) > 1_000_000:  # bounded: ~100 MB worst case
                self.digests.clear()
            self.digests[key] = digest
        return digest

    # -- mutation helpers --------------------------------------------------------------------
    def add_dentry(
        self,
        space: Space,
        parent_id: str,
        name: str,
        ext: str,
        size: int,
        unionid: str,
        now_ms: int,
        folder: bool = False,
    ) -> Dentry:
        tree = self.tree(space)
        assert space.children is not None
        did = str(
            int(numeric_id(self.seed, "dentry-base", space.space_id, digits=12)) + 7 * (len(tree) + 1) + 3
        )
        while did in tree:
            did = str(int(did) + 7)
        taken = {tree[i].name for i in space.children.get(parent_id, []) if tree[i].status == "NORMAL"}
        if name in taken:
            raise ValueError(f"name {name!r} already exists in folder {parent_id}")
        lang = corpus.pick_lang(self.seed, space.space_id, did)
        d = Dentry(
            space_id=space.space_id,
            dentry_id=did,
            parent_id=parent_id,
            type="FOLDER" if folder else "FILE",
            name=name,
            ext="" if folder else ext,
            kind=corpus.pick_kind(self.seed, space.space_id, did),
            lang=lang,
            creator=unionid,
            create_ms=now_ms,
            uuid=b62id(32, self.seed, "uuid", space.space_id, did),
            content_key=f"{self.seed}/{space.space_id}/{did}",
            versions=[Version(1, 0 if folder else max(size, MIN_SIZE.get(ext, 64)), now_ms, unionid)],
        )
        tree[did] = d
        space.children.setdefault(parent_id, []).append(did)
        if folder:
            space.children.setdefault(did, [])
        return d

    def move(self, d: Dentry, new_parent: str) -> None:
        space = self.spaces[d.space_id]
        assert space.children is not None
        if new_parent != "0":
            target = self.tree(space).get(new_parent)
            if target is None or target.type != "FOLDER" or target.status != "NORMAL":
                raise ValueError(f"target folder {new_parent} not found")
            # A folder cannot move into itself or its own subtree.
            p, guard = new_parent, 0
            while p != "0" and guard < 64:
                if p == d.dentry_id:
                    raise ValueError("cannot move a folder into itself")
                p = self.tree(space)[p].parent_id
                guard += 1
        space.children[d.parent_id].remove(d.dentry_id)
        space.children.setdefault(new_parent, []).append(d.dentry_id)
        d.parent_id = new_parent

    def iter_subtree(self, d: Dentry) -> Iterator[Dentry]:
        space = self.spaces[d.space_id]
        assert space.children is not None
        yield d
        for c in list(space.children.get(d.dentry_id, [])):
            yield from self.iter_subtree(self.tree(space)[c])


def _folder_name(r: Any, lang: str) -> str:
    names = {
        "zh-Hant": ["合約", "發票", "會議紀錄", "人事資料", "報價", "二〇二五年度", "二〇二六年度", "存檔"],
        "zh-Hans": ["合同", "发票", "会议纪要", "人事资料", "报价"],
        "pt": ["Contratos", "Facturas", "Actas", "Recursos Humanos", "Arquivo"],
        "en": ["Contracts", "Invoices", "Minutes", "HR", "Archive"],
    }[lang]
    return r.choice(names)


def _title_slots(r: Any, lang: str) -> dict[str, str]:
    year = r.randrange(2021, 2027)
    return {
        "ref": f"{year}-{r.randrange(1, 9999):04d}",
        "date": f"{year}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
        "year": str(year),
        "person": r.choice(corpus.PEOPLE[lang]),
    }
