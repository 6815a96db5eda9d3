"""Reading bulk input (CSV, a JSON array, JSON lines) as records, with positions for errors.

Readers stream: a JSON array is decoded element by element, CSV row by row, so a big file is
never held in memory. Every problem carries the file, line and column it was found at.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FORMATS = ("csv", "json", "jsonl")
EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CELL_TYPES = ("text", "number", "boolean", "json")
# Fields Exto sets itself: dropped from what is sent (an export loaded back carries them).
READ_ONLY_FIELDS = frozenset(
    {
        "_id",
        "id",
        "refId",
        "slug",
        "tenantID",
        "projectID",
        "parentID",
        "createdBy",
        "createdAt",
        "updatedBy",
        "updatedAt",
        "isDeleted",
    }
)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_CHUNK = 1 << 16
_LOOKAHEAD = 4 << 20  # a record longer than this must be well-formed to be read


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    def where(self, name: str) -> str:
        return f"{name}:{self.line}:{self.column}" if self.column else f"{name}:{self.line}"


@dataclass
class Item:
    """One input record: what will be sent, and the original for the failed-rows file."""

    index: int
    line: int
    record: dict[str, Any]
    raw: Any


def detect_format(path: Path | None, option: str | None, head: str) -> str:
    if option:
        return option
    if path is not None and path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    first = head.lstrip()[:1]
    return "json" if first == "[" else "jsonl" if first == "{" else "csv"


@dataclass
class CsvTyping:
    empty_as_null: bool = False
    overrides: Mapping[str, str] | None = None

    def convert(self, name: str, cell: str) -> tuple[bool, Any, str | None]:
        """(keep, value, problem): empty cells are left out unless --empty null."""
        if cell == "":
            return self.empty_as_null, None, None
        forced = (self.overrides or {}).get(name)
        if forced == "text":
            return True, cell, None
        if forced == "number":
            if _NUMBER.fullmatch(cell):
                return True, json.loads(cell), None
            return False, None, f"column {name!r}: {cell!r} is not a number"
        if forced == "boolean":
            if cell.lower() in ("true", "false"):
                return True, cell.lower() == "true", None
            return False, None, f"column {name!r}: {cell!r} is not true or false"
        if forced == "json":
            try:
                return True, json.loads(cell), None
            except ValueError as exc:
                return False, None, f"column {name!r}: not JSON ({exc.args[0].split(':')[0]})"
        return True, infer_cell(cell), None


def infer_cell(cell: str) -> Any:
    """A JSON number, boolean, array or object becomes that type; everything else is text.

    Leading zeros ("007") are not JSON numbers, so such codes stay text.
    """
    first = cell[0]
    if first in "-0123456789" and _NUMBER.fullmatch(cell):
        return json.loads(cell)
    if cell in ("true", "false"):
        return cell == "true"
    if first in "[{":
        try:
            value = json.loads(cell)
        except ValueError:
            return cell
        if isinstance(value, (list, dict)):
            return value
    return cell


def clean(record: Mapping[str, Any]) -> dict[str, Any]:
    """Records from `exto get -o json/jsonl` are flattened to their customFields."""
    custom = record.get("customFields")
    source = custom if isinstance(custom, Mapping) else record
    return {k: v for k, v in source.items() if k not in READ_ONLY_FIELDS}


def read_csv(stream: IO[str], typing: CsvTyping) -> Iterator[Item | Problem]:
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield Problem(reader.line_num, 0, f"not valid CSV: {exc}")
        return
    seen: set[str] = set()
    for column, name in enumerate(header, start=1):
        if not name:
            yield Problem(1, column, "empty column name in the header")
        elif name in seen:
            yield Problem(1, column, f"column {name!r} appears twice in the header")
        seen.add(name)
    last_line, index = reader.line_num, 0
    plain = not typing.empty_as_null and not typing.overrides
    sendable = ["" if name in READ_ONLY_FIELDS else name for name in header]
    record: dict[str, Any]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Problem(last_line + 1, 0, f"not valid CSV: {exc}")
            return
        line, last_line = last_line + 1, reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            yield Problem(line, 0, f"expected {len(header)} fields, found {len(row)}")
            index += 1
            continue
        if plain:
            # The common case, kept tight: no overrides, empty cells left out.
            record = {n: infer_cell(c) for n, c in zip(sendable, row, strict=True) if c and n}
            yield Item(index, line, record, dict(zip(header, row, strict=True)))
            index += 1
            continue
        record = {}
        bad = False
        for column, (name, cell) in enumerate(zip(header, row, strict=True), start=1):
            keep, value, problem = typing.convert(name, cell)
            if problem:
                yield Problem(line, column, problem)
                bad = True
            elif keep and name not in READ_ONLY_FIELDS:
                record[name] = value
        if not bad:
            yield Item(index, line, record, dict(zip(header, row, strict=True)))
        index += 1


def read_jsonl(stream: IO[str]) -> Iterator[Item | Problem]:
    index = 0
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Problem(line_number, exc.colno, f"not valid JSON: {exc.msg}")
            index += 1
            continue
        if not isinstance(value, dict):
            yield Problem(line_number, 1, f"expected an object, found {type(value).__name__}")
        else:
            yield Item(index, line_number, clean(value), value)
        index += 1


class _Buffer:
    """A sliding window over the stream; (line, column) of any index, in amortised O(1)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.text = ""
        self.eof = False
        self.line, self.column, self.mark = 1, 1, 0  # the position of text[mark]

    def fill(self, i: int) -> int:
        """Read more; drop what lies before the mark; return ``i`` re-based."""
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return i
        self.text = self.text[self.mark :] + chunk
        i, self.mark = i - self.mark, 0
        return i

    def locate(self, i: int) -> tuple[int, int]:
        segment = self.text[self.mark : i]
        newlines = segment.count("\n")
        if newlines:
            self.line += newlines
            self.column = len(segment) - segment.rfind("\n")
        else:
            self.column += len(segment)
        self.mark = i
        return self.line, self.column

    def skip_space(self, i: int) -> int:
        while True:
            while i < len(self.text) and self.text[i] in " \t\r\n":
                i += 1
            if i < len(self.text) or self.eof:
                return i
            i = self.fill(i)


def read_json_array(stream: IO[str]) -> Iterator[Item | Problem]:
    """Decode ``[ {...}, {...} ]`` one element at a time."""
    decoder = json.JSONDecoder()
    buf = _Buffer(stream)
    i = buf.skip_space(0)
    if i >= len(buf.text) or buf.text[i] != "[":
        yield Problem(*buf.locate(i), "expected a JSON array of records ('[' ...)")
        return
    i, index, expect_value = buf.skip_space(i + 1), 0, True
    while True:
        text = buf.text
        if i < len(text) and text[i] == "]" and (not expect_value or index == 0):
            i = buf.skip_space(i + 1)
            if i < len(buf.text):
                yield Problem(*buf.locate(i), "unexpected text after the closing ']'")
            return
        if i >= len(text):
            yield Problem(*buf.locate(i), "the array is not closed with ']'")
            return
        if not expect_value:
            if text[i] != ",":
                yield Problem(*buf.locate(i), "expected ',' or ']' between records")
                return
            i, expect_value = buf.skip_space(i + 1), True
            continue
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            # An error near the end of the buffer may only mean the element continues past
            # it (strings report where they start): read more and try again.
            if len(text) - exc.pos < _LOOKAHEAD and not buf.eof:
                i = buf.fill(i)
                continue
            yield Problem(*buf.locate(exc.pos), f"not valid JSON: {exc.msg}")
            return
        line, column = buf.locate(i)
        if isinstance(value, dict):
            yield Item(index, line, clean(value), value)
        else:
            yield Problem(line, column, f"expected an object, found {type(value).__name__}")
        index += 1
        i, expect_value = buf.skip_space(end), False


def read_items(path: Path, fmt: str, typing: CsvTyping) -> Iterator[Item | Problem]:
    with open(path, encoding="utf-8-sig", newline="") as stream:
        if fmt == "csv":
            yield from read_csv(stream, typing)
        elif fmt == "jsonl":
            yield from read_jsonl(stream)
        else:
            yield from read_json_array(stream)


def parse_set(items: list[str]) -> dict[str, Any]:
    """--set FIELD=text and --set FIELD:=JSON into one record (httpie's convention)."""
    record: dict[str, Any] = {}
    for item in items:
        if ":=" in item and item.index(":=") < item.index("=") + 1:
            name, raw = item.split(":=", 1)
            try:
                value: Any = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"--set {name}:= expects JSON: {exc.args[0]}") from None
        elif "=" in item:
            name, value = item.split("=", 1)
        else:
            raise ValueError(f"--set: expected FIELD=VALUE or FIELD:=JSON, got {item!r}")
        if not name:
            raise ValueError(f"--set: the field name is empty in {item!r}")
        record[name] = value
    return record


def write_rows(stream: IO[str], fmt: str, raws: list[Any], header: list[str] | None) -> None:
    """Rows in the input's own format, for the failed-rows file."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=header or sorted({k for r in raws for k in r}), lineterminator="\r\n"
        )
        writer.writerows(raws)
        stream.write(buffer.getvalue())
    else:
        stream.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in raws))
