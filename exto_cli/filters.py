"""The --where language, compiled to Exto's filter syntax before anything is sent.

    name = 'Pune site 2' and (area_sqm > 5000 or active = true)
    code in (LOC-001, LOC-002)      opened_on >= 2025-01-01      email is not null

Values: numbers, dates (YYYY-MM-DD), true/false, bare words and 'quoted strings' (quotes force
text). Each operator maps to the Exto operator of the value's type (docs/exto-api.md §10.2);
an operator Exto lacks for that type is an error naming the ones it has. AND binds tighter
than OR. Errors carry the position of the problem so the CLI can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BARE = re.compile(r"[^\s()',=!<>~^$]+")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_OPERATORS = ("!~", "^=", "$=", "!=", ">=", "<=", "=", ">", "<", "~")

# Exto operators per value type, and the --where operators that reach them.
EXTO_OPS = {
    "NUMBER": {"=": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"},
    "DATE": {"=": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"},
    "STRING": {"=": "eq", "~": "cn", "!~": "nc", "^=": "sw", "$=": "ew"},
    # Exto's PRIMITIVE has only `ne`; `= true` is sent as `in:true`, which matches exactly.
    "PRIMITIVE": {"=": "in", "!=": "ne"},
}
TYPE_NAMES = {"NUMBER": "numbers", "DATE": "dates", "STRING": "text", "PRIMITIVE": "true/false"}


class WhereError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Value:
    text: str
    kind: str  # NUMBER | DATE | STRING | PRIMITIVE
    position: int


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # a --where operator, "in", "is null" or "is not null"
    values: tuple[Value, ...]
    position: int

    @property
    def kind(self) -> str:
        return self.values[0].kind if self.values else "NULL"


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Union[Condition, And, Or]  # noqa: UP007 - a runtime alias, needed before 3.12


@dataclass(frozen=True)
class Token:
    kind: str  # field-or-word, number, date, string, op, lparen, rparen, comma, end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "(),":
            tokens.append(Token({"(": "lparen", ")": "rparen", ",": "comma"}[ch], ch, i))
            i += 1
            continue
        if ch == "'":
            end, parts = i + 1, []
            while True:
                if end >= len(text):
                    raise WhereError("unterminated quoted string", i)
                if text[end] == "'":
                    if text[end + 1 : end + 2] == "'":  # '' is a quote inside quotes
                        parts.append("'")
                        end += 2
                        continue
                    break
                parts.append(text[end])
                end += 1
            tokens.append(Token("string", "".join(parts), i))
            i = end + 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        match = _BARE.match(text, i)
        if match is None:
            raise WhereError(f"unexpected character {ch!r}", i)
        word = match.group()
        kind = "number" if NUMBER.fullmatch(word) else "date" if DATE.fullmatch(word) else "word"
        tokens.append(Token(kind, word, i))
        i = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def keyword(self, *words: str) -> bool:
        token = self.current
        return token.kind == "word" and token.text.lower() in words

    def advance(self) -> Token:
        token = self.current
        self.pos += 1
        return token

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise WhereError("the expression is empty", 0)
        node = self.expression()
        if self.current.kind != "end":
            raise WhereError(
                f"expected 'and', 'or' or the end, found {self.current.text!r}",
                self.current.position,
            )
        return node

    def expression(self) -> Node:
        parts = [self.term()]
        while self.keyword("or"):
            self.advance()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Node:
        parts = [self.factor()]
        while self.keyword("and"):
            self.advance()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Node:
        if self.current.kind == "lparen":
            opening = self.advance()
            node = self.expression()
            if self.current.kind != "rparen":
                raise WhereError("this '(' is never closed", opening.position)
            self.advance()
            return node
        return self.condition()

    def condition(self) -> Condition:
        token = self.advance()
        if (
            token.kind != "word"
            or not _FIELD.fullmatch(token.text)
            or token.text.lower() in ("and", "or")
        ):
            raise WhereError(
                f"expected a field name, found {token.text or 'the end'!r}", token.position
            )
        if self.keyword("is"):
            self.advance()
            negated = self.keyword("not")
            if negated:
                self.advance()
            if not self.keyword("null"):
                raise WhereError("expected 'null' after 'is'", self.current.position)
            self.advance()
            return Condition(
                token.text, "is not null" if negated else "is null", (), token.position
            )
        if self.keyword("in"):
            self.advance()
            return Condition(token.text, "in", self.value_list(), token.position)
        op = self.current
        if op.kind != "op":
            raise WhereError(
                f"expected an operator (=, !=, >, >=, <, <=, ~, !~, ^=, $=, in, is) "
                f"after {token.text!r}",
                op.position,
            )
        self.advance()
        return Condition(token.text, op.text, (self.value(),), op.position)

    def value_list(self) -> tuple[Value, ...]:
        if self.current.kind != "lparen":
            raise WhereError("expected '(' after 'in'", self.current.position)
        self.advance()
        values = [self.value()]
        while self.current.kind == "comma":
            self.advance()
            values.append(self.value())
        if self.current.kind != "rparen":
            raise WhereError("expected ',' or ')' in the list", self.current.position)
        self.advance()
        return tuple(values)

    def value(self) -> Value:
        token = self.advance()
        if token.kind == "number":
            return Value(token.text, "NUMBER", token.position)
        if token.kind == "date":
            return Value(token.text, "DATE", token.position)
        if token.kind == "string":
            return Value(token.text, "STRING", token.position)
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return Value(lowered, "PRIMITIVE", token.position)
            if lowered == "null":
                raise WhereError(
                    "to test for blanks write 'is null' or 'is not null'", token.position
                )
            return Value(token.text, "STRING", token.position)
        raise WhereError(f"expected a value, found {token.text or 'the end'!r}", token.position)


def parse(text: str) -> Node:
    return _Parser(text).parse()


def _check_value(value: Value) -> str:
    text = value.text
    if ":" in text or "|" in text:
        raise WhereError(
            f"Exto's filter syntax cannot carry ':' or '|' in a value ({text!r})", value.position
        )
    if text.startswith("(") or text.endswith(")"):
        raise WhereError(
            f"Exto's filter syntax cannot carry a value that starts with '(' or ends with ')' ({text!r})",
            value.position,
        )
    if text == "" or text.lower() == "null":
        raise WhereError(
            "an empty or 'null' text value would read as a blank test; use 'is null'",
            value.position,
        )
    return text


def _condition(cond: Condition) -> str:
    if cond.op == "is null":
        return f"{cond.field}:eq:null"
    if cond.op == "is not null":
        return f"{cond.field}:ne:null"
    if cond.op == "in":
        odd = next((v for v in cond.values if v.kind != cond.kind), None)
        if odd is not None:
            raise WhereError(
                "the values of 'in' must all be numbers, all dates, all true/false or all text",
                odd.position,
            )
        if cond.kind == "DATE":
            raise WhereError("'in' is not supported for dates; use = with 'or'", cond.position)
        return f"{cond.field}:in:" + "|".join(_check_value(v) for v in cond.values)
    (value,) = cond.values
    ops = EXTO_OPS[value.kind]
    if cond.op not in ops:
        supported = ", ".join(
            [*ops, "in", "is null"] if value.kind != "DATE" else [*ops, "is null"]
        )
        hint = " (quote a value to compare it as text)" if value.kind != "STRING" else ""
        raise WhereError(
            f"'{cond.op}' is not supported for {TYPE_NAMES[value.kind]}; "
            f"use one of {supported}{hint}",
            cond.position,
        )
    return f"{cond.field}:{ops[cond.op]}:{_check_value(value)}"


def _emit(node: Node) -> str:
    if isinstance(node, Condition):
        return _condition(node)
    if isinstance(node, And):
        return ":and:".join(f"({_emit(p)})" if isinstance(p, Or) else _emit(p) for p in node.parts)
    # Whether Exto binds AND tighter or reads left to right is undocumented (§10.4): emit OR
    # groups so that both readings agree — one AND group leads, more get parentheses.
    groups = [p for p in node.parts if isinstance(p, And)]
    others = [p for p in node.parts if not isinstance(p, And)]
    if len(groups) <= 1:
        return ":or:".join(_emit(p) for p in [*groups, *others])
    return ":or:".join(f"({_emit(p)})" if isinstance(p, And) else _emit(p) for p in node.parts)


def has_date(node: Node) -> bool:
    if isinstance(node, Condition):
        return node.kind == "DATE"
    return any(has_date(p) for p in node.parts)


@dataclass(frozen=True)
class Compiled:
    filter: str
    needs_tz: bool


def compile_where(expressions: list[str], raw_filter: str | None = None) -> Compiled:
    """Parse and AND together every --where (and a raw --filter); WhereError names which."""
    nodes: list[Node] = []
    for index, text in enumerate(expressions):
        try:
            node = parse(text)
            _emit(node)  # type checks happen while emitting
        except WhereError as exc:
            exc.expression_index = index  # type: ignore[attr-defined]
            raise
        nodes.append(node)
    parts = []
    if raw_filter:
        parts.append(f"({raw_filter})" if ":or:" in raw_filter and nodes else raw_filter)
    if nodes:
        combined: Node = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
        emitted = _emit(combined)
        parts.append(f"({emitted})" if isinstance(combined, Or) and raw_filter else emitted)
    return Compiled(":and:".join(parts), any(has_date(n) for n in nodes))
