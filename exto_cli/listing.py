"""`exto get` without the CLI: build the query, page through it, write rows, checkpoint."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from exto_cli.errors import UsageError
from exto_cli.filters import WhereError, compile_where
from exto_cli.output import RecordWriter, open_writer
from exto_cli.records import (
    DEFAULT_CONCURRENCY,
    MAX_PAGE_SIZE,
    Checkpoint,
    Page,
    Pager,
    PagingStats,
    default_columns,
    flat_row,
)

if TYPE_CHECKING:
    from rich.console import Console

    from exto_cli.client import ExtoSession

ROW_FORMATS = ("csv", "tsv", "table")


@dataclass
class Query:
    path: str
    params: dict[str, str] = field(default_factory=dict)
    page: int = 1
    page_size: int = 25
    fetch_all: bool = False
    limit: int | None = None
    compiled_filter: str | None = None

    def identity(self, fmt: str, fields: Sequence[str] | None) -> dict[str, Any]:
        """What must not change between an interrupted export and its resumption."""
        return {
            "path": self.path,
            "params": self.params,
            "page_size": self.page_size,
            "all": self.fetch_all,
            "limit": self.limit,
            "format": fmt,
            "fields": list(fields or []),
        }


def where_error(expressions: Sequence[str], exc: WhereError) -> UsageError:
    index = getattr(exc, "expression_index", 0)
    text = expressions[index]
    label = f"--where #{index + 1}" if len(expressions) > 1 else "--where"
    return UsageError(
        f"{label}: {exc.message}",
        hint="see exto get master --help for the syntax",
        snippet=[text, " " * exc.position + "^"],
    )


def system_timezone(env: Mapping[str, str]) -> str | None:
    """The system's IANA zone name, if it can be told."""
    candidate = env.get("TZ", "").lstrip(":")
    if candidate and "/" in candidate:
        return candidate
    try:
        text = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if text:
            return text
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None


def check_timezone(name: str, source: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"{source}: unknown time zone {name!r}",
            hint="use an IANA name such as Asia/Kolkata or America/Los_Angeles",
        ) from None
    return name


def build_query(
    path: str,
    *,
    where: Sequence[str] = (),
    raw_filter: str | None = None,
    status: str | None = None,
    sort: str | None = None,
    tz: str | None = None,
    profile_tz: str | None = None,
    env: Mapping[str, str],
    page: int = 1,
    page_size: int = 25,
    fetch_all: bool = False,
    limit: int | None = None,
) -> Query:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    if page < 1:
        raise UsageError(f"--page must be 1 or more, got {page}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {limit}")
    try:
        compiled = compile_where(list(where), raw_filter) if (where or raw_filter) else None
    except WhereError as exc:
        raise where_error(where, exc) from None
    params: dict[str, str] = {}
    if compiled is not None and compiled.filter:
        params["filter"] = compiled.filter
    if status:
        params["status"] = status
    if sort:
        params["sort"] = sort
    zone = check_timezone(tz, "--tz") if tz else None
    if compiled is not None and compiled.needs_tz and zone is None:
        zone = profile_tz and check_timezone(profile_tz, "profile timezone")
        zone = zone or system_timezone(env)
        if zone is None:
            raise UsageError(
                "a date condition needs a time zone, and none was found",
                hint="pass --tz Asia/Kolkata (or set timezone in the profile, or EXTO_TZ)",
            )
    if zone:
        params["localTimeZone"] = zone
    if limit is not None and not fetch_all:
        fetch_all = True  # --limit reads as many pages as it takes
    return Query(
        path, params, page, page_size, fetch_all, limit, compiled.filter if compiled else None
    )


def explain(query: Query, base_url: str) -> str:
    from urllib.parse import urlencode

    from exto_cli.client import redact_url

    params = {**query.params, "page": str(query.page), "pageSize": str(query.page_size)}
    url = f"{base_url.rstrip('/')}/{query.path.lstrip('/')}?{urlencode(params)}"
    lines = [f"filter: {query.compiled_filter or '(none)'}"]
    if "localTimeZone" in query.params:
        lines.append(f"localTimeZone: {query.params['localTimeZone']}")
    lines.append(f"url: {redact_url(url)}")
    if query.fetch_all:
        lines.append(
            "pages: every page from this one on"
            + (f", at most {query.limit} rows" if query.limit else "")
        )
    return "\n".join(lines)


# -- shaping -------------------------------------------------------------------------

Shape = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def user_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A user-access entry flattened: the user's fields, then group and project lists."""
    user = entry.get("user") if isinstance(entry.get("user"), Mapping) else {}
    projects = entry.get("projects") or []
    return {
        **dict(user or {}),
        "groups": entry.get("groups", []),
        "projects": [p.get("projectID") if isinstance(p, Mapping) else p for p in projects],
    }


USER_COLUMNS = ["userName", "fullName", "email", "applicationRole", "status", "groups", "projects"]


@dataclass
class OutputSpec:
    fmt: str
    fields: list[str] | None = None
    header: bool = True
    shape: Shape | None = None  # for non-record listings (users)
    default_columns: list[str] | None = None


class RowSink:
    """Turns pages of records into rows of the chosen format; columns fixed by the first page."""

    def __init__(
        self,
        spec: OutputSpec,
        stream: IO[str],
        console: Console | None,
        warn: Callable[[str], None],
        columns: list[str] | None = None,
        header: bool | None = None,
    ) -> None:
        self.spec = spec
        self.stream = stream
        self.console = console
        self.warn = warn
        self.columns = columns
        self.header = spec.header if header is None else header
        self.writer: RecordWriter | None = None
        self._unseen_warned: set[str] = set()
        self._known: set[str] | None = None

    def _shape(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.spec.shape(record) if self.spec.shape is not None else record

    def _open(self, records: Sequence[Mapping[str, Any]]) -> RecordWriter:
        if self.columns is None:
            shaped = [self._shape(r) for r in records]
            self.columns = self.spec.fields or self.spec.default_columns or default_columns(shaped)
        return open_writer(
            self.spec.fmt, self.stream, self.columns, header=self.header, console=self.console
        )

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.writer is None:
            self.writer = self._open(records)
        shaped = [self._shape(r) for r in records] if self.spec.shape else records
        if self.spec.fmt in ROW_FORMATS or self.spec.fields:
            columns = self.columns
            assert columns is not None
            for record in shaped:
                self._note_unseen(record)
            self.writer.write_many([flat_row(r, columns) for r in shaped])
        else:
            self.writer.write_many(shaped)

    def _note_unseen(self, record: Mapping[str, Any]) -> None:
        if self.spec.fields or self.spec.default_columns:
            return
        assert self.columns is not None
        custom = record.get("customFields")
        keys = custom.keys() if isinstance(custom, Mapping) else record.keys()
        if self._known is None:
            self._known = set(self.columns)
        for key in keys - self._known:
            self._known.add(key)
            self._unseen_warned.add(key)
            self.warn(
                f"field {key!r} first appears after the header was written and is not "
                "in the output; name the columns with --fields"
            )

    def close(self) -> None:
        if self.writer is None:
            self.writer = self._open([])
        self.writer.close()


# -- the export loop -----------------------------------------------------------------


class Progress:
    """What the export loop reports; the CLI renders it (rich bar, plain lines, or nothing)."""

    def plan(self, first: Page, page_size: int, limit: int | None) -> None: ...

    def advance(self, page: Page) -> None: ...

    def close(self) -> None: ...


@dataclass
class ExportResult:
    stats: PagingStats
    resumed_from: int = 0
    already_done: bool = False


def run(
    session: ExtoSession,
    query: Query,
    spec: OutputSpec,
    *,
    stream: IO[str],
    console: Console | None,
    warn: Callable[[str], None],
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ExportResult:
    progress = progress or Progress()
    first_page, recent, columns, header = query.page, [], None, None
    if checkpoint is not None:
        if checkpoint.done:
            return ExportResult(PagingStats(rows=checkpoint.rows_written), already_done=True)
        if checkpoint.completed_pages:
            first_page = checkpoint.completed_pages + 1
            recent, columns, header = checkpoint.recent_ids, checkpoint.columns, False
    sink = RowSink(spec, stream, console, warn, columns, header)
    pager = Pager(
        session,
        query.path,
        query.params,
        page_size=query.page_size,
        first_page=first_page,
        fetch_all=query.fetch_all,
        limit=None
        if query.limit is None
        else query.limit - (checkpoint.rows_written if checkpoint else 0),
        concurrency=concurrency,
        warn=warn,
        recent_ids=recent,
        on_plan=lambda first: progress.plan(first, query.page_size, query.limit),
    )
    try:
        for page in pager:
            sink.write_page(page.rows)
            progress.advance(page)
            if checkpoint is not None:
                _record(checkpoint, stream, page, pager, sink)
        sink.close()
    finally:
        progress.close()
    if checkpoint is not None:
        checkpoint.done = True
        checkpoint.out_bytes = stream.tell()
        checkpoint.save()
    return ExportResult(pager.stats, resumed_from=first_page - 1 if first_page > query.page else 0)


def _record(
    checkpoint: Checkpoint, stream: IO[str], page: Page, pager: Pager, sink: RowSink
) -> None:
    # The rows of a page reach the disk before the checkpoint says the page is done.
    stream.flush()
    os.fsync(stream.fileno())
    checkpoint.completed_pages = page.number
    checkpoint.rows_written += len(page.rows)
    checkpoint.out_bytes = stream.tell()
    checkpoint.recent_ids = pager.recent_ids
    checkpoint.columns = sink.columns
    checkpoint.save()


def open_resumable(path: Path, checkpoint: Checkpoint) -> IO[str]:
    """The --out file: new, or cut back to what the checkpoint vouches for, then appended to."""
    if checkpoint.completed_pages == 0 or not path.exists():
        if checkpoint.completed_pages:
            raise UsageError(
                f"{path} is missing, but {checkpoint.path} says pages were written to it",
                hint="delete the checkpoint to start afresh",
            )
        return open(path, "w", encoding="utf-8", newline="")
    handle = open(path, "r+", encoding="utf-8", newline="")  # noqa: SIM115
    handle.seek(0, os.SEEK_END)
    if handle.tell() < checkpoint.out_bytes:
        handle.close()
        raise UsageError(
            f"{path} is shorter than {checkpoint.path} records", hint="delete both to start afresh"
        )
    handle.truncate(checkpoint.out_bytes)
    handle.seek(checkpoint.out_bytes)
    return handle


def minimum_seconds(requests_count: int, rate_per_second: float) -> float:
    """The rate-limit bound: N requests at R per second take at least (N - 1) / R seconds."""
    if rate_per_second <= 0 or requests_count <= 1:
        return 0.0
    return (requests_count - 1) / rate_per_second


def pages_needed(first: Page, page_size: int, limit: int | None) -> int | None:
    if first.total_pages is None:
        return None
    pages = first.total_pages - first.number + 1
    if limit is not None:
        pages = min(pages, math.ceil(limit / page_size))
    return max(pages, 1)
