"""Files and documents (dingtalk-api.md §5): drive spaces, group file spaces, knowledge bases,
each user's "my docs", their files (with versions and content) and online documents (blocks).

Spaces, and who reads them (calls are made as a user's unionId that can see the space):
  * org drive spaces — `GET /v1.0/drive/spaces?spaceType=org`, as the first admin;
  * personal drive spaces — `spaceType=personal`, as each user in scope;
  * group file spaces — `POST /v1.0/convFile/conversations/spaces/query` for every reachable group
    (see `conversations.py`), as the group's owner;
  * knowledge bases — `GET /v2.0/wiki/workspaces` and `GET /v2.0/wiki/mineWorkspaces` as each user;
    a workspace's storage space is found from its root node with `queryDentryId`.

Files: `POST .../dentries/listAll` (flat, newest first), falling back to a recursive walk with
`GET .../dentries` if listAll is refused; `GET .../versions` for files with more than one version;
content by `downloadInfos/query` (signed URL + headers, resumed with Range).
Knowledge-base nodes: `GET /v2.0/wiki/nodes`, recursively. Online documents (`ALIDOC` nodes):
first-level blocks from `GET /v1.0/doc/suites/documents/{docKey}/blocks` (§5.5; only first-level
blocks are documented).

Incremental runs read each space newest-first and stop at the cursor (minus a look-back); its
deletions come from its recycle bin, read beside the listing. Full runs list everything and declare
each space's listing complete, but do not re-read versions or blocks of anything unchanged since the
cursor. Lookups whose answer is taken as fixed are remembered in the cursors (a space's recycle-bin
id, a knowledge base's storage space) and asked for again if a remembered value is refused.

Discovery and reading overlap: a space is read as soon as a listing finds it, a knowledge base is
walked as soon as it is listed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingvault.source.collectors import storage as st
from dingvault.source.collectors.base import (
    Collector,
    as_list,
    bounded_map,
    is_family_fatal,
    ms_from_iso,
    owner_by_unionid,
    ref_dict,
    run_together,
)
from dingvault.source.collectors.file_items import (
    Space,
    Workspace,
    as_int,
    doc_item,
    file_item,
    is_online_doc,
    node_item,
    node_marker,
    space_item,
    workspace_item,
)
from dingvault.source.errors import DingTalkError, NotFound, PermissionDenied
from dingvault.source.items import (
    AttachmentRef,
    Batch,
    CompleteListing,
    CursorKey,
    CursorUpdate,
    Item,
    Mode,
    ScopeFilter,
)

MEMBER_ATTEMPTS = 3  # group members tried as the operator of a group file space


class FilesCollector(Collector):
    name = "files"
    family = "files"
    kinds = ("file", "drive_space", "wiki_workspace", "wiki_node", "doc")
    scopes = (
        "Drive.Space.Read",
        "ConvFile.Space.Read",
        "Wiki.Workspace.Read",
        "Wiki.Node.Read",
        "Storage.File.Read",
        "Storage.DownloadInfo.Read",
    )
    apis = (
        st.DRIVE_SPACES,
        st.GROUP_SPACE,
        st.LIST_ALL,
        st.DENTRIES,
        st.VERSIONS,
        st.DOWNLOAD_INFO,
        st.WIKI_WORKSPACES,
        st.WIKI_MINE,
        st.WIKI_NODES,
        st.UUID_TO_DENTRY,
        st.DOC_BLOCKS,
        st.RECYCLE_BIN,
        st.RECYCLE_ITEMS,
    )

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        self._directory = directory
        people = [(uid, union) for uid, union in directory.people() if scope.includes_user(uid)]
        everyone = directory.people()
        if not everyone:
            raise DingTalkError("no user with a unionId to read files as", endpoint=st.DRIVE_SPACES)
        admin_union = everyone[0][1]
        self._root_converts: bool | None = None
        # Completeness claims (full mode): (kind, container) listed entirely, minus those blocked
        # by a failure or a filter.
        self._claims: set[tuple[str, str]] = set()
        self._blocked: set[tuple[str, str]] = set()
        if len(people) < len(everyone):
            # Team knowledge bases (and their spaces) visible only to people out of scope would look deleted.
            self._blocked.update({("wiki_workspace", "team"), ("drive_space", "wiki")})

        concurrency = self.settings.concurrency
        run = _Run(
            mode=mode,
            cursors=cursors,
            scope=scope,
            includes_space=getattr(scope, "includes_space", None),
            streams=_Streams(2 * concurrency, max_running=_MAX_RUNNING_PER_SLOT * concurrency),
            space_slots=asyncio.Semaphore(concurrency),
            wiki_slots=asyncio.Semaphore(concurrency),
            ahead_left=8 * concurrency,
            workspaces_waiting_most=_WAITING_WORKSPACES_PER_SLOT * concurrency,
        )
        # Discovery and reading overlap: a space is read as soon as it is found, a knowledge base
        # walked as soon as it is listed. Spaces and knowledge-base walks have a share of slots
        # each, so neither waits behind the other (they call different APIs, paced separately).
        run.streams.add(lambda: self._drive_discovery(run, admin_union, people, directory))
        run.streams.add(lambda: self._workspace_discovery(run, people, directory))
        async for batch in run.streams.results():
            yield batch
        if run.includes_space is None:
            yield Batch(complete=self._complete(mode, "drive_space"))
        self.finish()

    # ------------------------------------------------------------------ what is read, when

    async def _drive_discovery(
        self, run: _Run, admin_union: str, people: list[tuple[str, str]], directory: Any
    ) -> AsyncIterator[Batch]:
        """Find drive and group spaces, starting each space's reading as soon as it is found.

        Who reads a space found more than once is fixed (see `_start_space`): admin (org), then
        owner (personal), then group member, then a knowledge base's reader.
        """
        org: dict[str, Space] = {}
        groups: dict[str, Space] = {}
        org_done, personal_done, groups_done = run.routes_done

        async def org_spaces() -> None:
            try:
                await self._org_spaces(admin_union, org)
                for space in org.values():
                    self._start_space(run, space)
            finally:
                org_done.set()

        async def personal_spaces() -> None:
            try:
                await self._personal_spaces(people, lambda s: self._start_space(run, s))
            finally:
                personal_done.set()

        async def group_spaces() -> None:
            try:
                await self._group_spaces(directory, groups)
                for space in groups.values():
                    self._start_space(run, space)
            finally:
                groups_done.set()

        await run_together(org_spaces(), personal_spaces(), group_spaces())
        return
        yield  # an async generator that yields nothing: its work is starting the spaces

    async def _workspace_discovery(
        self, run: _Run, people: list[tuple[str, str]], directory: Any
    ) -> AsyncIterator[Batch]:
        # Knowledge bases are handed on as they are found, not held until the listing ends: an org
        # has one "my documents" per person (on the emulator's large company, 2,008 knowledge bases
        # made one 5.6 MB batch). Their completions ride on the last batch, after every one of them.
        # Nor are they found faster than they are walked: each one found waits in the line of
        # sources (`_Streams`) with its walk and its storage-space lookup, and discovery (two
        # calls a person) outran the walks, so the line grew with the org: 4,178 sources, 7 MB
        # reachable from it, after 45 s of the emulator's large company. Waiting here cannot
        # stall the run: walks wait for nothing but a running slot, which the sources ahead of
        # them give back (the routes they may wait for are found by `_drive_discovery`, which
        # never waits here).
        items: list[Item] = []
        # Closed here if this source is stopped mid-way, so the listings in flight are cancelled now.
        async with contextlib.aclosing(self._workspaces(people)) as listing:
            async for found in listing:
                await run.room_for_workspaces()
                for workspace in found:
                    self._start_workspace(run, workspace)
                    items.append(owner_by_unionid(workspace_item(workspace), directory))
                if len(items) >= _WORKSPACES_PER_BATCH:
                    yield Batch(items=items)
                    items = []
        yield Batch(items=items, complete=self._complete(run.mode, "wiki_workspace"))

    def _start_space(
        self,
        run: _Run,
        space: Space,
        refused: Callable[[], Awaitable[Space | None]] | None = None,
    ) -> None:
        """Read a newly found space's files (once per space; never one the scope leaves out).

        A space found by more than one route is read by the first of: admin (org), owner
        (personal), group member, knowledge base. A space is read once every route before its own
        has found all it can; in an incremental run, a space read by this same route last time is
        read at once, and what it read is handed on only then (or dropped, if a route before it
        found the space after all: that route's reading counts).

        `refused`: the space id was remembered from an earlier run; if the listing refuses it
        (gone, or no longer readable), `refused()` finds the space again and that one is read.
        """
        sid = space.space_id
        rank = _rank(space)
        owner = run.spaces.get(sid)
        if owner is not None and _rank(owner) <= rank:
            return
        if run.includes_space is not None and not run.includes_space(sid):
            return
        run.spaces[sid] = space
        via = self.cursor(run.cursors, sid).get("via")
        eager = run.mode == "incremental" and via == space.container

        async def read() -> AsyncIterator[Batch]:
            # The space rides with its first page of files. A remembered space is announced only
            # once its listing answers: a stale id must not become a space of its own.
            batches = self._space_files(
                space,
                run.mode,
                run.cursors,
                run.scope,
                lead=[space_item(space)],
                refusable=refused is not None,
            )
            ahead: list[Batch] = []
            ended = False
            # What is read ahead waits in memory: only so many spaces at once.
            held = eager and not run.settled(rank) and run.ahead_left > 0
            try:
                if held:
                    run.ahead_left -= 1
                    async with run.space_slots:
                        try:
                            ahead.append(await anext(batches))
                        except StopAsyncIteration:
                            ended = True
                await run.wait_settled(rank)
                if run.spaces.get(sid) is not space:
                    return  # a route before this one found it: read (or being read) there
                while ahead:
                    yield ahead.pop(0)
                if held:
                    held = False
                    run.ahead_left += 1
                if not ended:
                    async with run.space_slots:
                        async for batch in batches:
                            yield batch
            except _SpaceRefused as refusal:
                assert refused is not None
                await run.wait_settled(rank)
                if run.spaces.get(sid) is not space:
                    return
                del run.spaces[sid]
                fresh = await refused()
                if fresh is not None and fresh.space_id == sid:
                    self.note_problem(f"files of space {sid}", refusal.cause)
                elif fresh is not None:
                    yield _remember_wiki_space(self.name, fresh)
                    self._start_space(run, fresh)
            finally:
                if held:
                    run.ahead_left += 1
                await batches.aclose()

        run.streams.add(read)

    def _start_workspace(self, run: _Run, workspace: Workspace) -> None:
        """Walk a knowledge base's nodes and, beside it, find and read its storage space."""
        walked = asyncio.Event()
        run.workspaces_waiting += 1

        async def walk() -> AsyncIterator[Batch]:
            run.walk_started()
            try:
                async for batch in self._workspace_nodes(workspace, run.mode, run.cursors):
                    yield batch
            finally:
                walked.set()

        def resolve() -> Awaitable[Space | None]:
            return self._wiki_space(workspace, walked, run.wiki_slots)

        async def space_of() -> AsyncIterator[Batch]:
            # Which storage space holds a knowledge base is taken as fixed once found (not
            # documented either way: uncertain), so it is remembered; a refused id is found again.
            remembered = self.cursor(run.cursors, _wiki_space_container(workspace.workspace_id))
            sid = remembered.get("space_id")
            space = _wiki_storage(workspace, sid) if isinstance(sid, str) and sid else None
            fresh = space is None
            if fresh:
                space = await resolve()
            if space is None:
                return
            if fresh:
                yield _remember_wiki_space(self.name, space)
            self._start_space(run, space, refused=None if fresh else resolve)

        run.streams.add(walk, slots=run.wiki_slots)
        run.streams.add(space_of)

    def _claim(self, kind: str, container: str, ok: bool = True) -> None:
        (self._claims if ok else self._blocked).add((kind, container))

    def _complete(self, mode: Mode, kind: str) -> list[CompleteListing] | None:
        if mode != "full":
            return None
        listed = sorted(c for k, c in self._claims - self._blocked if k == kind)
        return [CompleteListing(kind, c) for c in listed] or None

    async def _wiki_space(
        self, workspace: Workspace, walked: asyncio.Event, slots: asyncio.Semaphore
    ) -> Space | None:
        """The storage space of a knowledge base, from its root node or else its first node.

        Whether the root node itself converts with `queryDentryId` is not documented (uncertain),
        so a node found under it is the fallback (known once the walk of its nodes has ended);
        an empty knowledge base may have no space to read.
        """
        root = workspace.raw.get("rootNodeId")
        last: DingTalkError | None = None
        for candidate in ("root", "first"):
            if candidate == "root":
                # Once a root node has failed to convert, stop asking for the others (a call each).
                node_id = str(root) if root and self._root_converts is not False else None
            else:
                await walked.wait()
                node_id = workspace.first_node
            if not node_id:
                continue
            try:
                async with slots:
                    found = await st.uuid_to_dentry(self.client, node_id, workspace.operator)
            except NotFound as exc:
                last = exc
                if candidate == "root" and self._root_converts is None:
                    self._root_converts = False
                continue
            except DingTalkError as exc:
                self._gap(
                    f"storage space of knowledge base {workspace.workspace_id}", exc, ("drive_space", "wiki")
                )
                return None
            if candidate == "root":
                self._root_converts = True
            sid = found.get("spaceId")
            if sid:
                return _wiki_storage(workspace, str(sid))
        if last is not None and workspace.first_node:
            self._gap(
                f"storage space of knowledge base {workspace.workspace_id}", last, ("drive_space", "wiki")
            )
        elif workspace.first_node is None:
            # An empty knowledge base whose root does not convert: its space (if any) is unknown.
            self._claim("drive_space", "wiki", ok=False)
        return None

    # ------------------------------------------------------------------ space discovery

    def _gap(self, what: str, exc: BaseException, *blocked: tuple[str, str]) -> None:
        self.note_problem(what, exc)
        for claim in blocked:
            self._claim(*claim, ok=False)

    async def _org_spaces(self, admin_union: str, spaces: dict[str, Space]) -> None:
        try:
            async for page in st.drive_spaces(self.client, admin_union, "org"):
                for raw in page:
                    if raw.get("spaceId"):
                        spaces.setdefault(
                            str(raw["spaceId"]), Space(str(raw["spaceId"]), "drive", admin_union, raw)
                        )
            self._claim("drive_space", "org")
        except DingTalkError as exc:
            self._gap("org drive spaces", exc, ("drive_space", "org"))

    async def _personal_spaces(self, people: list[tuple[str, str]], start: Callable[[Space], None]) -> None:
        async def read(person: tuple[str, str]) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            async for page in st.drive_spaces(self.client, person[1], "personal"):
                found.extend(page)
            return found

        # Results come in the people's order, so who reads a space listed twice stays fixed.
        async for (uid, union), result in bounded_map(read, people, self.settings.concurrency):
            if isinstance(result, BaseException):
                self._gap(f"personal spaces of {uid}", result, ("drive_space", f"personal:{uid}"))
                continue
            self._claim("drive_space", f"personal:{uid}")
            for raw in result:
                if raw.get("spaceId"):
                    sid = str(raw["spaceId"])
                    start(Space(sid, "drive", union, raw, container=f"personal:{uid}"))

    async def _group_spaces(self, directory: Any, spaces: dict[str, Space]) -> None:
        conversations = [c for c in await self.context.conversations() if c.open_conversation_id]
        conversations += [
            _ConfiguredConversation(cid)
            for cid in self.settings.known_conversation_ids  # type: ignore[misc]
        ]
        fallback = directory.people()[0][1]

        async def read(conversation: Any) -> tuple[dict[str, Any] | None, str]:
            # Only members may read a group's space: the owner first, then other members.
            info = getattr(conversation, "chat_info", None)
            member_ids = as_list((info or {}).get("useridlist"))
            if info is not None and not member_ids:
                return None, ""  # a group without members: nobody can read its space
            members = [conversation.owner, *member_ids]
            unions = [u for u in dict.fromkeys(directory.unionid(str(m)) for m in members if m) if u]
            unions = unions[:MEMBER_ATTEMPTS] or [fallback]
            last: PermissionDenied | None = None
            for union in unions:
                try:
                    return await st.group_space(self.client, union, conversation.open_conversation_id), union
                except PermissionDenied as exc:
                    if exc.required_scopes:
                        raise
                    last = exc
            assert last is not None
            raise last

        # Group spaces are claimed complete only if every group's space was read: a disbanded group
        # (conversationNotExist) or one without members keeps a space nobody can list any more,
        # which must not be taken for deleted.
        self._claim("drive_space", "groups")
        async for conversation, result in bounded_map(read, conversations, self.settings.concurrency):
            if isinstance(result, NotFound):
                self._claim("drive_space", "groups", ok=False)
                self.skipped.append(
                    f"file space of group {conversation.open_conversation_id}: {result.message}"
                )
                continue
            if isinstance(result, BaseException):
                self._gap(
                    f"file space of group {conversation.open_conversation_id}",
                    result,
                    ("drive_space", "groups"),
                )
                continue
            raw, union = result
            if raw is None and not union:
                self._claim("drive_space", "groups", ok=False)
                self.skipped.append(
                    f"file space of group {conversation.open_conversation_id}: the group has no members"
                )
                continue
            if raw and raw.get("spaceId"):
                sid = str(raw["spaceId"])
                raw = {**raw, "openConversationId": conversation.open_conversation_id}
                spaces.setdefault(sid, Space(sid, "group", union, raw, container="groups"))

    async def _workspaces(self, people: list[tuple[str, str]]) -> AsyncIterator[list[Workspace]]:
        """The knowledge bases each person can see, person by person; each one only once."""

        async def mine_of(union: str) -> dict[str, Any] | None:
            try:
                return await st.mine_workspace(self.client, union)
            except NotFound:
                return None

        async def read(person: tuple[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
            # The two listings go to different APIs: ask both at once.
            mine_task = asyncio.ensure_future(mine_of(person[1]))
            try:
                team: list[dict[str, Any]] = []
                async for page in st.wiki_workspaces(self.client, person[1]):
                    team.extend(page)
                return team, await mine_task
            finally:
                _settle(mine_task)

        seen: set[str] = set()  # ids only: the knowledge bases themselves are handed on
        self._claim("wiki_workspace", "team")
        # A knowledge base's space is claimed only if every knowledge base was listed.
        self._claim("drive_space", "wiki")
        async for (uid, union), result in bounded_map(read, people, self.settings.concurrency):
            if isinstance(result, BaseException):
                blocked = (
                    ("wiki_workspace", "team"),
                    ("wiki_workspace", f"personal:{uid}"),
                    ("drive_space", "wiki"),
                )
                self._gap(f"knowledge bases of {uid}", result, *blocked)
                continue
            team, mine = result
            self._claim("wiki_workspace", f"personal:{uid}")
            listed = [(raw, "team") for raw in team] + ([(mine, f"personal:{uid}")] if mine else [])
            found: list[Workspace] = []
            for raw, container in listed:
                wid = raw.get("workspaceId")
                if wid and str(wid) not in seen:
                    seen.add(str(wid))
                    if raw.get("type") == "PERSONAL":
                        container = f"personal:{uid}"
                    found.append(Workspace(str(wid), union, raw, container=container))
            if found:
                yield found

    # ------------------------------------------------------------------ files of one space

    async def _space_files(
        self,
        space: Space,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
        *,
        lead: list[Item] | None = None,
        refusable: bool = False,
    ) -> AsyncIterator[Batch]:
        """The files of one space, then its cursor (and, in a full run, its complete listing).

        `lead`: items yielded with the first page (or alone if the listing fails).
        `refusable`: raise `_SpaceRefused` instead of noting a problem if the very first listing
        call says the space is gone or unreadable (the caller knows another way to find it).

        Each page is held until the next one is read, so the last page carries the cursor and the
        recycle bin's deletions: fewer, fuller batches for the engine (which prepares a few batches
        at a time), and a failed item of the last page holds the cursor back.
        """
        state = self.cursor(cursors, space.space_id)
        since = state.get("modified_ms") if isinstance(state.get("modified_ms"), int) else None
        stop_before = None
        if mode == "incremental" and since is not None:
            stop_before = since - self.settings.lookback_seconds * 1000
        bin_id = state.get("bin") if isinstance(state.get("bin"), str) else None
        # Deletions do not show in a newest-first listing: in an incremental run the recycle bin
        # tells them, read beside the listing (its answer does not depend on the listing's).
        recycled = None
        if stop_before is not None:
            recycled = asyncio.ensure_future(self._recently_deleted(space, stop_before, bin_id))
        elif bin_id is None and not refusable:
            # Learn the bin's id now, beside the listing, so the next incremental run needs no call
            # for it (a different API from the full run's busy ones). Not for a space that may turn
            # out not to exist.
            recycled = asyncio.ensure_future(self._bin_id(space))
        newest = since or 0
        seen: set[str] = set()
        failed = False
        pending = list(lead or [])
        held: Batch | None = None
        try:
            listed = False
            try:
                async for page in self._dentry_pages(space):
                    listed = True
                    fresh = [d for d in page if d.get("id") is not None and str(d["id"]) not in seen]
                    seen.update(str(d["id"]) for d in fresh)
                    modified = [ms_from_iso(d.get("modifiedTime")) or 0 for d in fresh]
                    newest = max([newest, *modified])
                    items, deleted, page_failed = await self._file_items(space, fresh, since, scope)
                    failed = failed or page_failed
                    if held is not None:
                        yield held
                    held = Batch(
                        items=pending + items,
                        deleted=deleted or None,
                        deleted_kind="file" if deleted else None,
                    )
                    pending = []
                    if stop_before is not None and modified and max(modified) < stop_before:
                        break  # newest-first: everything further down is older than the cursor
            except DingTalkError as exc:
                if refusable and not listed and _is_refusal(exc):
                    raise _SpaceRefused(exc) from exc
                # Nothing to commit: the cursor of this space stays where it was, no deletion check.
                self.note_problem(f"files of space {space.space_id}", exc)
                if held is not None or pending:
                    yield held or Batch(items=pending)
                return
            if recycled is not None and stop_before is None:
                bin_id = await recycled
            elif recycled is not None:
                try:
                    deleted, bin_id = await recycled
                except NotFound:
                    deleted = []
                except DingTalkError as exc:
                    self.note_problem(f"recycle bin of space {space.space_id}", exc)
                    deleted, failed = [], True
                if deleted:
                    held = held or Batch(items=pending)
                    held.deleted = [*(held.deleted or []), *deleted]
                    held.deleted_kind = "file"
        finally:
            _settle(recycled)
        held = held or Batch(items=pending)
        if mode == "full" and not failed:
            held.complete = [CompleteListing("file", space.space_id)]
        cursor_state: dict[str, Any] = state
        if not failed:
            # `via`: the route that read the space (see `_start_space`).
            cursor_state = {"modified_ms": newest, "via": space.container} | (
                {"bin": bin_id} if bin_id else {}
            )
        held.cursor = CursorUpdate(self.name, space.space_id, cursor_state)
        yield held

    async def _recently_deleted(
        self, space: Space, since_ms: int, bin_id: str | None
    ) -> tuple[list[str], str | None]:
        """Dentries of the space deleted since `since_ms`, and the id of its recycle bin.

        The bin's id is remembered between runs (a call less per space and run). Whether it can
        change is not documented (uncertain): a remembered id that is refused is asked for again.
        """
        remembered = bin_id
        if bin_id is None:
            bin_id = await st.recycle_bin_id(self.client, space.space_id, space.operator)
            if bin_id is None:
                return [], None
        try:
            return await self._deleted_in(space, bin_id, since_ms), bin_id
        except DingTalkError as exc:
            if remembered is None or not _is_refusal(exc):
                raise
        bin_id = await st.recycle_bin_id(self.client, space.space_id, space.operator)
        if bin_id is None:
            return [], None
        return await self._deleted_in(space, bin_id, since_ms), bin_id

    async def _bin_id(self, space: Space) -> str | None:
        """The id of the space's recycle bin, None if it cannot be read (not needed in this run)."""
        try:
            return await st.recycle_bin_id(self.client, space.space_id, space.operator)
        except DingTalkError as exc:
            if is_family_fatal(exc):
                raise
            return None

    async def _deleted_in(self, space: Space, bin_id: str, since_ms: int) -> list[str]:
        out: list[str] = []
        async for page in st.recycle_items(self.client, bin_id, space.operator):
            times = [ms_from_iso(r.get("operatorTime")) or 0 for r in page]
            out.extend(
                f"{r.get('spaceId') or space.space_id}/{r['dentryId']}"
                for r, t in zip(page, times, strict=True)
                if r.get("dentryId") and t >= since_ms
            )
            # Newest-first (as observed in the SDK's samples; uncertain): stop once a whole page is old.
            if times and max(times) < since_ms and times == sorted(times, reverse=True):
                break
        return out

    async def _dentry_pages(self, space: Space) -> AsyncIterator[list[dict[str, Any]]]:
        try:
            async for page in st.list_all(self.client, space.space_id, space.operator):
                yield page
            return
        except PermissionDenied as exc:
            if exc.required_scopes:
                raise
            fallback = True
        except DingTalkError as exc:
            if is_family_fatal(exc):
                raise
            fallback = True
        if fallback:
            # listAll refused for this space: walk the folders instead (root parentId = "0").
            folders = ["0"]
            while folders:
                parent = folders.pop()
                async for page in st.list_children(self.client, space.space_id, space.operator, parent):
                    folders.extend(str(d["id"]) for d in page if d.get("type") == "FOLDER" and d.get("id"))
                    yield page

    async def _file_items(
        self, space: Space, dentries: list[dict[str, Any]], since: int | None, scope: ScopeFilter
    ) -> tuple[list[Item], list[str], bool]:
        items: list[Item] = []
        deleted: list[str] = []
        failed = False

        async def with_versions(dentry: dict[str, Any]) -> list[dict[str, Any]] | None:
            version = as_int(dentry.get("version")) or 1
            modified = ms_from_iso(dentry.get("modifiedTime")) or 0
            if dentry.get("type") != "FILE" or version <= 1:
                return None
            if since is not None and modified <= since:
                return None  # unchanged since the last run: its history is already stored
            return await st.versions(self.client, space.space_id, str(dentry["id"]), space.operator)

        async for dentry, result in bounded_map(with_versions, dentries, self.settings.concurrency):
            if dentry.get("status") in ("DELETED", "EXPIRED"):
                deleted.append(f"{space.space_id}/{dentry['id']}")
                continue
            if isinstance(result, BaseException):
                self.note_problem(f"versions of {space.space_id}/{dentry.get('id')}", result)
                failed = True
                result = None
            items.append(owner_by_unionid(file_item(space, dentry, result, scope), self._directory))
        return items, deleted, failed

    # ------------------------------------------------------------------ knowledge-base nodes and docs

    async def _workspace_nodes(
        self, workspace: Workspace, mode: Mode, cursors: Mapping[CursorKey, dict[str, Any]]
    ) -> AsyncIterator[Batch]:
        container = f"wiki:{workspace.workspace_id}"
        state = self.cursor(cursors, container)
        captured_docs: dict[str, Any] = dict(state.get("docs") or {})
        root = workspace.raw.get("rootNodeId")
        if not root:
            return
        parents = [str(root)]
        failed = False
        visited: set[str] = set()
        held: Batch | None = None  # the last page, which carries the cursor (see `_space_files`)
        while parents:
            parent = parents.pop()
            try:
                async for page in st.wiki_nodes(self.client, parent, workspace.operator):
                    fresh = [n for n in page if n.get("nodeId") and str(n["nodeId"]) not in visited]
                    visited.update(str(n["nodeId"]) for n in fresh)
                    if fresh and workspace.first_node is None:
                        workspace.first_node = str(fresh[0]["nodeId"])
                    parents.extend(
                        str(n["nodeId"]) for n in fresh if n.get("hasChildren") or n.get("type") == "FOLDER"
                    )
                    items = [node_item(workspace, n) for n in fresh]
                    docs, docs_failed = await self._docs(workspace, fresh, captured_docs)
                    failed = failed or docs_failed
                    if held is not None:
                        yield held
                    held = Batch(items=items + docs)
            except DingTalkError as exc:
                self.note_problem(f"nodes under {parent} in knowledge base {workspace.workspace_id}", exc)
                failed = True
        held = held or Batch()
        if mode == "full" and not failed:
            held.complete = [CompleteListing("wiki_node", workspace.workspace_id)]
        if not failed:
            held.cursor = CursorUpdate(self.name, container, {"docs": captured_docs})
        yield held

    async def _docs(
        self, workspace: Workspace, nodes: list[dict[str, Any]], captured: dict[str, Any]
    ) -> tuple[list[Item], bool]:
        docs = [n for n in nodes if is_online_doc(n)]
        if not docs:
            return [], False
        items: list[Item] = []
        failed = False

        def stored(node: dict[str, Any]) -> str | None:
            """The blocks hash stored for this node if the node is unchanged since, else None."""
            entry = captured.get(str(node["nodeId"]))
            if isinstance(entry, list) and len(entry) == 2 and entry[0] == node_marker(node):
                return str(entry[1])
            return None

        async def blocks(node: dict[str, Any]) -> dict[str, Any] | None:
            if stored(node) is not None:
                return None  # unchanged since its blocks were stored: no need to read them again
            return await st.doc_blocks(self.client, str(node["nodeId"]), workspace.operator)

        async for node, result in bounded_map(blocks, docs, self.settings.concurrency):
            if isinstance(result, BaseException):
                self.note_problem(f"blocks of document {node.get('nodeId')}", result)
                failed = True
                continue
            item = doc_item(workspace, node, result, stored_sha256=stored(node))
            items.append(item)
            if result is not None:
                captured[str(node["nodeId"])] = [node_marker(node), item.fields["sha256"]]
        return items, failed

    # ------------------------------------------------------------------ content

    async def open_attachment(self, ref: AttachmentRef | Mapping[str, Any]) -> AsyncIterator[bytes]:
        data = ref_dict(ref)
        space_id, dentry_id, union = str(data["spaceId"]), str(data["dentryId"]), str(data["unionId"])
        version = as_int(data.get("version"))

        async def refresh() -> tuple[str, dict[str, str]]:
            return await st.download_info(self.client, space_id, dentry_id, union, version)

        url, headers = await refresh()
        async for chunk in self.client.download(
            url, headers, expected_size=as_int(data.get("size")), refresh=refresh
        ):
            yield chunk


class _ConfiguredConversation:
    """A group given by openConversationId in the settings (no chat_info known)."""

    def __init__(self, open_conversation_id: str) -> None:
        self.open_conversation_id = open_conversation_id
        self.owner: str | None = None


# ---------------------------------------------------------------------- run plumbing

WIKI_SPACE_PREFIX = "wiki-space:"  # cursor container remembering a knowledge base's storage space


def _wiki_space_container(workspace_id: str) -> str:
    return f"{WIKI_SPACE_PREFIX}{workspace_id}"


def _wiki_storage(workspace: Workspace, space_id: str) -> Space:
    raw = {"workspaceId": workspace.workspace_id, "workspace": workspace.raw}
    return Space(space_id, "wiki", workspace.operator, raw, container="wiki")


def _remember_wiki_space(collector: str, space: Space) -> Batch:
    workspace_id = str(space.raw["workspaceId"])
    state = {"space_id": space.space_id}
    return Batch(cursor=CursorUpdate(collector, _wiki_space_container(workspace_id), state))


def _is_refusal(exc: BaseException) -> bool:
    """The space (or bin) is gone or not readable as this user — not a missing scope."""
    if isinstance(exc, PermissionDenied):
        return not exc.required_scopes
    return isinstance(exc, NotFound)


def _settle(task: asyncio.Future[Any] | None) -> None:
    """Cancel a side task no longer wanted (its error, if any, is not for anyone any more)."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


class _SpaceRefused(Exception):
    def __init__(self, cause: DingTalkError) -> None:
        super().__init__(str(cause))
        self.cause = cause


# Knowledge-base items per batch while they are being listed.
_WORKSPACES_PER_BATCH = 100

# Knowledge bases found but not yet walked, per unit of concurrency (see `_workspace_discovery`).
_WAITING_WORKSPACES_PER_SLOT = 8

# Sources of the files family running at once, per unit of concurrency: above the spaces that may
# be read ahead (`_Run.ahead_left`, 8 per unit) plus the discovery sources and knowledge-base walks.
_MAX_RUNNING_PER_SLOT = 12


class _Streams:
    """Async generators run side by side; their values are yielded as they come.

    Unlike `interleave`, sources may be added while it runs (a space is read as soon as it is
    found), and a source may take a slot of a semaphore while it runs, so that different kinds of
    sources each have their own bound. Each source keeps its own order; producers wait for the
    consumer (a bounded queue), so memory stays bounded. The first error of a source is re-raised
    to the consumer, and every other source is cancelled.
    """

    def __init__(self, queue_size: int, max_running: int) -> None:
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=max(1, queue_size))
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = 0
        # Sources wait in line, not as tasks: a large org finds thousands of spaces long before
        # they can be read, and a task parked on a semaphore per space costs memory that grows
        # with the org. Started in the order added, so a source only ever waits for earlier ones
        # (discovery before the spaces it finds, a knowledge base's walk before its space).
        self._waiting: deque[tuple[Callable[[], AsyncIterator[Any]], asyncio.Semaphore | None]] = deque()
        self._max_running = max(1, max_running)
        self._closed = False

    def add(
        self, factory: Callable[[], AsyncIterator[Any]], *, slots: asyncio.Semaphore | None = None
    ) -> None:
        self._open += 1
        self._waiting.append((factory, slots))
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and not self._closed and len(self._tasks) < self._max_running:
            factory, slots = self._waiting.popleft()
            task = asyncio.ensure_future(self._pump(factory, slots))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_waiting()

    async def _pump(self, factory: Callable[[], AsyncIterator[Any]], slots: asyncio.Semaphore | None) -> None:
        try:
            async with slots or contextlib.nullcontext():
                async for value in factory():
                    await self._queue.put(("value", value))
        except Exception as exc:  # handed to the consumer, which re-raises it
            await self._queue.put(("error", exc))
            return
        await self._queue.put(("done", None))

    async def results(self) -> AsyncIterator[Any]:
        try:
            while self._open:
                tag, value = await self._queue.get()
                if tag == "done":
                    self._open -= 1
                elif tag == "error":
                    raise value
                else:
                    yield value
        finally:
            # Stopped (done, failed or cancelled): nothing waiting may start as the others end.
            self._closed = True
            self._waiting.clear()
            for task in list(self._tasks):
                task.cancel()


@dataclass
class _Run:
    """What one `collect` call shares between its sources."""

    mode: Mode
    cursors: Mapping[CursorKey, dict[str, Any]]
    scope: ScopeFilter
    includes_space: Callable[[str], bool] | None
    streams: _Streams
    space_slots: asyncio.Semaphore
    wiki_slots: asyncio.Semaphore
    # Set when the org, personal and group routes (in this order of precedence) have found every
    # space they can.
    routes_done: tuple[asyncio.Event, asyncio.Event, asyncio.Event] = field(
        default_factory=lambda: (asyncio.Event(), asyncio.Event(), asyncio.Event())
    )
    spaces: dict[str, Space] = field(default_factory=dict)  # who reads each space
    ahead_left: int = 64  # spaces whose first batch may be read ahead and held (see `_start_space`)
    # Knowledge bases found whose walk has not started yet, and how many may be (see
    # `_workspace_discovery`).
    workspaces_waiting: int = 0
    workspaces_waiting_most: int = 64
    _walk_started: asyncio.Event = field(default_factory=asyncio.Event)

    def walk_started(self) -> None:
        self.workspaces_waiting -= 1
        self._walk_started.set()

    async def room_for_workspaces(self) -> None:
        """Until fewer knowledge bases than the bound wait for their walk to start."""
        while self.workspaces_waiting >= self.workspaces_waiting_most:
            self._walk_started.clear()
            await self._walk_started.wait()

    def settled(self, rank: int) -> bool:
        """Every route that comes before `rank` has found all it can."""
        return all(done.is_set() for done in self.routes_done[:rank])

    async def wait_settled(self, rank: int) -> None:
        for done in self.routes_done[:rank]:
            await done.wait()


def _rank(space: Space) -> int:
    """Precedence of the route that found a space: org, personal, groups, knowledge bases."""
    if space.container.startswith("personal:"):
        return 1
    return {"org": 0, "groups": 2}.get(space.container, 3)
