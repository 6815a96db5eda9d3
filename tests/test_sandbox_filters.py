"""The sandbox's filter language: every operator and type, and the contract's own examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exto_cli.sandbox.filters import FilterError, compile_filter
from exto_cli.sandbox.store import Collection, Store

FIELDS = {
    "serial_number": "number",
    "number2": "number",
    "email_id": "text",
    "createdDate": "date",
    "number_field_1": "number",
    "number1": "number",
    "contact": "number",
    "addition": "boolean",
    "tags": "multiselect",
    "stamp": "datetime",
}
ROWS: dict[str, dict[str, Any]] = {
    "a": {
        "serial_number": 1234,
        "number2": 3,
        "email_id": "john@site.com",
        "createdDate": "2024-02-10",
        "number_field_1": 2,
        "number1": 6,
        "contact": 1,
        "addition": True,
        "tags": ["Red", "Blue"],
        "stamp": "2024-03-01T20:00:00.000Z",
    },
    "b": {
        "serial_number": 99,
        "number2": 1,
        "email_id": "Mary@Other.org",
        "createdDate": "2024-03-22",
        "number_field_1": 10,
        "number1": 6,
        "contact": 1234,
        "addition": False,
        "tags": ["Green"],
        "stamp": "2024-03-01T10:00:00.000Z",
    },
    "c": {
        "serial_number": 5,
        "number2": 2,
        "email_id": "",
        "createdDate": "2023-12-31",
        "number_field_1": 15,
        "number1": 1,
        "contact": 7,
        "addition": False,
        "tags": [],
    },
    "d": {
        "serial_number": None,
        "number2": "2",
        "email_id": "dom@site.com",
        "createdDate": "2024-04-01",
        "number_field_1": 7,
        "number1": 6,
        "contact": 1,
    },
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "f.sqlite")
    coll = Collection("DOCS", "master", FIELDS, ["serial_number"])
    s.define(coll)
    s.bulk_insert(coll, ({"key": k, **v} for k, v in ROWS.items()))
    yield s
    s.close()


def select(store: Store, text: str, tz: str | None = "UTC") -> list[str]:
    coll = store.collection("DOCS", "master")
    assert coll is not None
    compiled = compile_filter(text, coll.fields, tz)
    _, rows = store.query(
        coll,
        project=None,
        where=compiled.sql,
        params=compiled.params,
        status=None,
        order=None,
        limit=100,
        offset=0,
    )
    import json

    return sorted(json.loads(r["custom"])["key"] for r in rows)


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        # docs/exto-api.md §10.2, NUMBER
        ("serial_number:eq:1234", ["a"]),
        ("serial_number:NUMBER:eq:1234", ["a"]),
        ("number2:ne:2", ["a", "b", "d"]),  # "2" is text in d, so it is not the number 2
        ("number2:ge:2", ["a", "c"]),
        ("number2:gt:2", ["a"]),
        ("number2:le:2", ["b", "c"]),
        ("number2:lt:2", ["b"]),
        ("serial_number:eq:null", ["d"]),
        ("serial_number:ne:null", ["a", "b", "c"]),
        # STRING
        ("email_id:eq:john@site.com", ["a"]),
        ("email_id:cn:m", ["a", "b", "d"]),
        ("email_id:cn:MARY", ["b"]),
        ("email_id:sw:d", ["d"]),
        ("email_id:ew:m", ["a", "d"]),
        ("email_id:nc:com", ["b", "c"]),
        ("email_id:eq:null", ["c"]),
        ("email_id:ne:null", ["a", "b", "d"]),
        ("email_id:STRING:cn:site", ["a", "d"]),
        # PRIMITIVE
        ("addition:ne:0", ["a", "d"]),  # negative operators also hold for missing values
        ("addition:ne:true", ["b", "c", "d"]),
        # DATE, evaluated in localTimeZone
        ("createdDate:eq:2024-03-22", ["b"]),
        ("createdDate:ne:2024-03-22", ["a", "c", "d"]),
        ("createdDate:gt:2024-01-01", ["a", "b", "d"]),
        ("createdDate:lt:2024-03-01", ["a", "c"]),
        ("createdDate:ge:2024-02-10", ["a", "b", "d"]),
        ("createdDate:le:2024-03-31", ["a", "b", "c"]),
        # in, with |
        ("number_field_1:in:2|10|15", ["a", "b", "c"]),
        ("email_id:in:john@site.com|dom@site.com", ["a", "d"]),
        # and / or, AND binding tighter, parentheses
        ("number2:gt:2:and:email_id:cn:john", ["a"]),
        ("number1:eq:6:and:number2:eq:1:or:contact:eq:1234", ["b"]),
        ("contact:eq:7:or:number1:eq:6:and:number2:eq:3", ["a", "c"]),
        ("(contact:eq:7:or:number1:eq:6):and:number2:eq:3", ["a"]),
        ("((serial_number:eq:5))", ["c"]),
        # arrays match when any element does
        ("tags:eq:Red", ["a"]),
        ("tags:cn:ree", ["b"]),
        ("tags:eq:null", ["c", "d"]),
        # system fields
        ("createdBy:eq:seed@exto.local", ["a", "b", "c", "d"]),
    ],
)
def test_filter_selects(store: Store, text: str, keys: list[str]) -> None:
    assert select(store, text) == keys


def test_date_time_values_are_compared_in_the_given_zone(store: Store) -> None:
    # 2024-03-01T20:00Z is 2 March in Kolkata (UTC+5:30), 1 March in UTC.
    assert select(store, "stamp:eq:2024-03-01", "UTC") == ["a", "b"]
    assert select(store, "stamp:eq:2024-03-01", "Asia/Kolkata") == ["b"]
    assert select(store, "stamp:eq:2024-03-02", "Asia/Kolkata") == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("serial_number", "ends early"),
        ("serial_number:eq", "ends early"),
        ("serial_number:zz:1", "unknown operator 'zz'"),
        (
            "email_id:gt:a",
            "operator 'gt' is not supported for STRING fields; use one of eq, cn, sw, ew, nc, in",
        ),
        ("serial_number:cn:1", "not supported for NUMBER"),
        ("addition:eq:true", "not supported for PRIMITIVE fields; use one of ne, in"),
        ("serial_number:eq:abc", "'abc' is not a number"),
        ("createdDate:eq:2024-3-1", "not a date"),
        ("serial_number:eq:1:xor:number2:eq:1", "join conditions with :and: or :or:"),
        ("(serial_number:eq:1", "expected ')'"),
        ("serial_number:eq:1)", "unexpected ')'"),
        ("serial_number:gt:null", "null works with eq and ne only"),
        ("bad'name:eq:1", "invalid field name"),
    ],
)
def test_malformed_filters_are_errors_never_match_all(
    store: Store, text: str, message: str
) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select(store, text)


def test_date_condition_without_time_zone_is_an_error(store: Store) -> None:
    with pytest.raises(FilterError, match="needs the localTimeZone"):
        select(store, "createdDate:eq:2024-03-22", None)
