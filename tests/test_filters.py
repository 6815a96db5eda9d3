"""The --where language: compilation, errors with positions, and a property test against the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from exto_cli.filters import And, Condition, Node, Or, WhereError, compile_where, parse
from exto_cli.sandbox.adapter import open_app
from exto_cli.sandbox.app import Faults, SandboxApp
from exto_cli.sandbox.store import Collection


@pytest.mark.parametrize(
    ("where", "compiled"),
    [
        ("serial_number = 1234", "serial_number:eq:1234"),
        ("number2 > 2 and email_id ~ john", "number2:gt:2:and:email_id:cn:john"),
        ("createdDate >= 2024-02-01", "createdDate:ge:2024-02-01"),
        ("number_field_1 in (2, 10, 15)", "number_field_1:in:2|10|15"),
        ("email_id is null", "email_id:eq:null"),
        ("email_id is not null", "email_id:ne:null"),
        ("addition != 0", "addition:ne:0"),
        ("email_id !~ com", "email_id:nc:com"),
        ("email_id ^= d", "email_id:sw:d"),
        ("email_id $= m", "email_id:ew:m"),
        ("name = 'Pune site 2'", "name:eq:Pune site 2"),
        ("code = '12'", "code:eq:12"),
        ("active = true", "active:in:true"),
        ("active != false", "active:ne:false"),
        (
            "number1 = 6 AND number2 = 1 OR contact = 1234",
            "number1:eq:6:and:number2:eq:1:or:contact:eq:1234",
        ),
        (
            "contact = 1234 or number1 = 6 and number2 = 1",
            "number1:eq:6:and:number2:eq:1:or:contact:eq:1234",
        ),
        ("a = 1 and b = 2 or c = 3 and d = 4", "(a:eq:1:and:b:eq:2):or:(c:eq:3:and:d:eq:4)"),
        ("a = 1 and (b = 2 or c = 3)", "a:eq:1:and:(b:eq:2:or:c:eq:3)"),
        ("name = 'O''Brien'", "name:eq:O'Brien"),
    ],
)
def test_where_compiles_to_exto_syntax(where: str, compiled: str) -> None:
    assert compile_where([where]).filter == compiled


def test_several_where_options_are_anded_with_a_raw_filter() -> None:
    result = compile_where(["a = 1", "b = 2 or c = 3"], "x:eq:1:or:y:eq:2")
    assert result.filter == "(x:eq:1:or:y:eq:2):and:a:eq:1:and:(b:eq:2:or:c:eq:3)"


def test_date_conditions_ask_for_a_time_zone() -> None:
    assert compile_where(["d >= 2024-01-01"]).needs_tz
    assert not compile_where(["n >= 5"]).needs_tz


@pytest.mark.parametrize(
    ("where", "message", "position"),
    [
        (
            "name > abc",
            "'>' is not supported for text; use one of =, ~, !~, ^=, $=, in, is null",
            5,
        ),
        ("n ~ 5", "'~' is not supported for numbers", 2),
        ("d ~ 2024-01-01", "'~' is not supported for dates", 2),
        ("flag > true", "'>' is not supported for true/false; use one of =, !=", 5),
        ("x = 'a:b'", "cannot carry ':' or '|'", 4),
        ("x in (a, 'b|c')", "cannot carry ':' or '|'", 9),
        ("x = 'null'", "would read as a blank test", 4),
        ("x = null", "write 'is null'", 4),
        ("x =", "expected a value", 3),
        ("(a = 1", "never closed", 0),
        ("a = 1)", "expected 'and', 'or' or the end", 5),
        ("a = 1 b = 2", "expected 'and', 'or' or the end", 6),
        ("= 1", "expected a field name", 0),
        ("a is 1", "expected 'null' after 'is'", 5),
        ("a in 1, 2", "expected '(' after 'in'", 5),
        ("a in (1, x)", "must all be numbers", 9),
        ("x = 'open", "unterminated quoted string", 4),
        ("", "empty", 0),
        ("a # 1", "expected an operator", 2),
        ("a = 'x' 'y'", "expected 'and', 'or' or the end", 8),
    ],
)
def test_errors_say_what_and_where(where: str, message: str, position: int) -> None:
    with pytest.raises(WhereError) as info:
        compile_where([where])
    assert message in info.value.message
    assert info.value.position == position


# -- the property test: compiled filters select what a reference evaluation selects ---

FIELDS = {"n1": "number", "n2": "number", "s1": "text", "d1": "date", "b1": "boolean"}
WORDS = ["alpha", "Beta", "gamma", "delta", "al", "ta", "AMMA", "x"]
DATES = ["2024-01-01", "2024-02-29", "2024-06-15", "2025-01-01"]


def _records() -> list[dict[str, Any]]:
    import random

    rng = random.Random(7)
    rows = []
    for i in range(60):
        row: dict[str, Any] = {"key": i}
        if rng.random() > 0.15:
            row["n1"] = rng.randrange(-3, 8)
        if rng.random() > 0.15:
            row["n2"] = rng.randrange(0, 4)
        if rng.random() > 0.15:
            row["s1"] = rng.choice([*WORDS, ""])
        if rng.random() > 0.15:
            row["d1"] = rng.choice(DATES)
        if rng.random() > 0.15:
            row["b1"] = rng.random() > 0.5
        rows.append(row)
    return rows


RECORDS = _records()


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxApp]:
    app = open_app(
        Path(tmp_path_factory.mktemp("prop")) / "p.sqlite",
        seed="empty",
        faults=Faults(rate_per_second=0),
    )
    coll = Collection("PROP", "master", FIELDS, [])
    app.store.define(coll)
    app.store.bulk_insert(coll, RECORDS)
    yield app
    app.store.close()


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def value_text(kind: str, value: Any) -> str:
    if kind == "NUMBER":
        return str(value)
    if kind == "PRIMITIVE":
        return "true" if value else "false"
    return value if kind == "DATE" else quoted(value)


NUMBER_OPS = ["=", "!=", ">", ">=", "<", "<="]
conditions = st.one_of(
    st.tuples(st.sampled_from(["n1", "n2"]), st.sampled_from(NUMBER_OPS), st.integers(-3, 8)).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"
    ),
    st.tuples(
        st.sampled_from(["n1", "n2"]), st.lists(st.integers(-3, 8), min_size=1, max_size=3)
    ).map(lambda t: f"{t[0]} in ({', '.join(map(str, t[1]))})"),
    st.tuples(
        st.just("s1"), st.sampled_from(["=", "~", "!~", "^=", "$="]), st.sampled_from(WORDS)
    ).map(lambda t: f"{t[0]} {t[1]} {quoted(t[2])}"),
    st.tuples(st.just("d1"), st.sampled_from(NUMBER_OPS), st.sampled_from(DATES)).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"
    ),
    st.tuples(st.just("b1"), st.sampled_from(["=", "!="]), st.booleans()).map(
        lambda t: f"{t[0]} {t[1]} {value_text('PRIMITIVE', t[2])}"
    ),
    st.tuples(st.sampled_from(list(FIELDS)), st.booleans()).map(
        lambda t: f"{t[0]} is {'not ' if t[1] else ''}null"
    ),
)
expressions = st.recursive(
    conditions,
    lambda inner: st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})" if t[1] == "or" else f"{t[0]} {t[1]} {t[2]}"
    ),
    max_leaves=5,
)


def blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def holds(node: Node, row: dict[str, Any]) -> bool:
    """The reference semantics (docs/sandbox.md): Exto's operators over Python values."""
    if isinstance(node, And):
        return all(holds(p, row) for p in node.parts)
    if isinstance(node, Or):
        return any(holds(p, row) for p in node.parts)
    return condition_holds(node, row.get(node.field))


def typed(value_kind: str, text: str) -> Any:
    if value_kind == "NUMBER":
        return int(text)
    if value_kind == "PRIMITIVE":
        return text == "true"
    return text


def condition_holds(cond: Condition, v: Any) -> bool:
    if cond.op == "is null":
        return blank(v)
    if cond.op == "is not null":
        return not blank(v)
    wanted = [typed(x.kind, x.text) for x in cond.values]
    kind = cond.values[0].kind
    is_number = isinstance(v, int) and not isinstance(v, bool)
    if cond.op == "in":
        return (is_number or isinstance(v, bool)) and v in wanted
    w = wanted[0]
    if cond.op in ("=", "!="):
        if kind == "NUMBER":
            equal = is_number and v == w
        elif kind == "PRIMITIVE":
            equal = isinstance(v, bool) and v == w
        else:
            equal = isinstance(v, str) and v == w
        return equal if cond.op == "=" else not equal
    if kind in ("NUMBER", "DATE") and cond.op in (">", ">=", "<", "<="):
        comparable = is_number if kind == "NUMBER" else isinstance(v, str) and v != ""
        if not comparable:
            return False
        return {">": v > w, ">=": v >= w, "<": v < w, "<=": v <= w}[cond.op]
    text = v.lower() if isinstance(v, str) else None
    needle = str(w).lower()
    if cond.op == "~":
        return text is not None and needle in text
    if cond.op == "!~":
        return not (text is not None and needle in text)
    if cond.op == "^=":
        return text is not None and text.startswith(needle)
    return text is not None and text.endswith(needle)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(expressions)
def test_compiled_filters_select_what_the_reference_selects(
    docs_app: SandboxApp, where: str
) -> None:
    compiled = compile_where([where])
    client = Client(docs_app)
    params = {"filter": compiled.filter, "pageSize": "1000", "localTimeZone": "UTC"}
    response = client.get(
        "/data/api/v1/master-record/PROP",
        query_string=params,
        headers={"Authorization": f"Bearer {docs_app.mint_token()}"},
    )
    assert response.status_code == 200, (where, compiled.filter, response.get_data(as_text=True))
    got = sorted(r["customFields"]["key"] for r in json.loads(response.get_data())["rows"])
    expected = sorted(r["key"] for r in RECORDS if holds(parse(where), r))
    assert got == expected, (where, compiled.filter)
