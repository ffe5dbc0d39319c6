"""Enterprise todos (dingtalk-api.md §6.3): `POST /v1.0/todo/users/{unionId}/org/tasks/query`.

Only enterprise todos (created through the API with a `detailUrl`) are listed, completed ones only
within 180 days; personal todos are not reachable. Each user in scope is asked twice (open and
done, every role), `nextToken` pages; a todo shared by several users is yielded once (by taskId).

Containers: `<unionId>/open` and `<unionId>/done/<YYYY-MM>` (of modifiedTime), per user it was
listed for. The API has no delta form, so every run lists everything and declares complete, for
each user it asked, `open` and the done months wholly inside the API's 180-day visibility: todos of
users not asked (left, out of scope) and older done todos are kept, never taken for deleted.

People who left: the directory lists active users only, so the todos of someone who left since
the last run may have changed in between. The cursor keeps who was listed; each run asks once more
for the todos of those no longer in the directory ("final listing"), keeps what comes back (no
completeness claim), and then forgets them — also when DingTalk refuses, as it no longer knows
them. Todos captured before stay in the backup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    bounded_map,
    content_hash,
    has_more_token,
    is_family_fatal,
    iso_from_ms,
    month_of,
    now_ms,
    owner_by_unionid,
    whole_months,
)
from dingvault.source.collectors.seen_ids import SeenIds
from dingvault.source.errors import BadResponse, DingTalkError, NotFound
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

TASKS = "/v1.0/todo/users/{unionId}/org/tasks/query"
DONE_VISIBLE_DAYS = 180
ROLE_TYPES = [["executor"], ["creator"], ["participant"]]


class TodoCollector(Collector):
    name = "todo"
    family = "todo"
    kinds = ("todo",)
    scopes = ("Todo.Todo.Read",)
    apis = (TASKS,)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        everyone = directory.people()
        people = [(uid, union) for uid, union in everyone if scope.includes_user(uid)]
        active = {union for _, union in everyone}
        listed = self.cursor(cursors).get("people")
        known: dict[str, Any] = listed if isinstance(listed, dict) else {}
        # Users listed by an earlier run who have left since: asked once more ("final listing").
        departed = [
            (str(uid or ""), union)
            for union, uid in known.items()
            if union not in active and (not uid or scope.includes_user(str(uid)))
        ]
        # Every todo yielded in this run, so that one shared by several users is yielded once:
        # O(the organisation's todos), so not a Python set (see seen_ids).
        with SeenIds() as seen:
            async for batch in self._listings(people, departed, directory, seen):
                yield batch
        self.finish()

    async def _listings(
        self,
        people: list[tuple[str, str]],
        departed: list[tuple[str, str]],
        directory: Any,
        seen: SeenIds,
    ) -> AsyncIterator[Batch]:
        # (person, isDone, left): a leaver's final listing asks both states in one job.
        queries: list[tuple[tuple[str, str], bool, bool]] = [
            (p, done, False) for p in people for done in (False, True)
        ]
        queries += [(p, False, True) for p in departed]
        now = now_ms()
        done_months = whole_months(now - (DONE_VISIBLE_DAYS - 1) * DAY_MS, now, True)
        claims: list[str] = []
        retry_later: dict[str, str] = {}
        async for (person, done, left), result in bounded_map(
            lambda q: self._final(q[0][1]) if q[2] else self._tasks(q[0][1], q[1]),
            queries,
            self.settings.concurrency,
        ):
            uid, union = person
            if isinstance(result, BaseException):
                if left:
                    retry_later[union] = uid
                what = "todos (final listing)" if left else f"{'done' if done else 'open'} todos"
                self.note_problem(f"{what} of {uid or union}", result)
                continue
            items = []
            firsts = seen.add_new(str(card.get("taskId")) for card in result)
            for card, first in zip(result, firsts, strict=True):
                if not first:  # a todo shared by several users is stored once
                    continue
                item = owner_by_unionid(todo_item(card, union), directory)
                if left and item.fields.get("owner") is None and item.fields.get("owner_unionid") == union:
                    item.fields["owner"] = uid or None
                items.append(item)
            # The query has no delta form: every run lists each user's todos completely, so every
            # run can tell deletions — per user, so that users not asked (out of scope) and done
            # months beyond the API's visibility are never taken for deleted. A user who left is
            # never claimed: what DingTalk answers for them after they left is not documented.
            if not left:
                claims += [f"{union}/done/{m}" for m in done_months] if done else [f"{union}/open"]
            if items:
                yield Batch(items=items)
        # Claimed only once every todo of this run has been yielded: a shared todo stored under
        # one user's container last time may be listed under another user's this time. The list
        # of users asked rides along, so that the next run knows who has left since.
        people_now = {union: uid for uid, union in people} | retry_later
        yield Batch(
            complete=[CompleteListing("todo", c) for c in claims] or None,
            cursor=CursorUpdate(self.name, "", {"people": people_now}),
        )

    async def _final(self, union: str) -> list[dict[str, Any]]:
        """A departed user's open and done todos; nothing if DingTalk no longer knows the user.

        The open listing is asked first: when it is refused, the done one would be too, so a
        refusal costs one call per leaver.
        """
        cards: list[dict[str, Any]] = []
        for done in (False, True):
            try:
                cards += await self._tasks(union, done)
            except DingTalkError as exc:
                if not _gone(exc):
                    raise
                break
        return cards

    async def _tasks(self, union: str, done: bool) -> list[dict[str, Any]]:
        cards: list[dict[str, Any]] = []
        token: str = "0"
        for _ in range(100_000):
            body = await self.client.api(
                "POST",
                TASKS,
                path={"unionId": union},
                json={"nextToken": token, "isDone": done, "roleTypes": ROLE_TYPES},
            )
            cards.extend(c for c in as_list(body.get("todoCards")) if isinstance(c, dict) and c.get("taskId"))
            next_token = body.get("nextToken")
            if not has_more_token(next_token):
                return cards
            if str(next_token) == token:
                raise BadResponse("todo query repeated its nextToken", endpoint=TASKS)
            token = str(next_token)
        raise BadResponse("todo listing did not end", endpoint=TASKS)


def _gone(exc: DingTalkError) -> bool:
    """A client error for a departed user's todos: DingTalk no longer knows the user (uncertain)."""
    if exc.retryable or is_family_fatal(exc):
        return False
    return isinstance(exc, NotFound) or exc.status in (400, 403, 404)


def todo_item(card: dict[str, Any], union: str) -> Item:
    """A todo; its container is `<unionId of the user it was listed for>/open|done/<YYYY-MM>`."""
    done = bool(card.get("isDone"))
    modified = card.get("modifiedTime")
    return Item(
        kind="todo",
        source_id=str(card["taskId"]),
        raw={"card": card},
        fields={
            "title": card.get("subject"),
            "created": iso_from_ms(card.get("createdTime")),
            "modified": iso_from_ms(modified),
            "owner": card.get("creatorId"),
            "status": "done" if done else "open",
            "due": iso_from_ms(card.get("dueTime")),
        },
        version_key=str(modified) if modified is not None else content_hash(card),
        container=f"{union}/done/{month_of(modified if isinstance(modified, int) else None)}"
        if done
        else f"{union}/open",
    )
