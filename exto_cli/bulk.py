"""Bulk create-or-update: validate all input first, then send batches, every fate journalled.

Three rules keep a load from doing damage: nothing is sent until the whole input is valid;
a batch is re-sent after an ambiguous failure only when it is keyed (an upsert by a unique key
is idempotent); and every batch gets a `sending` line before it goes and an outcome line after,
each written whole and fsync'd, so an interrupted load can be resumed exactly.
"""

from __future__ import annotations

import array
import concurrent.futures
import datetime as dt
import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from exto_cli.errors import (
    AuthError,
    ExtoError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    UnknownOutcomeError,
    UsageError,
    error_body_parts,
)
from exto_cli.inputs import Item, Problem, write_rows

if TYPE_CHECKING:
    from exto_cli.client import ExtoSession

PROBLEM_CAP = 50
ItemSource = Callable[[], Iterator[Item | Problem]]


def _key_hash(value: Any) -> int:
    # Python's own hash is stable within one run, which is all the duplicate check needs
    # (equal hashes are then compared by value); the type keeps 1 and "1" apart.
    return hash((type(value).__name__, value)) & 0xFFFFFFFFFFFFFFFF


def payload_hash(records: list[dict[str, Any]]) -> str:
    text = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class BatchPlan:
    number: int
    first_index: int
    last_index: int
    first_line: int
    last_line: int
    size: int
    hash: str


@dataclass
class Plan:
    records: int = 0
    batches: list[BatchPlan] = field(default_factory=list)
    superseded: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0

    def add_problem(self, problem: Problem) -> None:
        if len(self.problems) < PROBLEM_CAP:
            self.problems.append(problem)
        else:
            self.more_problems += 1


def validate(source: ItemSource, *, key: str | None, on_duplicate: str, batch_size: int) -> Plan:
    """Read everything once (again only for duplicates), listing every problem; plan batches.

    Only 8-byte key hashes are kept in memory, so a 200,000-row file costs ~2 MB here.
    """
    plan = Plan()
    hashes = array.array("Q")
    batcher = _Batcher(batch_size)
    for entry in source():
        plan.records += 1
        if isinstance(entry, Problem):
            plan.add_problem(entry)
            continue
        if key is not None:
            value = entry.record.get(key)
            if value is None or value == "" or isinstance(value, (list, dict)):
                what = "no value" if value in (None, "") else "a list or object"
                plan.add_problem(Problem(entry.line, 0, f"the key field {key!r} has {what}"))
                continue
            hashes.append(_key_hash(value))
        if not plan.problems:
            batcher.add(entry)
    if plan.records == 0:
        plan.add_problem(Problem(1, 0, "the input holds no records"))
    if key is not None and not plan.problems:
        _duplicates(source, key, on_duplicate, hashes, plan)
    if plan.problems:
        return plan
    if plan.superseded:  # --on-duplicate last moved the batch boundaries: plan again
        batcher = _Batcher(batch_size)
        for entry in source():
            if isinstance(entry, Item) and entry.index not in plan.superseded:
                batcher.add(entry)
    plan.batches = batcher.finish()
    return plan


class _Batcher:
    """Cuts items into batches as they stream past, keeping only the open batch."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.open: list[Item] = []
        self.done: list[BatchPlan] = []

    def add(self, item: Item) -> None:
        self.open.append(item)
        if len(self.open) == self.size:
            self._close()

    def _close(self) -> None:
        batch = self.open
        self.done.append(
            BatchPlan(
                len(self.done) + 1,
                batch[0].index,
                batch[-1].index,
                batch[0].line,
                batch[-1].line,
                len(batch),
                payload_hash([i.record for i in batch]),
            )
        )
        self.open = []

    def finish(self) -> list[BatchPlan]:
        if self.open:
            self._close()
        return self.done


def _duplicates(
    source: ItemSource, key: str, on_duplicate: str, hashes: array.array[int], plan: Plan
) -> None:
    ordered = sorted(hashes)
    twice = {a for a, b in itertools.pairwise(ordered) if a == b}
    del ordered
    if not twice:
        return
    seen: dict[str, list[tuple[int, int]]] = {}
    for entry in source():
        if isinstance(entry, Item) and _key_hash(entry.record.get(key)) in twice:
            seen.setdefault(json.dumps(entry.record[key]), []).append((entry.index, entry.line))
    for value, places in seen.items():
        if len(places) < 2:
            continue
        if on_duplicate == "last":
            plan.superseded.update(index for index, _ in places[:-1])
            continue
        lines = ", ".join(str(line) for _, line in places[:-1])
        plan.add_problem(
            Problem(
                places[-1][1],
                0,
                f"the key {key} = {value} appears again "
                f"(also on line {lines}); use --on-duplicate last to keep the last",
            )
        )


def iter_batches(source: ItemSource, superseded: set[int], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for entry in source():
        if isinstance(entry, Item) and entry.index not in superseded:
            batch.append(entry)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


# -- the journal ---------------------------------------------------------------------


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """JSON lines, each written whole and fsync'd before the next step."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps({**event, "time": now()}, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@dataclass
class JournalState:
    start: dict[str, Any]
    hashes: dict[int, str]
    status: dict[int, str]  # batch -> ok | failed | partial | unknown (a `sending` alone: unknown)


def read_journal(path: Path) -> JournalState:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--resume {path}: {exc.strerror}") from None
    start: dict[str, Any] | None = None
    hashes: dict[int, str] = {}
    status: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines):
                break  # a last line cut short by a crash
            raise UsageError(f"{path}:{number}: not a journal line") from None
        kind = event.get("event")
        if kind == "start" and start is None:
            start = event
        elif kind == "sending":
            hashes[int(event["batch"])] = str(event["hash"])
            status[int(event["batch"])] = "unknown"
        elif kind == "outcome":
            status[int(event["batch"])] = str(event["status"])
    if start is None:
        raise UsageError(f"{path}: not an exto results journal (no start line)")
    return JournalState(start, hashes, status)


# -- sending -------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # ok | failed | partial | unknown
    http: int | None = None
    inserted: int = 0
    updated: int = 0
    inserted_ids: list[str] = field(default_factory=list)
    request_id: str | None = None
    error: str | None = None
    fatal: ExtoError | None = None  # stops the whole load (401/403, unknown master)

    def event(self, batch: int) -> dict[str, Any]:
        return {
            "event": "outcome",
            "batch": batch,
            "status": self.status,
            "http": self.http,
            "inserted": self.inserted,
            "updated": self.updated,
            "inserted_ids": self.inserted_ids,
            "request_id": self.request_id,
            "error": self.error,
        }


def send_batch(
    session: ExtoSession,
    path: str,
    params: dict[str, str],
    records: list[dict[str, Any]],
    keyed: bool,
) -> Outcome:
    try:
        response = session.call(
            "POST", path, params=params, json=records, idempotent=keyed, check=False
        )
    except UnknownOutcomeError as exc:
        return Outcome("unknown", error=exc.message, request_id=exc.request_id)
    except (AuthError, NotFoundError) as exc:
        return Outcome(
            "failed", http=exc.status, error=exc.message, request_id=exc.request_id, fatal=exc
        )
    except (NetworkError, RateLimitedError) as exc:
        return Outcome("failed", http=exc.status, error=exc.message, request_id=exc.request_id)
    except ExtoError as exc:  # a redirect on a write, an unreadable answer
        return Outcome("failed", http=exc.status, error=exc.message, request_id=exc.request_id)
    request_id = response.headers.get("X-Request-ID") or response.request.headers.get(
        "X-Request-ID"
    )
    if response.status_code in (200, 201):
        return _counted(
            response.json() if response.content else {},
            len(records),
            request_id,
            response.status_code,
        )
    where = f"POST {path}"
    error = session.error_from_response(where, response, str(request_id))
    detail = "; ".join([error.message, *error.details])
    if isinstance(error, (AuthError, NotFoundError)):
        return Outcome(
            "failed", response.status_code, error=detail, request_id=request_id, fatal=error
        )
    # A 5xx may have been applied: unkeyed, it is "unknown"; keyed, re-sending is safe.
    status = "unknown" if response.status_code >= 500 and not keyed else "failed"
    return Outcome(status, response.status_code, error=detail, request_id=request_id)


def _counted(body: Any, size: int, request_id: str | None, http: int) -> Outcome:
    inserted = int(body.get("insertedCount", 0)) if isinstance(body, dict) else 0
    updated = int(body.get("updatedCount", 0)) if isinstance(body, dict) else 0
    ids = [str(i) for i in body.get("insertedIds", [])] if isinstance(body, dict) else []
    if inserted + updated == size:
        return Outcome("ok", http, inserted, updated, ids, request_id)
    _summary, details = error_body_parts(body)
    note = f"the server counted {inserted + updated} of {size} records"
    return Outcome(
        "partial",
        http,
        inserted,
        updated,
        ids,
        request_id,
        "; ".join([note, *details]) if details else note,
    )


@dataclass
class Summary:
    read: int = 0
    sent: int = 0
    inserted: int = 0
    updated: int = 0
    failed: int = 0
    partial: int = 0
    unknown: int = 0
    skipped: int = 0
    batches: int = 0
    batches_sent: int = 0
    duration_s: float = 0.0
    results: str = ""
    failed_rows: str | None = None
    interrupted: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "records read": self.read,
            "records sent": self.sent,
            "inserted": self.inserted,
            "updated": self.updated,
            "failed": self.failed,
            "partial": self.partial,
            "unknown": self.unknown,
            "skipped (already done)": self.skipped,
            "batches": f"{self.batches_sent} sent of {self.batches}",
            "duration": f"{self.duration_s:.1f} s",
            "results file": self.results,
            "failed rows": self.failed_rows or "-",
        }


class FailedRows:
    """Rows of failed and unknown batches, in the input's format, ready to fix and reload."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = "jsonl" if fmt == "json" else fmt
        self.count = 0
        self._file: IO[str] | None = None
        self._header: list[str] | None = None
        self._lock = threading.Lock()

    def add(self, raws: list[Any]) -> None:
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                if self.fmt == "csv":
                    self._header = list(raws[0])
                    self._file.write(",".join(_csv_cell(h) for h in self._header) + "\r\n")
            write_rows(self._file, self.fmt, raws, self._header)
            self._file.flush()
            self.count += len(raws)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@dataclass
class Load:
    """One run of a bulk load: what to send where, and how."""

    session: ExtoSession
    path: str
    params: dict[str, str]
    keyed: bool
    concurrency: int
    journal: Journal
    failed_rows: FailedRows
    should_stop: Callable[[], bool] = lambda: False
    on_outcome: Callable[[BatchPlan, Outcome], None] = lambda _b, _o: None

    def run(
        self,
        plan: Plan,
        source: ItemSource,
        batch_size: int,
        resume: JournalState | None,
        summary: Summary,
    ) -> ExtoError | None:
        """Send every batch the plan and the journal call for; return a fatal error, if any."""
        started = time.monotonic()
        workers = self.concurrency if self.keyed else 1
        pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="batch")
        running: dict[concurrent.futures.Future[Outcome], tuple[BatchPlan, list[Item]]] = {}
        fatal: ExtoError | None = None
        try:
            for batch_plan, items in zip(
                plan.batches, iter_batches(source, plan.superseded, batch_size), strict=True
            ):
                if payload_hash([i.record for i in items]) != batch_plan.hash:
                    raise UsageError(f"the input changed while loading (batch {batch_plan.number})")
                if not self._wanted(batch_plan, resume, summary):
                    continue
                while len(running) >= workers:
                    fatal = self._collect(running, summary, block=True) or fatal
                if fatal is not None or self.should_stop():
                    summary.interrupted = fatal is None
                    break
                self.journal.write(
                    {
                        "event": "sending",
                        "batch": batch_plan.number,
                        "rows": [batch_plan.first_index + 1, batch_plan.last_index + 1],
                        "lines": [batch_plan.first_line, batch_plan.last_line],
                        "records": batch_plan.size,
                        "hash": batch_plan.hash,
                    }
                )
                future = pool.submit(
                    send_batch,
                    self.session,
                    self.path,
                    self.params,
                    [i.record for i in items],
                    self.keyed,
                )
                running[future] = (batch_plan, items)
                summary.batches_sent += 1
                summary.sent += batch_plan.size
            while running:
                fatal = self._collect(running, summary, block=True) or fatal
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            summary.duration_s = time.monotonic() - started
        return fatal

    def _wanted(self, batch: BatchPlan, resume: JournalState | None, summary: Summary) -> bool:
        if resume is None or batch.number not in resume.status:
            return True
        if resume.hashes.get(batch.number) not in (None, batch.hash):
            raise UsageError(
                f"the input no longer matches {self.journal.path} at batch {batch.number} "
                f"(lines {batch.first_line}-{batch.last_line})",
                hint="resume with the same file, --batch-size, --key and --on-duplicate",
            )
        status = resume.status[batch.number]
        if status == "ok" or (status in ("unknown", "partial") and not self.keyed):
            if status != "ok":
                # Unkeyed and maybe applied: sending it again could create duplicates.
                setattr(summary, status, getattr(summary, status) + batch.size)
            summary.skipped += batch.size
            return False
        return True

    def _collect(
        self,
        running: dict[concurrent.futures.Future[Outcome], tuple[BatchPlan, list[Item]]],
        summary: Summary,
        block: bool,
    ) -> ExtoError | None:
        done, _ = concurrent.futures.wait(
            running, timeout=None if block else 0, return_when=concurrent.futures.FIRST_COMPLETED
        )
        fatal = None
        for future in done:
            batch, items = running.pop(future)
            outcome = future.result()
            self.journal.write(outcome.event(batch.number))
            summary.inserted += outcome.inserted
            summary.updated += outcome.updated
            if outcome.status in ("failed", "unknown"):
                setattr(summary, outcome.status, getattr(summary, outcome.status) + batch.size)
                self.failed_rows.add([i.raw for i in items])
            elif outcome.status == "partial":
                summary.partial += batch.size - outcome.inserted - outcome.updated
            self.on_outcome(batch, outcome)
            fatal = fatal or outcome.fatal
        return fatal
