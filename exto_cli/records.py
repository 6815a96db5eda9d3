"""Paging and export engines, independent of the CLI (no typer or rich here).

The paging engine fetches page 1, learns ``totalPages``, then keeps a few pages in flight
(every request through the shared limiter) and yields them strictly in page order. Memory is
bounded by the pages in flight. Exto pages by offset, so rows can shift between pages while an
export runs: duplicates at page boundaries are dropped by ``_id``, and a changing ``total`` is
reported rather than hidden.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exto_cli.errors import ExtoError, UsageError

if TYPE_CHECKING:
    from exto_cli.client import ExtoSession

MAX_PAGE_SIZE = 1000
DEFAULT_CONCURRENCY = 6
Warn = Callable[[str], None]


@dataclass
class Page:
    number: int
    rows: list[dict[str, Any]]
    total: int | None
    total_pages: int | None


def parse_page(body: Any, number: int, where: str) -> Page:
    """The list envelope ``{rows, total, page, pageSize, totalPages}``, or a bare array."""
    if isinstance(body, list):
        return Page(number, [r for r in body if isinstance(r, dict)], None, None)
    if isinstance(body, dict) and isinstance(body.get("rows"), list):
        total = body.get("total")
        pages = body.get("totalPages")
        return Page(
            number,
            [r for r in body["rows"] if isinstance(r, dict)],
            int(total) if isinstance(total, int) else None,
            int(pages) if isinstance(pages, int) else None,
        )
    raise ExtoError(f"{where}: unexpected answer: neither a list nor a page of rows")


@dataclass
class PagingStats:
    rows: int = 0
    pages: int = 0
    duplicates: int = 0
    first_total: int | None = None
    last_total: int | None = None
    more_rows: bool = False  # stopped by --limit or a single page while rows remained


class Pager:
    """Iterate the pages of one listing, in order, with several requests in flight."""

    def __init__(
        self,
        session: ExtoSession,
        path: str,
        params: Mapping[str, Any],
        *,
        page_size: int,
        first_page: int = 1,
        fetch_all: bool = True,
        limit: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        warn: Warn | None = None,
        recent_ids: Sequence[str] = (),
        on_plan: Callable[[Page], None] | None = None,
    ) -> None:
        self.session = session
        self.path = path
        self.params = dict(params)
        self.page_size = page_size
        self.first_page = first_page
        self.fetch_all = fetch_all
        self.limit = limit
        self.concurrency = max(1, concurrency)
        self.warn = warn or (lambda _msg: None)
        self.on_plan = on_plan
        self.stats = PagingStats()
        # Rows shift by at most a page between neighbouring requests: remembering the ids of
        # the last two pages is enough to drop the duplicates without growing with the result.
        self._recent: collections.deque[set[str]] = collections.deque(maxlen=2)
        if recent_ids:
            self._recent.append(set(recent_ids))
        self._warned_total = False
        self._last_page = first_page

    def fetch(self, number: int) -> Page:
        params = {**self.params, "page": number, "pageSize": self.page_size}
        response = self.session.call("GET", self.path, params=params)
        try:
            body = response.json()
        except ValueError:
            raise ExtoError(f"GET {self.path} page {number}: the answer is not JSON") from None
        return parse_page(body, number, f"GET {self.path} page {number}")

    def __iter__(self) -> Iterator[Page]:
        first = self.fetch(self.first_page)
        self.stats.first_total = self.stats.last_total = first.total
        if self.on_plan is not None:
            self.on_plan(first)
        for page in self._pages(first):
            page.rows = self._dedup(page.rows)
            if self.limit is not None:
                room = self.limit - self.stats.rows
                if len(page.rows) > room:
                    page.rows = page.rows[:room]
                    self.stats.more_rows = True
            self.stats.rows += len(page.rows)
            self.stats.pages += 1
            yield page
            if self.limit is not None and self.stats.rows >= self.limit:
                self.stats.more_rows = self.stats.more_rows or self._more_after(page)
                return
        if self.stats.duplicates:
            self.warn(f"dropped {self.stats.duplicates} duplicate rows that shifted between pages")

    def _more_after(self, page: Page) -> bool:
        if page.total_pages is not None:
            return page.number < page.total_pages
        return len(page.rows) >= self.page_size

    def _pages(self, first: Page) -> Iterator[Page]:
        yield first
        if not self.fetch_all:
            self.stats.more_rows = self._more_after(first)
            return
        if not first.rows:
            return
        if first.total_pages is None:
            yield from self._sequential(first)
            return
        yield from self._concurrent(first)

    def _sequential(self, first: Page) -> Iterator[Page]:
        """A bare-array answer has no page count: fetch until a short or empty page."""
        page = first
        while len(page.rows) >= self.page_size:
            page = self.fetch(page.number + 1)
            if not page.rows:
                return
            yield page

    def _concurrent(self, first: Page) -> Iterator[Page]:
        # The last page can move while we read: a later page may report more pages.
        self._last_page = first.total_pages or first.number
        next_number = first.number + 1
        pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="page")
        pending: collections.deque[concurrent.futures.Future[Page]] = collections.deque()
        try:
            while next_number <= self._last_page and len(pending) < self.concurrency:
                pending.append(pool.submit(self.fetch, next_number))
                next_number += 1
            while pending:
                page = pending.popleft().result()
                self._check_total(page)
                if not page.rows:
                    self.warn(
                        f"page {page.number} came back empty: the result shrank during the run"
                    )
                    return
                while next_number <= self._last_page and len(pending) < self.concurrency:
                    pending.append(pool.submit(self.fetch, next_number))
                    next_number += 1
                yield page
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _check_total(self, page: Page) -> None:
        if page.total_pages is not None and page.total_pages > self._last_page:
            self._last_page = page.total_pages
        if page.total is None or page.total == self.stats.last_total:
            return
        if not self._warned_total:
            self.warn(
                f"the result changed during the run: total was {self.stats.first_total}, "
                f"now {page.total}; rows may have shifted between pages"
            )
            self._warned_total = True
        self.stats.last_total = page.total

    def _dedup(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen = set().union(*self._recent) if self._recent else set()
        kept, ids = [], set()
        for row in rows:
            row_id = row.get("_id") or row.get("id")
            if isinstance(row_id, str):
                if row_id in seen or row_id in ids:
                    self.stats.duplicates += 1
                    continue
                ids.add(row_id)
            kept.append(row)
        self._recent.append(ids)
        return kept

    @property
    def recent_ids(self) -> list[str]:
        return sorted(self._recent[-1]) if self._recent else []


# -- shaping records for output ------------------------------------------------------


def field_value(record: Mapping[str, Any], name: str) -> Any:
    """A top-level field (refId, createdAt, ...) or else a custom field."""
    custom = record.get("customFields")
    if name in record and name != "customFields":
        return record[name]
    if isinstance(custom, Mapping):
        return custom.get(name)
    return None


def flat_row(record: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    custom = record.get("customFields")
    if custom.__class__ is not dict:
        return {name: field_value(record, name) for name in columns}
    # The hot path of every export: plain dicts, no ABC checks.
    get = custom.get
    return {n: record[n] if n in record and n != "customFields" else get(n) for n in columns}


def default_columns(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """``refId`` then the customFields keys in first-seen order (plain keys for other rows)."""
    columns: dict[str, None] = {}
    for record in records:
        custom = record.get("customFields")
        if isinstance(custom, Mapping):
            columns.setdefault("refId", None)
            for key in custom:
                columns.setdefault(str(key), None)
        else:
            for key in record:
                columns.setdefault(str(key), None)
    return list(columns)


# -- checkpoints ---------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Completed pages of an export, so that an interrupted run can continue."""

    path: Path
    query_hash: str
    completed_pages: int = 0
    rows_written: int = 0
    out_bytes: int = 0
    recent_ids: list[str] = field(default_factory=list)
    done: bool = False
    columns: list[str] | None = None

    @staticmethod
    def hash_query(query: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()

    @classmethod
    def open(cls, path: Path, query: Mapping[str, Any]) -> Checkpoint:
        digest = cls.hash_query(query)
        if not path.exists():
            return cls(path, digest)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            checkpoint = cls(
                path,
                str(data["query_hash"]),
                int(data["completed_pages"]),
                int(data["rows_written"]),
                int(data["out_bytes"]),
                [str(i) for i in data.get("recent_ids", [])],
                bool(data.get("done", False)),
                data.get("columns"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{path}: not a readable exto checkpoint ({exc})",
                hint="delete it to start the export afresh",
            ) from None
        if checkpoint.query_hash != digest:
            raise UsageError(
                f"{path} belongs to a different query (name, filter, sort, page size, format "
                "or fields differ)",
                hint="run the same command as before, or use another --checkpoint file",
            )
        return checkpoint

    def save(self) -> None:
        data = {
            "version": 1,
            "query_hash": self.query_hash,
            "completed_pages": self.completed_pages,
            "rows_written": self.rows_written,
            "out_bytes": self.out_bytes,
            "recent_ids": self.recent_ids,
            "done": self.done,
            "columns": self.columns,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoint-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
