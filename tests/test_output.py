from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from exto_cli.errors import UsageError
from exto_cli.output import (
    JsonArrayWriter,
    cell_text,
    resolve_format,
    sanitize,
    to_json,
    write_records,
)

COLUMNS = ["refId", "name", "tags"]


def rows(n: int) -> Iterator[dict[str, object]]:
    for i in range(n):
        yield {"refId": f"R{i}", "name": f'name, "{i}"\n', "tags": ["a", "b"]}


@pytest.mark.parametrize("n", [0, 1, 3])
def test_json_output_is_one_valid_array(n: int) -> None:
    out = io.StringIO()
    write_records("json", rows(n), COLUMNS, stream=out)
    assert json.loads(out.getvalue()) == list(rows(n))


def test_jsonl_output_is_one_record_per_line() -> None:
    out = io.StringIO()
    write_records("jsonl", rows(3), COLUMNS, stream=out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == list(rows(3))


def test_csv_output_round_trips_through_the_csv_module() -> None:
    out = io.StringIO()
    write_records("csv", rows(2), COLUMNS, stream=out)
    parsed = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert parsed[0] == COLUMNS
    assert parsed[1] == ["R0", 'name, "0"\n', '["a","b"]']
    assert out.getvalue().endswith("\r\n")  # RFC 4180 line ends


def test_tsv_escapes_tabs_and_newlines() -> None:
    out = io.StringIO()
    write_records(
        "tsv", [{"refId": "a\tb", "name": "x\ny", "tags": None}], COLUMNS, stream=out, header=False
    )
    assert out.getvalue() == "a\\tb\tx\\ny\t\n"


def test_cell_text_nulls_are_empty_and_nested_values_compact_json() -> None:
    assert cell_text(None) == ""
    assert cell_text({"value": 12, "currency": "USD"}) == '{"value":12,"currency":"USD"}'
    assert cell_text(True) == "true"


def test_sanitize_escapes_terminal_control_sequences() -> None:
    assert sanitize("red\x1b[31m\x9b2J\x07") == "red\\x1b[31m\\x9b2J\\x07"


def test_json_escapes_c1_controls_and_stays_valid() -> None:
    text = to_json({"v": "a\x9bb\x7f"})
    assert "\x9b" not in text and json.loads(text) == {"v": "a\x9bb\x7f"}


def test_json_array_writer_memory_does_not_grow_with_rows() -> None:
    class Sink(io.TextIOBase):
        def write(self, s: str) -> int:
            return len(s)

    def peak(n: int) -> int:
        tracemalloc.start()
        writer = JsonArrayWriter(Sink())  # type: ignore[arg-type]
        for row in rows(n):
            writer.write(row)
        writer.close()
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    assert peak(20_000) < 2 * peak(2_000) + 10_000


def test_format_defaults_to_table_on_a_terminal_and_json_otherwise() -> None:
    assert resolve_format(None, {}, True) == "table"
    assert resolve_format(None, {}, False) == "json"
    assert resolve_format(None, {"EXTO_OUTPUT": "csv"}, True) == "csv"
    with pytest.raises(UsageError, match="unknown format 'xml'"):
        resolve_format("xml", {}, False)
