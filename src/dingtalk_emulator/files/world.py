"""The files world of one emulator: storage spaces, knowledge bases, groups, robot, signing key.

`world(state)` builds it once (on first use by any files-family module) and keeps it on
`state.org.files_world`. Start-up work is proportional to departments, groups and users only;
dentries are generated per space on first touch.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from dingtalk_emulator.company.people import People

from .groups_model import GroupsModel
from .seeding import h64, rng
from .sizing import FilesProfile, files_profile
from .storage_model import DAY_MS, Space, StorageModel, b62id, iso

_LOCK = threading.Lock()


@dataclass
class Workspace:
    workspace_id: str
    name: str
    type: str  # TEAM | PERSONAL
    space_id: str
    root_node_id: str
    team_id: str
    owner: str  # unionId (PERSONAL)
    creator: str
    create_ms: int
    description: str = ""


class FilesWorld:
    def __init__(self, state: Any) -> None:
        org = state.org
        self.state = state
        self.seed: int = org.seed
        self.corp_id: str = org.corp_id
        self.people = org.people
        # The org as generated, before any mutation: what the generated content is derived from, so
        # it does not depend on when this world was first built (the journal replays mutations in
        # order, but the files world is built lazily, on first use).
        self.initial = People(
            org.seed, org.profile.users, org.profile.resigned, org.profile.teams_per_department, org.anchor_ms
        )
        self.prof: FilesProfile = files_profile(state.config.profile)
        anchor = org.anchor_ms
        self.anchor_ms = anchor
        self.signing_key = hashlib.sha256(f"{org.app_secret}/blob-signing".encode()).digest()
        self.storage = StorageModel(self.seed, self.people, self.prof, anchor, self.initial)
        self.groups = GroupsModel(self.seed, self.people, self.initial, self.prof.api_groups, anchor)
        self.workspaces: dict[str, Workspace] = {}
        self.mine: dict[str, str] = {}  # unionId -> workspaceId
        self.uuid_index: dict[str, tuple[str, str]] = {}  # dentryUuid -> (spaceId, dentryId)
        self.root_nodes: dict[str, str] = {}  # rootNodeId -> workspaceId
        self._indexed: set[str] = set()  # spaces whose dentry uuids are in uuid_index
        # The first sync() reconciles the initial org chart with the live one.
        self._dept_signature = (len(self.initial.departments), 0)
        self._build_drive_spaces()
        self._build_group_spaces()
        self._build_wikis()

    def _space(self, origin: str, key: object, name: str, n_files: int, **kw: Any) -> Space:
        sid = self.storage.new_space_id(origin, key)
        created = self.anchor_ms - (200 + h64(self.seed, "space-age", sid) % 900) * DAY_MS
        return self.storage.add_space(Space(sid, name, "org", origin, created, n_files, **kw))

    def _build_drive_spaces(self) -> None:
        self._space("drive", "company", "全公司共享文件", self.prof.files_per_drive_space, hostile_names=True)
        for dept in self.initial.children(1):
            self._space(
                "drive",
                dept.dept_id,
                f"{dept.name}文件庫",
                self.prof.files_per_drive_space,
                acl_depts=(dept.dept_id,),
            )

    def _build_group_spaces(self, groups: Any = None) -> None:
        for g in groups if groups is not None else list(self.groups.groups.values()):
            sp = self._space(
                "group",
                g.open_conversation_id,
                f"{g.name}的群文件",
                self.prof.files_per_group_space,
                members=self.groups.member_unionids(g),
                admin_managed=False,
                authors=self.groups.initial_member_unionids(g),
            )
            g.space_id = sp.space_id

    def _build_wikis(self) -> None:
        for dept in self.initial.children(1):
            r = rng(self.seed, "wiki", dept.dept_id)
            sp = self._space(
                "wiki",
                ("team", dept.dept_id),
                f"{dept.name}知識庫",
                self.prof.files_per_team_wiki,
                acl_depts=(dept.dept_id,),
            )
            leader = next((u for u in self.initial.members(dept.dept_id) if u.leader), self.initial.admin)
            ws = Workspace(
                b62id(16, self.seed, "ws", sp.space_id),
                f"{dept.name}知識庫",
                "TEAM",
                sp.space_id,
                b62id(32, self.seed, "root", sp.space_id),
                b62id(16, self.seed, "team", dept.dept_id),
                "",
                leader.unionid,
                sp.create_ms,
                description=r.choice(["部門制度與流程", "項目文件", "培訓資料"]),
            )
            self._add_ws(ws)
        for u in self.initial.users:
            self.ensure_mine(u.unionid, self.initial)

    def _add_ws(self, ws: Workspace) -> None:
        self.workspaces[ws.workspace_id] = ws
        self.root_nodes[ws.root_node_id] = ws.workspace_id

    def ensure_mine(self, unionid: str, people: Any = None) -> Workspace | None:
        if unionid in self.mine:
            return self.workspaces[self.mine[unionid]]
        user = (people or self.people).by_unionid(unionid)
        if user is None:
            return None
        keeps_docs = h64(self.seed, "mine", unionid) % 4 == 0
        sp = self._space(
            "wiki",
            ("mine", unionid),
            "我的文件",
            self.prof.files_per_personal_wiki if keeps_docs else 0,
            owner=unionid,
        )
        sp.space_type = "personal"
        ws = Workspace(
            b62id(16, self.seed, "ws", sp.space_id),
            f"{user.name}的文檔",
            "PERSONAL",
            sp.space_id,
            b62id(32, self.seed, "root", sp.space_id),
            "",
            unionid,
            unionid,
            sp.create_ms,
        )
        self._add_ws(ws)
        self.mine[unionid] = ws.workspace_id
        return ws

    def sync(self) -> None:
        """Follow people mutations: department groups come and go, new employees get "my docs"."""
        depts = self.people.departments
        signature = (len(depts), sum(1 for d in depts if d.removed))
        if signature != self._dept_signature:
            self._dept_signature = signature
            created = self.groups.sync_departments(self.state.now_ms())
            if created:
                self._build_group_spaces(created)
        if len(self.mine) < len(self.people.users) or any(
            u.unionid not in self.mine for u in self.people.users[-5:]
        ):
            for u in self.people.users:
                self.ensure_mine(u.unionid)

    # -- lookups --------------------------------------------------------------------------
    def index_space(self, space: Space) -> None:
        for d in self.storage.tree(space).values():
            self.uuid_index[d.uuid] = (space.space_id, d.dentry_id)

    def find_uuid(self, uuid: str) -> tuple[Space, Any] | None:
        hit = self.uuid_index.get(uuid)
        if hit is None:
            # First lookup of an unindexed uuid: index every space once (wiki spaces first).
            for sp in sorted(self.storage.spaces.values(), key=lambda s: s.origin != "wiki"):
                if sp.space_id not in self._indexed:
                    self.index_space(sp)
                    self._indexed.add(sp.space_id)
                    if uuid in self.uuid_index:
                        break
            hit = self.uuid_index.get(uuid)
        if hit is None:
            return None
        space = self.storage.spaces[hit[0]]
        return space, self.storage.tree(space).get(hit[1])

    def workspace_of_space(self, space_id: str) -> Workspace | None:
        for ws in self.workspaces.values():
            if ws.space_id == space_id:
                return ws
        return None


def world(state: Any) -> FilesWorld:
    existing = getattr(state.org, "files_world", None)
    if existing is None:
        with _LOCK:
            existing = getattr(state.org, "files_world", None)
            if existing is None:
                existing = FilesWorld(state)
                state.org.files_world = existing
    existing.sync()  # cheap unless the org chart or the staff changed
    return existing


__all__ = ["FilesWorld", "Workspace", "iso", "world"]
