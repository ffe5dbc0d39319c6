"""What every collector shares: the base class, run settings, and small helpers.

A collector reads one data family and yields `Batch`es (see `dingvault.source.items`):

    collector = ApprovalCollector(client, context)
    async for batch in collector.collect(mode="full", cursors={}, scope=AllScope()):
        ...                                   # store batch.items, then commit batch.cursor
    async for chunk in collector.open_attachment(ref): ...

Each class declares the scopes it needs (`scopes`) and the API templates it calls (`apis`), so
`dingvault connect` can report which families the granted scopes allow and the benchmark can
compute the rate-limit floor of a full backup.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson

from dingvault.source.errors import DingTalkError
from dingvault.source.items import AttachmentRef, Batch, CursorKey, Item, Mode, ScopeFilter

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient
    from dingvault.source.collectors.conversations import Conversation
    from dingvault.source.collectors.directory import Directory

T = TypeVar("T")
R = TypeVar("R")

DAY_MS = 86_400_000


@dataclass
class CollectorSettings:
    """Knobs of the collectors; defaults follow dingtalk-api.md's documented limits."""

    # Approvals (§4.2): 120-day windows, as far back as the API allows (365 days; 5 years = 1825
    # on OA-premium orgs).
    approval_history_days: int = 365
    approval_window_days: int = 120
    # Read each user's detail (`topapi/v2/user/get`: manager, roles, per-department order) as well
    # as the list entry: one more (quota-exempt) call per user and run.
    user_details: bool = False
    # Resigned employees (§2.3): ≤ 365-day windows of empLeaveRecords.
    resigned_history_days: int = 5 * 365
    # Attendance (§6.1): ≤ 7-day windows, ≤ 50 users, about 6 months back.
    attendance_history_days: int = 180
    attendance_window_days: int = 7
    # Time zone of the org's local-time parameters (attendance's `yyyy-MM-dd HH:mm:ss`).
    org_timezone: str = "Asia/Macau"
    # Calendar (§6.2): ≤ 1-year windows; how far back a first full listing looks.
    calendar_history_days: int = 365
    calendar_future_days: int = 365
    # Work reports (§6.4): ≤ 180-day windows.
    report_history_days: int = 365
    report_window_days: int = 180
    # Incremental runs re-read this much before the last cursor to catch late changes.
    lookback_seconds: int = 3600
    # Parallel requests a collector keeps in flight (the client paces them per API).
    concurrency: int = 8
    # Group chats the app knows (created through the API, or configured): chatids (`chat...`).
    known_chat_ids: list[str] = field(default_factory=list)
    # openConversationIds of groups whose file spaces should be backed up besides department groups.
    known_conversation_ids: list[str] = field(default_factory=list)
    # The robot's code (= the app key for an app robot) for robot media downloads (§3.3).
    robot_code: str | None = None


class CollectorContext:
    """Per-run knowledge shared by the collectors of one client (the directory is read once)."""

    def __init__(self, client: DingTalkClient, settings: CollectorSettings | None = None) -> None:
        self.client = client
        self.settings = settings or CollectorSettings()
        self._directory: Directory | None = None
        self._directory_lock = asyncio.Lock()
        self._conversations: list[Conversation] | None = None
        self._conversations_lock = asyncio.Lock()

    async def directory(self) -> Directory:
        from dingvault.source.collectors.directory import Directory

        async with self._directory_lock:
            if self._directory is None:
                self._directory = await Directory.load(self.client, concurrency=self.settings.concurrency)
            return self._directory

    async def conversations(self) -> list[Conversation]:
        """Group chats the API can reach (department groups + configured chatids), read once."""
        from dingvault.source.collectors.conversations import load_conversations

        directory = await self.directory()
        async with self._conversations_lock:
            if self._conversations is None:
                self._conversations = await load_conversations(
                    self.client,
                    directory,
                    list(self.settings.known_chat_ids),
                    concurrency=self.settings.concurrency,
                )
            return self._conversations


class Collector(ABC):
    """Base class of the per-family collectors."""

    name: ClassVar[str]  # unique collector name (cursor keys use it)
    family: ClassVar[str]  # data family (contacts, approvals, files, ...)
    kinds: ClassVar[tuple[str, ...]]  # item kinds it yields
    scopes: ClassVar[tuple[str, ...]]  # permission scopes it needs
    apis: ClassVar[tuple[str, ...]]  # API path templates it calls

    def __init__(self, client: DingTalkClient, context: CollectorContext | None = None) -> None:
        self.client = client
        self.context = context or CollectorContext(client)
        self.settings = self.context.settings
        # Parts that could not be read in this run (reported at the end, see `finish`).
        self.problems: list[str] = []
        # Parts deliberately not read, with the reason (informational, not a failure).
        self.skipped: list[str] = []

    @property
    def kind(self) -> str:
        return self.kinds[0]

    @abstractmethod
    def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]: ...

    async def open_attachment(self, ref: AttachmentRef | Mapping[str, Any]) -> AsyncIterator[bytes]:
        raise DingTalkError(f"{self.name} has no attachments to open", endpoint=self.name)
        yield b""  # pragma: no cover - makes this an async generator

    def note_problem(self, what: str, exc: BaseException) -> None:
        """Record a part that could not be read; a family-fatal error is re-raised at once."""
        if is_family_fatal(exc):
            raise exc
        self.problems.append(f"{what}: {exc}")

    def finish(self) -> None:
        """Call at the end of `collect`: raises `IncompleteCollection` if any part failed."""
        from dingvault.source.errors import IncompleteCollection

        if self.problems:
            problems, self.problems = self.problems, []
            raise IncompleteCollection(self.name, problems)

    def cursor(self, cursors: Mapping[CursorKey, dict[str, Any]], container: str = "") -> dict[str, Any]:
        return dict(cursors.get((self.name, container)) or {})


# ---------------------------------------------------------------- helpers


def owner_by_unionid(item: Item, directory: Directory | None) -> Item:
    """Storage, calendar and todo APIs name people by unionId: keep it, and give `owner` as userid."""
    union = item.fields.get("owner")
    if union:
        item.fields["owner_unionid"] = union
        item.fields["owner"] = directory.userid_for_unionid(str(union)) if directory is not None else None
    return item


def ref_dict(ref: AttachmentRef | Mapping[str, Any]) -> dict[str, Any]:
    return dict(ref.ref) if isinstance(ref, AttachmentRef) else dict(ref)


def content_hash(obj: Any) -> str:
    """A stable hash of a JSON-able payload: the version key of records without a change marker."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def stable_hash(obj: dict[str, Any], derived: Iterable[str]) -> str:
    """`content_hash` of a record without its *derived* fields (counters, last-activity times).

    Such fields change whenever something inside the record's scope changes (a member joins, a file
    is added) and are versioned with those records already; leaving them out of the version key
    means a department or space gets a new version only when its own attributes change, while the
    stored payload still carries their current values whenever a version is stored.
    """
    drop = set(derived)
    return content_hash({k: v for k, v in obj.items() if k not in drop})


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def iso_from_ms(ms: int | float | str | None) -> str | None:
    if ms in (None, ""):
        return None
    try:
        value = float(ms)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_seconds(ms: int) -> str:
    """`YYYY-MM-DDTHH:mm:ssZ`, the format of empLeaveRecords and friends."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms_from_iso(text: str | None) -> int | None:
    """Parse the ISO variants DingTalk uses (`2022-08-31T11:52Z`, `...:00Z`, `+08:00`)."""
    if not text:
        return None
    value = str(text).strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def normalise_iso(text: str | None) -> str | None:
    ms = ms_from_iso(text)
    return iso_from_ms(ms) if ms is not None else text


def windows(start_ms: int, end_ms: int, span_ms: int) -> list[tuple[int, int]]:
    """Consecutive `[start, end]` windows of at most `span_ms` covering `start_ms..end_ms`."""
    out: list[tuple[int, int]] = []
    cursor = start_ms
    while cursor < end_ms:
        stop = min(end_ms, cursor + span_ms)
        out.append((cursor, stop))
        cursor = stop
    return out


async def bounded_map(
    func: Callable[[T], Awaitable[R]], values: Iterable[T], concurrency: int
) -> AsyncIterator[tuple[T, R | BaseException]]:
    """Run `func` over `values` with at most `concurrency` in flight; yield results in input order.

    Exceptions are yielded (not raised) so one bad record does not lose the others; the caller
    decides. Input is consumed lazily so memory stays bounded.
    """
    iterator = iter(values)
    pending: list[tuple[T, asyncio.Task[R]]] = []

    def _fill() -> None:
        while len(pending) < concurrency:
            try:
                value = next(iterator)
            except StopIteration:
                return
            pending.append((value, asyncio.ensure_future(func(value))))

    _fill()
    try:
        while pending:
            value, task = pending.pop(0)
            try:
                result: R | BaseException = await task
            except DingTalkError as exc:
                result = exc
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                # A payload of an unexpected shape: one record's problem, reported with its cause.
                from dingvault.source.errors import BadResponse

                result = BadResponse(f"unexpected answer shape for {value!r}: {type(exc).__name__}: {exc}")
                result.__cause__ = exc
            _fill()
            yield value, result
    finally:
        for _, task in pending:
            task.cancel()


def _outcome_of_failure(value: Any, exc: BaseException) -> BaseException | None:
    """The error `bounded_map`-style helpers yield for `value`, or None if it must propagate."""
    if isinstance(exc, DingTalkError):
        return exc
    if isinstance(exc, ValueError | KeyError | TypeError | AttributeError | IndexError):
        # A payload of an unexpected shape: one record's problem, reported with its cause.
        from dingvault.source.errors import BadResponse

        result = BadResponse(f"unexpected answer shape for {value!r}: {type(exc).__name__}: {exc}")
        result.__cause__ = exc
        return result
    return None


async def ordered_pipeline(
    source: AsyncIterator[Any],
    func: Callable[[Any], Awaitable[R]],
    *,
    slots: asyncio.Semaphore,
    lookahead: int,
    is_marker: Callable[[Any], bool] = lambda value: False,
) -> AsyncIterator[tuple[Any, R | BaseException | None]]:
    """`func` over a stream that is itself read from the network, results yielded in source order.

    Unlike `bounded_map`, the source (a listing) is read ahead by a background task while earlier
    values are still being processed, so neither waits for the other at page boundaries. At most
    `lookahead` values are read ahead of the consumer (memory stays bounded) and `func` runs under
    `slots`, which several pipelines may share to bound their calls together. Markers (per
    `is_marker`, e.g. "end of a listing window") are not processed: they come out with `None` in
    their place, after everything read before them — a cursor they carry covers what precedes it.

    Failures of `func` are yielded like `bounded_map` does; a failure of the source is raised
    after everything read before it has been yielded.
    """
    queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue(maxsize=max(1, lookahead))
    end = object()

    async def run(value: Any) -> R:
        # The slot is taken inside the task: a task cancelled before it starts holds none.
        async with slots:
            return await func(value)

    async def read_ahead() -> None:
        try:
            async for value in source:
                if is_marker(value):
                    await queue.put((value, None))
                    continue
                task = asyncio.ensure_future(run(value))
                try:
                    await queue.put((value, task))
                except BaseException:
                    task.cancel()
                    raise
        except Exception as exc:  # handed to the consumer, raised in order
            await queue.put((end, exc))
            return
        await queue.put((end, None))

    reader = asyncio.ensure_future(read_ahead())
    try:
        while True:
            value, job = await queue.get()
            if value is end:
                if job is not None:
                    raise job
                return
            if job is None:
                yield value, None
                continue
            try:
                result: R | BaseException = await job
            except Exception as exc:
                failure = _outcome_of_failure(value, exc)
                if failure is None:
                    raise
                result = failure
            yield value, result
    finally:
        reader.cancel()
        while not queue.empty():
            _, job = queue.get_nowait()
            if isinstance(job, asyncio.Future):
                job.cancel()


def has_more_token(token: Any) -> bool:
    """True when a `nextToken` means "more pages" (non-empty, not null)."""
    return token not in (None, "", 0, "0")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_family_fatal(exc: BaseException) -> bool:
    """Errors that stop a whole family (re-raised), as opposed to one record's failure."""
    from dingvault.source.errors import (
        AuthenticationError,
        IpBanned,
        IpNotWhitelisted,
        PermissionDenied,
        QuotaExhausted,
    )

    if isinstance(exc, QuotaExhausted | AuthenticationError | IpBanned | IpNotWhitelisted):
        return True
    return isinstance(exc, PermissionDenied) and bool(exc.required_scopes)


def check(result: R | BaseException) -> R:
    """Re-raise a family-fatal error from `bounded_map`; return the value otherwise."""
    if isinstance(result, BaseException):
        raise result
    return result


def month_of(ms: int | None) -> str:
    """`YYYY-MM` (UTC) of an epoch-ms time, the month containers of time-partitioned families."""
    if ms is None:
        return "unknown"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def whole_months(reach_ms: int, until_ms: int, include_current: bool) -> list[str]:
    """Months (YYYY-MM) lying entirely within `[reach_ms, until_ms]`.

    With `include_current` (the listing went up to now) the month in progress counts too: every
    instance created so far in it has been listed.
    """
    out: list[str] = []
    start = datetime.fromtimestamp(reach_ms / 1000, UTC)
    year, month = start.year, start.month
    # The first month counts only if the reach starts at its very beginning.
    if (start.day, start.hour, start.minute, start.second, start.microsecond) != (1, 0, 0, 0, 0):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while True:
        first = datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000
        nxt_dt = (
            datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
        )
        if first > until_ms:
            return out
        if nxt_dt.timestamp() * 1000 > until_ms and not include_current:
            return out
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


async def interleave(sources: Iterable[Callable[[], AsyncIterator[T]]], concurrency: int) -> AsyncIterator[T]:
    """Run up to `concurrency` async generators at once and yield their values as they come.

    Each source keeps its own order (so a container's cursor still follows its items); sources
    are started lazily. Producers wait for the consumer (queue of 1 per running source), so memory
    stays bounded. An exception in a source is re-raised here after the others are cancelled.
    """
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(maxsize=max(1, concurrency))
    pending = iter(sources)
    running: dict[int, asyncio.Task[None]] = {}
    counter = 0
    _done = object()

    async def pump(key: int, factory: Callable[[], AsyncIterator[T]]) -> None:
        try:
            async for value in factory():
                await queue.put((key, value))
        except Exception as exc:  # handed to the consumer, which re-raises it
            await queue.put((key, exc))
            return
        await queue.put((key, _done))

    def start_next() -> bool:
        nonlocal counter
        try:
            factory = next(pending)
        except StopIteration:
            return False
        counter += 1
        running[counter] = asyncio.ensure_future(pump(counter, factory))
        return True

    while len(running) < concurrency and start_next():
        pass
    try:
        while running:
            key, value = await queue.get()
            if value is _done:
                running.pop(key, None)
                start_next()
                continue
            if isinstance(value, BaseException):
                running.pop(key, None)
                raise value
            yield value
    finally:
        for task in running.values():
            task.cancel()


async def run_together(*coroutines: Awaitable[Any]) -> None:
    """Run coroutines concurrently; on the first failure cancel the rest and re-raise it as is.

    (`asyncio.gather` leaves the others running; `TaskGroup` wraps the error in an ExceptionGroup,
    which would hide a `QuotaExhausted` from the engine.)
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        for task in asyncio.as_completed(tasks):
            await task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
