"""Writers for table, json, jsonl, csv and tsv, and the stderr message printer.

Data goes to stdout only; notes, warnings and errors to stderr. Writers stream: rows are
written as they arrive (except the table, which is for people and holds one page at most).
Text that came from the server is shown without rich markup, control characters escaped.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "json", "jsonl", "csv", "tsv")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_C1_AND_DEL = re.compile(r"[\x7f-\x9f]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def sanitize(text: str) -> str:
    """Escape control characters (terminal escapes included) so server text prints inertly."""
    return _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any, *, indent: int | None = None) -> str:
    """JSON with non-ASCII kept readable but DEL and C1 controls escaped as well."""
    if indent is None:
        text = _COMPACT.encode(value)
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent, separators=(",", ": "))
    if text.isascii():  # the common case: nothing beyond U+007E can need escaping
        return text
    return _C1_AND_DEL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def resolve_format(option: str | None, env: Mapping[str, str], stdout_is_tty: bool) -> str:
    from exto_cli.errors import UsageError

    chosen = option or env.get("EXTO_OUTPUT") or ("table" if stdout_is_tty else "json")
    if chosen not in FORMATS:
        source = "-o/--output" if option else "EXTO_OUTPUT"
        raise UsageError(f"{source}: unknown format {chosen!r}; choose one of {', '.join(FORMATS)}")
    return chosen


def cell_text(value: Any) -> str:
    """A value as one CSV/table cell: null empty, text as is, the rest as compact JSON."""
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if value.__class__ is int:
        return str(value)
    return to_json(value)


class RecordWriter(Protocol):
    def write(self, row: Mapping[str, Any]) -> None: ...

    def write_many(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


class JsonArrayWriter:
    """One valid JSON array, written element by element: memory stays flat."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def write(self, row: Mapping[str, Any]) -> None:
        self.write_many([row])

    def write_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        # One write per page, not per row: the stream's own overhead dominates otherwise.
        lead = "[\n  " if self.count == 0 else ",\n  "
        self.stream.write(lead + ",\n  ".join(map(to_json, rows)))
        self.count += len(rows)

    def close(self) -> None:
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()


class JsonLinesWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, row: Mapping[str, Any]) -> None:
        self.stream.write(to_json(row) + "\n")

    def write_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.stream.write("\n".join(map(to_json, rows)) + "\n")

    def close(self) -> None:
        self.stream.flush()


class DelimitedWriter:
    """RFC 4180 CSV (or TSV with backslash escapes); the header comes from ``columns``."""

    def __init__(
        self, stream: IO[str], columns: Sequence[str], *, tsv: bool = False, header: bool = True
    ) -> None:
        self.stream = stream
        self.columns = list(columns)
        self.tsv = tsv
        self._csv = None if tsv else csv.writer(stream, lineterminator="\r\n")
        if header:
            self._row(self.columns)

    def _row(self, cells: Sequence[str]) -> None:
        if self._csv is not None:
            self._csv.writerow(cells)
        else:
            self.stream.write("\t".join(_tsv_escape(c) for c in cells) + "\n")

    def write(self, row: Mapping[str, Any]) -> None:
        self._row([cell_text(row.get(c)) for c in self.columns])

    def write_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        columns = self.columns
        cells = [[cell_text(row.get(c)) for c in columns] for row in rows]
        if self.tsv:
            self.stream.write("".join("\t".join(map(_tsv_escape, r)) + "\n" for r in cells))
            return
        buffer = io.StringIO()  # one write per page
        csv.writer(buffer, lineterminator="\r\n").writerows(cells)
        self.stream.write(buffer.getvalue())

    def close(self) -> None:
        self.stream.flush()


def _tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class TableWriter:
    """A rich table on stdout for people; holds the rows of one page until close."""

    def __init__(self, console: Console, columns: Sequence[str], *, header: bool = True) -> None:
        self.console = console
        self.columns = list(columns)
        self.header = header
        self.rows: list[list[str]] = []

    def write(self, row: Mapping[str, Any]) -> None:
        self.rows.append([sanitize(cell_text(row.get(c))) for c in self.columns])

    def write_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=self.header, header_style="bold", box=None, pad_edge=False)
        for column in self.columns:
            table.add_column(Text(sanitize(column)), overflow="fold")
        for cells in self.rows:
            table.add_row(*(Text(c) for c in cells))
        self.console.print(table)


def open_writer(
    fmt: str,
    stream: IO[str],
    columns: Sequence[str],
    *,
    header: bool = True,
    console: Console | None = None,
) -> RecordWriter:
    if fmt == "json":
        return JsonArrayWriter(stream)
    if fmt == "jsonl":
        return JsonLinesWriter(stream)
    if fmt in ("csv", "tsv"):
        return DelimitedWriter(stream, columns, tsv=fmt == "tsv", header=header)
    assert console is not None, "table output needs a console"
    return TableWriter(console, columns, header=header)


def write_records(
    fmt: str,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    stream: IO[str] | None = None,
    header: bool = True,
    console: Console | None = None,
) -> int:
    writer = open_writer(fmt, stream or sys.stdout, columns, header=header, console=console)
    batch = list(rows)
    writer.write_many(batch)
    writer.close()
    return len(batch)


def make_console(*, stderr: bool, color: str, file: IO[str] | None = None) -> Console:
    from rich.console import Console

    kwargs: dict[str, Any] = {"stderr": stderr, "highlight": False, "soft_wrap": False}
    if file is not None:
        kwargs["file"] = file
    if color == "always":
        kwargs["force_terminal"] = True
    elif color == "never":
        kwargs["no_color"] = True
        kwargs["color_system"] = None
    return Console(**kwargs)


class Printer:
    """Notes, warnings and errors on stderr. Server text is sanitised by the caller's helpers."""

    def __init__(self, *, quiet: bool = False, color: str = "auto") -> None:
        self.quiet = quiet
        self.color = color
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = make_console(stderr=True, color=self.color, file=sys.stderr)
        return self._console

    def _line(self, label: str, style: str, text: str) -> None:
        from rich.text import Text

        line = Text()
        line.append(label, style=style)
        line.append(sanitize(text))
        self.console.print(line, soft_wrap=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line("", "", text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self._line("warning: ", "yellow bold", text)

    def error(
        self,
        text: str,
        *,
        hint: str | None = None,
        details: Sequence[str] = (),
        snippet: Sequence[str] = (),
    ) -> None:
        self._line("error: ", "red bold", text)
        for line in snippet:
            self._line("  ", "", line)
        for detail in details:
            self._line("  - ", "red", detail)
        if hint:
            self._line("hint: ", "cyan bold", hint)

    def log(self, text: str) -> None:
        """A -v/--debug line: plain, always shown when asked for."""
        self.console.print(sanitize(text), markup=False, highlight=False, soft_wrap=True)
