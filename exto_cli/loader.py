"""`exto update` without the CLI: input, validation, plan, preview, the load and its summary."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from exto_cli.bulk import (
    FailedRows,
    Journal,
    JournalState,
    Load,
    Plan,
    Summary,
    read_journal,
)
from exto_cli.errors import ExitCode, UsageError
from exto_cli.inputs import CELL_TYPES, CsvTyping, Item, Problem, detect_format, read_items

if TYPE_CHECKING:
    from exto_cli.client import ExtoSession

MAX_BATCH = 1000
DIFF_KEYS_PER_REQUEST = 100


@dataclass
class UpdateOptions:
    kind: str  # master | module
    name: str
    source: str | None  # a path, "-" for stdin, None with --set
    fmt: str | None = None
    set_record: dict[str, Any] | None = None
    key: str | None = None
    on_duplicate: str = "error"
    batch_size: int = MAX_BATCH
    empty_null: bool = False
    types: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    results: Path | None = None
    failed_rows: Path | None = None
    resume: Path | None = None
    concurrency: int = 4

    @property
    def api_path(self) -> str:
        from urllib.parse import quote

        prefix = "master-record" if self.kind == "master" else "module-record"
        return f"/api/v1/{prefix}/{quote(self.name, safe='')}"

    @property
    def params(self) -> dict[str, str]:
        return {"userName": self.user} if self.user else {}


def parse_types(items: list[str]) -> dict[str, str]:
    types = {}
    for item in items:
        name, sep, kind = item.partition("=")
        if not sep or not name or kind not in CELL_TYPES:
            raise UsageError(f"--type: expected FIELD=text|number|boolean|json, got {item!r}")
        types[name] = kind
    return types


def check_options(opts: UpdateOptions) -> None:
    if not 1 <= opts.batch_size <= MAX_BATCH:
        raise UsageError(f"--batch-size must be between 1 and {MAX_BATCH}, got {opts.batch_size}")
    if opts.kind == "module" and not opts.user:
        raise UsageError(
            "module writes need the acting user: add --user USERNAME",
            hint="the Exto username (an email) the records are written as",
        )
    if opts.on_duplicate not in ("error", "last"):
        raise UsageError(f"--on-duplicate: expected error or last, got {opts.on_duplicate!r}")
    if opts.fmt is not None and opts.fmt not in ("csv", "json", "jsonl"):
        raise UsageError(f"--format: expected csv, json or jsonl, got {opts.fmt!r}")
    if (opts.source is None) == (opts.set_record is None):
        raise UsageError("give an input FILE (or - for stdin), or --set FIELD=VALUE, not both")


@dataclass
class Input:
    path: Path
    fmt: str
    display: str
    typing: CsvTyping
    spooled: bool = False

    def items(self) -> Iterator[Item | Problem]:
        return read_items(self.path, self.fmt, self.typing)


def open_input(opts: UpdateOptions, spool_dir: Path, stdin: IO[str]) -> Input:
    typing = CsvTyping(opts.empty_null, opts.types)
    if opts.set_record is not None:
        spool = _spool_file(spool_dir, ".jsonl")
        spool.write_text(json.dumps(opts.set_record) + "\n", encoding="utf-8")
        return Input(spool, "jsonl", "--set", typing, spooled=True)
    if opts.source == "-":
        # Validation reads the input more than once, so stdin is kept on disk first.
        spool = _spool_file(spool_dir, ".input")
        with open(spool, "w", encoding="utf-8", newline="") as out:
            shutil.copyfileobj(stdin, out)
        head = spool.read_text(encoding="utf-8")[:256] if spool.stat().st_size else ""
        return Input(spool, detect_format(None, opts.fmt, head), "<stdin>", typing, spooled=True)
    path = Path(str(opts.source))
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(256)
    return Input(path, detect_format(path, opts.fmt, head), str(path), typing)


def _spool_file(directory: Path, suffix: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed at once, kept on disk
        dir=directory, prefix="stdin-", suffix=suffix, delete=False
    )
    handle.close()
    return Path(handle.name)


def check_plan(plan: Plan, source: Input) -> None:
    if not plan.problems:
        return
    lines = [f"{source.display}:{p.where('').lstrip(':')}: {p.message}" for p in plan.problems]
    if plan.more_problems:
        lines.append(f"... and {plan.more_problems} more")
    count = len(plan.problems) + plan.more_problems
    raise UsageError(
        f"{source.display}: {count} problem{'s' if count != 1 else ''} in the input; nothing was sent",
        snippet=lines,
    )


def default_results(state_dir: Path, opts: UpdateOptions) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return state_dir / "results" / f"update-{opts.kind}-{opts.name}-{stamp}.jsonl"


def failed_rows_path(results: Path, opts: UpdateOptions, fmt: str) -> Path:
    if opts.failed_rows is not None:
        return opts.failed_rows
    suffix = ".csv" if fmt == "csv" else ".jsonl"
    return results.with_name(results.stem + ".failed" + suffix)


def start_event(opts: UpdateOptions, source: Input, plan: Plan) -> dict[str, Any]:
    return {
        "event": "start",
        "target": f"{opts.kind} {opts.name}",
        "input": source.display,
        "format": source.fmt,
        "key": opts.key,
        "on_duplicate": opts.on_duplicate,
        "batch_size": opts.batch_size,
        "records": plan.records - len(plan.superseded),
        "batches": len(plan.batches),
    }


def check_resume(state: JournalState, opts: UpdateOptions, plan: Plan) -> None:
    start = state.start
    same = (
        start.get("target") == f"{opts.kind} {opts.name}"
        and start.get("key") == opts.key
        and start.get("batch_size") == opts.batch_size
        and start.get("on_duplicate", "error") == opts.on_duplicate
    )
    if not same:
        raise UsageError(
            f"--resume: the journal is for {start.get('target')} with --key {start.get('key')}, "
            f"--batch-size {start.get('batch_size')}; this run differs",
            hint="resume with the same command and options as the first run",
        )
    for number, digest in state.hashes.items():
        if number > len(plan.batches) or plan.batches[number - 1].hash != digest:
            raise UsageError(
                f"--resume: the input no longer matches the journal at batch {number}",
                hint="resume with the same, unchanged input file",
            )


def exit_code(summary: Summary) -> ExitCode:
    if summary.unknown:
        return ExitCode.UNKNOWN_OUTCOME
    if summary.failed or summary.partial:
        return ExitCode.PARTIAL
    return ExitCode.OK


def minimum_seconds(batches: int, rate: float) -> float:
    return 0.0 if rate <= 0 or batches <= 1 else (batches - 1) / rate


def plan_text(opts: UpdateOptions, source: Input, plan: Plan, rate: float) -> str:
    count = plan.records - len(plan.superseded)
    lines = [
        f"input: {source.display} ({source.fmt}), {count} records"
        + (f" ({len(plan.superseded)} earlier duplicates dropped)" if plan.superseded else ""),
        f"target: POST {opts.api_path}" + (f"?userName={opts.user}" if opts.user else ""),
        f"batches: {len(plan.batches)} of up to {opts.batch_size} records"
        + (f", keyed by {opts.key} (several in flight)" if opts.key else " (one at a time)"),
        f"requests: {len(plan.batches)}, at least {minimum_seconds(len(plan.batches), rate):.1f} s "
        f"at {rate:g} requests/s",
    ]
    for batch in plan.batches[:5]:
        lines.append(
            f"  batch {batch.number}: lines {batch.first_line}-{batch.last_line}, "
            f"{batch.size} records"
        )
    if len(plan.batches) > 5:
        lines.append(f"  ... {len(plan.batches) - 5} more batches")
    return "\n".join(lines)


@dataclass
class Diff:
    created: list[Any] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)
    unchanged: list[Any] = field(default_factory=list)
    unchecked: list[Any] = field(default_factory=list)

    def text(self, key: str, sample: int = 3) -> str:
        parts = []
        for label, keys in (
            ("create", self.created),
            ("update", self.updated),
            ("unchanged", self.unchanged),
            ("cannot check", self.unchecked),
        ):
            shown = ", ".join(json.dumps(k, ensure_ascii=False) for k in keys[:sample])
            more = f", ... ({len(keys) - sample} more)" if len(keys) > sample else ""
            parts.append(
                f"{label}: {len(keys)}" + (f"  e.g. {key} = {shown}{more}" if keys else "")
            )
        return "\n".join(parts)


def diff(session: ExtoSession, opts: UpdateOptions, source: Input, plan: Plan) -> Diff:
    """Look the keys up (filtered GETs with `in`, paced) and sort records into create/update/same."""
    assert opts.key is not None
    result = Diff()
    pending: list[Item] = []
    for item in source.items():
        if isinstance(item, Item) and item.index not in plan.superseded:
            value = item.record[opts.key]
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if any(c in text for c in ":|") or text.startswith("(") or text.endswith(")"):
                result.unchecked.append(value)  # Exto's filter cannot carry it
                continue
            pending.append(item)
            if len(pending) == DIFF_KEYS_PER_REQUEST:
                _diff_chunk(session, opts, pending, result)
                pending = []
    if pending:
        _diff_chunk(session, opts, pending, result)
    return result


def _diff_chunk(session: ExtoSession, opts: UpdateOptions, items: list[Item], result: Diff) -> None:
    assert opts.key is not None
    values = [i.record[opts.key] for i in items]
    texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    params = {"filter": f"{opts.key}:in:{'|'.join(texts)}", "pageSize": "1000", "page": "1"}
    body = session.call("GET", opts.api_path, params=params).json()
    rows = body.get("rows", []) if isinstance(body, dict) else body
    existing: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        custom = row.get("customFields", row) if isinstance(row, dict) else {}
        existing[json.dumps(custom.get(opts.key))] = custom
    for item, value in zip(items, values, strict=True):
        current = existing.get(json.dumps(value))
        if current is None:
            result.created.append(value)
        elif all(current.get(k) == v for k, v in item.record.items()):
            result.unchanged.append(value)
        else:
            result.updated.append(value)


def run_load(
    session: ExtoSession,
    opts: UpdateOptions,
    source: Input,
    plan: Plan,
    state_dir: Path,
    *,
    should_stop: Any,
    on_outcome: Any,
) -> tuple[Summary, Any]:
    resume = read_journal(opts.resume) if opts.resume else None
    if resume is not None:
        check_resume(resume, opts, plan)
    results = opts.resume or opts.results or default_results(state_dir, opts)
    journal = Journal(results)
    failed = FailedRows(failed_rows_path(results, opts, source.fmt), source.fmt)
    summary = Summary(read=plan.records, batches=len(plan.batches), results=str(results))
    try:
        if resume is None:
            journal.write(start_event(opts, source, plan))
        else:
            journal.write({"event": "resume", "batches": len(plan.batches)})
        load = Load(
            session,
            opts.api_path,
            opts.params,
            opts.key is not None,
            opts.concurrency,
            journal,
            failed,
            should_stop,
            on_outcome,
        )
        fatal = load.run(plan, source.items, opts.batch_size, resume, summary)
        journal.write(
            {
                "event": "end",
                "interrupted": summary.interrupted,
                **{
                    k.replace(" ", "_"): v
                    for k, v in summary.row().items()
                    if k not in ("results file",)
                },
            }
        )
    finally:
        journal.close()
        failed.close()
    summary.failed_rows = str(failed.path) if failed.count else None
    return summary, fatal


def stdin_stream() -> IO[str]:
    return sys.stdin
