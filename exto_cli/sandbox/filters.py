"""Exto's ``filter`` query parameter, parsed and compiled to SQLite (docs/exto-api.md §10).

Grammar (``:``-separated tokens): ``cond (:and:|:or: cond)*`` with AND binding tighter than
OR and parentheses for grouping; ``cond`` is ``field[:TYPE]:op:value``. Semantics follow the
MongoDB store behind Exto: a condition on an array field holds when any element satisfies
it; negative operators (``ne``, ``nc``) are the negation of their positive twins, so they also
hold for blank values; ordering operators only match values of their type; ``cn``, ``sw``,
``ew`` and ``nc`` ignore case, ``eq`` does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TYPES = ("NUMBER", "STRING", "DATE", "PRIMITIVE")
OPERATORS: dict[str, tuple[str, ...]] = {
    "NUMBER": ("eq", "ne", "gt", "ge", "lt", "le", "in"),
    "STRING": ("eq", "cn", "sw", "ew", "nc", "in"),
    "DATE": ("eq", "ne", "gt", "ge", "lt", "le"),
    "PRIMITIVE": ("ne", "in"),
}
ALL_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le", "cn", "sw", "ew", "nc", "in")
# Declared field types of the sandbox schema, mapped to the filter's types.
FIELD_TYPE_TO_FILTER = {
    "number": "NUMBER",
    "currency": "NUMBER",
    "text": "STRING",
    "select": "STRING",
    "multiselect": "STRING",
    "email": "STRING",
    "date": "DATE",
    "datetime": "DATE",
    "boolean": "PRIMITIVE",
}
SYSTEM_COLUMNS = {
    "_id": "id",
    "id": "id",
    "refId": "ref_id",
    "slug": "ref_id",
    "recordNumber": "record_number",
    "status": "status",
    "createdBy": "created_by",
    "createdAt": "created_at",
    "updatedBy": "updated_by",
    "updatedAt": "updated_at",
    "projectID": "project_id",
    "tenantID": "tenant_id",
}
SYSTEM_TYPES = {"createdAt": "DATE", "updatedAt": "DATE"}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\- ]*$")
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FilterError(ValueError):
    """A malformed filter: always a 400 naming the problem, never a match-all."""


@dataclass
class Compiled:
    sql: str
    params: list[Any] = field(default_factory=list)


def field_expression(name: str) -> tuple[str, bool]:
    """SQL for a field's value and whether it lives in customFields."""
    if name in SYSTEM_COLUMNS:
        return SYSTEM_COLUMNS[name], False
    if not _FIELD_NAME.match(name):
        raise FilterError(f"invalid field name {name!r}")
    return f"json_extract(custom, {_path(name)})", True


def infer_type(value: str) -> str:
    if _NUMBER.match(value):
        return "NUMBER"
    if _DATE.match(value):
        return "DATE"
    if value in ("true", "false"):
        return "PRIMITIVE"
    return "STRING"


def typed_value(value: str, ftype: str) -> Any:
    if ftype == "NUMBER":
        if not _NUMBER.match(value):
            raise FilterError(f"{value!r} is not a number")
        number = float(value)
        return (
            int(number)
            if number.is_integer() and "." not in value and "e" not in value.lower()
            else number
        )
    if ftype == "DATE":
        if not _DATE.match(value):
            raise FilterError(f"{value!r} is not a date in YYYY-MM-DD form")
        return value
    if ftype == "PRIMITIVE":
        if value in ("true", "false"):
            return 1 if value == "true" else 0
        return typed_value(value, "NUMBER") if _NUMBER.match(value) else value
    return value


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for piece in text.split(":"):
        opening = len(piece) - len(piece.lstrip("("))
        out.extend("(" * opening)
        core = piece[opening:]
        closing = len(core) - len(core.rstrip(")"))
        core = core[: len(core) - closing] if closing else core
        out.append(core)
        out.extend(")" * closing)
    return out


class _Parser:
    def __init__(self, text: str, field_types: Mapping[str, str], tz: str | None) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.field_types = field_types
        self.tz = tz
        self.params: list[Any] = []
        self.conditions = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, what: str) -> str:
        token = self.peek()
        if token is None:
            raise FilterError(f"filter ends early: expected {what}")
        self.pos += 1
        return token

    def parse(self) -> str:
        if not self.text.strip():
            raise FilterError("filter is empty")
        sql = self.expression()
        if self.peek() is not None:
            raise FilterError(
                f"unexpected {self.peek()!r} after condition {self.conditions}; "
                "join conditions with :and: or :or:"
            )
        return sql

    def expression(self) -> str:
        parts = [self.term()]
        while self.peek() == "or":
            self.pos += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def term(self) -> str:
        parts = [self.factor()]
        while self.peek() == "and":
            self.pos += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def factor(self) -> str:
        if self.peek() == "(":
            self.pos += 1
            inner = self.expression()
            if self.take("')'") != ")":
                raise FilterError("unbalanced parentheses: expected ')'")
            return inner
        return self.condition()

    def condition(self) -> str:
        self.conditions += 1
        where = f"condition {self.conditions}"
        name = self.take("a field name")
        if name in ("", "(", ")", "and", "or"):
            raise FilterError(f"{where}: expected a field name, got {name!r}")
        token = self.take("an operator")
        explicit = token if token in TYPES else None
        op = self.take("an operator") if explicit else token
        if op not in ALL_OPERATORS:
            raise FilterError(
                f"{where} ({name}): unknown operator {op!r}; "
                f"expected one of {', '.join(ALL_OPERATORS)}"
            )
        value = self.take("a value")
        if value in ("(", ")"):
            raise FilterError(f"{where} ({name}): expected a value, got {value!r}")
        try:
            if value == "null":
                if op not in ("eq", "ne"):
                    raise FilterError("null works with eq and ne only")
                return null_check(name, op == "eq")
            ftype = explicit or self.declared_type(name) or infer_type(value.split("|")[0])
            if op not in OPERATORS[ftype]:
                raise FilterError(
                    f"operator {op!r} is not supported for {ftype} fields; "
                    f"use one of {', '.join(OPERATORS[ftype])}"
                )
            return self.compare(name, ftype, op, value)
        except FilterError as exc:
            raise FilterError(f"{where} ({name}): {exc}") from None

    def declared_type(self, name: str) -> str | None:
        if name in SYSTEM_TYPES:
            return SYSTEM_TYPES[name]
        declared = self.field_types.get(name)
        return FIELD_TYPE_TO_FILTER.get(declared) if declared else None

    def compare(self, name: str, ftype: str, op: str, value: str) -> str:
        expr, custom = field_expression(name)
        negate = op in ("ne", "nc")
        positive = {"ne": "eq", "nc": "cn"}.get(op, op)
        if ftype == "DATE" and not self.tz:
            raise FilterError(
                "a DATE condition needs the localTimeZone query parameter (an IANA zone name)"
            )
        declared = self.field_types.get(name)
        if custom and (declared is None or declared in ("multiselect", "json")):
            # Only fields that may hold arrays pay for the any-element branch.
            path = _path(name)
            inner, params = predicate("e.value", ftype, positive, value, self.tz)
            outer, _ = predicate(expr, ftype, positive, value, self.tz)
            sql = (
                f"(CASE WHEN json_type(custom, {path}) = 'array' THEN EXISTS (SELECT 1 FROM "
                f"json_each(custom, {path}) AS e WHERE {inner}) ELSE {outer} END)"
            )
            self.params.extend(params * 2)
        else:
            scalar = declared if custom else None
            sql, params = predicate(expr, ftype, positive, value, self.tz, declared=scalar)
            self.params.extend(params)
        # Bare positive predicates let SQLite use the expression indexes on declared fields;
        # NULL only needs folding to false under NOT.
        return f"(NOT COALESCE({sql}, 0))" if negate else sql


def _path(name: str) -> str:
    return f"'$.\"{name}\"'"


def null_check(name: str, is_null: bool) -> str:
    expr, custom = field_expression(name)
    if custom:
        path = _path(name)
        blank = (
            f"(json_type(custom, {path}) IS NULL OR json_type(custom, {path}) = 'null' "
            f"OR {expr} = '' OR (json_type(custom, {path}) = 'array' "
            f"AND json_array_length(custom, {path}) = 0))"
        )
    else:
        blank = f"({expr} IS NULL OR {expr} = '')"
    return blank if is_null else f"(NOT {blank})"


def predicate(
    x: str, ftype: str, op: str, value: str, tz: str | None, *, declared: str | None = None
) -> tuple[str, list[Any]]:
    """SQL that holds when the value expression ``x`` satisfies ``op value``, and its params.

    SQLite orders NULL < numbers < text: ``x < n`` already excludes text and ``x >= '0'``
    means "x is text", so these predicates stay usable by an index on ``x``.
    """
    if op == "in":
        items = [
            item if ftype == "STRING" else typed_value(item, ftype) for item in value.split("|")
        ]
        return f"{x} IN ({', '.join('?' for _ in items)})", items
    typed = typed_value(value, ftype)
    if ftype == "DATE" and declared == "date":
        # Declared date fields hold validated YYYY-MM-DD text: a calendar date in any zone.
        guard = f" AND {x} >= '0'" if op in ("lt", "le") else ""
        return f"({x} {_SQL_OP[op]} ?{guard})", [typed]
    if ftype == "DATE":
        return f"exto_local_date({x}, ?) {_SQL_OP[op]} ?", [tz, typed]
    if op == "eq":
        return f"{x} = ?", [typed]
    if ftype == "NUMBER":
        # Text sorts above numbers: "> n" needs a type check, which (unlike a second range
        # bound) leaves the planner free to prefer a more selective index.
        guard = f" AND typeof({x}) IN ('integer', 'real')" if op in ("gt", "ge") else ""
        return f"({x} {_SQL_OP[op]} ?{guard})", [typed]
    lowered = str(typed).lower()
    if op == "cn":
        return f"(typeof({x}) = 'text' AND instr(lower({x}), ?) > 0)", [lowered]
    if op == "sw":
        return f"(typeof({x}) = 'text' AND substr(lower({x}), 1, length(?)) = ?)", [lowered] * 2
    return f"(typeof({x}) = 'text' AND substr(lower({x}), -length(?)) = ?)", [lowered] * 2


_SQL_OP = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def compile_filter(text: str, field_types: Mapping[str, str], tz: str | None) -> Compiled:
    """Compile a filter to a WHERE fragment; FilterError (a 400) for anything malformed."""
    parser = _Parser(text, field_types, tz)
    sql = parser.parse()
    return Compiled(sql, parser.params)
