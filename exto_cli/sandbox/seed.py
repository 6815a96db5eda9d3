"""Sandbox data: the demo tenant, schema files (TOML or JSON), and generated records."""

from __future__ import annotations

import datetime as dt
import json
import random
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from exto_cli.sandbox.store import Collection, Store

PROJECTS = {"Vx6-j2Z": "Riverside Tower", "p6iD1Wb": "Harbour Bridge Retrofit"}
FIELD_TYPES = (
    "text",
    "number",
    "boolean",
    "date",
    "datetime",
    "currency",
    "select",
    "multiselect",
    "email",
    "json",
)


class SchemaError(ValueError):
    pass


def _user(
    name: str,
    first: str,
    last: str,
    role: str,
    status: int,
    groups: list[str],
    projects: dict[str, list[str]],
) -> dict[str, Any]:
    return {
        "user": {
            "userName": name,
            "firstName": first,
            "lastName": last,
            "fullName": f"{first} {last}",
            "email": name,
            "applicationRole": role,
            "loginMethod": "NATIVE",
            "company": "Exto Demo",
            "status": status,
            "employeeId": None,
            "verifyEmailOTP": False,
            "autoRenewMSAccessToken": False,
            "autoRenewGoogleAccessToken": False,
        },
        "groups": groups,
        "projects": [{"projectID": p, "groups": g, "spaces": []} for p, g in projects.items()],
    }


DEMO_USERS = [
    _user(
        "admin@exto.local",
        "Asha",
        "Admin",
        "PME",
        1,
        ["Administrators"],
        {"Vx6-j2Z": ["Site Team"], "p6iD1Wb": ["Site Team"]},
    ),
    _user("johndoe@exto360.com", "John", "Doe", "USER", 1, [], {"Vx6-j2Z": ["Inspectors"]}),
    _user(
        "jasonsmith@exto360.com",
        "Jason",
        "Smith",
        "USER",
        1,
        ["Group 3"],
        {"Vx6-j2Z": ["GG3"], "p6iD1Wb": ["Inspectors"]},
    ),
    _user("lite@exto.local", "Lee", "Lite", "LITE_USER", 1, [], {"p6iD1Wb": []}),
    _user("former@exto.local", "Fay", "Former", "USER", 0, [], {"Vx6-j2Z": []}),
]
DEMO_GROUPS = [
    ("64b0c0ffee0000000000g001", "Administrators", None),
    ("64b0c0ffee0000000000g002", "Group 3", None),
    ("64b0c0ffee0000000000g003", "Site Team", "Vx6-j2Z"),
    ("64b0c0ffee0000000000g004", "Inspectors", "Vx6-j2Z"),
    ("64b0c0ffee0000000000g005", "GG3", "Vx6-j2Z"),
    ("64b0c0ffee0000000000g006", "Site Team", "p6iD1Wb"),
    ("64b0c0ffee0000000000g007", "Inspectors", "p6iD1Wb"),
]
CITIES = [
    "Chennai",
    "Pune",
    "Austin",
    "Denver",
    "Kochi",
    "Leeds",
    "Perth",
    "Osaka",
    "Lyon",
    "Quito",
]


def demo_collections() -> list[Collection]:
    return [
        Collection(
            "LOCATION",
            "master",
            {
                "code": "text",
                "name": "text",
                "city": "text",
                "area_sqm": "number",
                "active": "boolean",
                "opened_on": "date",
            },
            ["code"],
        ),
        Collection(
            "VENDOR",
            "master",
            {
                "vendor_code": "text",
                "name": "text",
                "email": "email",
                "rating": "number",
                "categories": "multiselect",
                "credit_limit": "currency",
            },
            ["vendor_code"],
        ),
        Collection(
            "ITEM_MASTER",
            "master",
            {
                "item_code": "text",
                "description": "text",
                "unit_price": "currency",
                "weight_kg": "number",
                "in_stock": "boolean",
                "added_on": "date",
            },
            ["item_code"],
        ),
        Collection(
            "INSPECTION",
            "module",
            {
                "title": "text",
                "location_code": "text",
                "inspection_date": "date",
                "score": "number",
                "result": "select",
                "inspector": "email",
                "findings": "multiselect",
            },
            [],
            "INS",
        ),
    ]


def _day(rng: random.Random, start: str = "2024-01-01", span_days: int = 700) -> str:
    return (dt.date.fromisoformat(start) + dt.timedelta(days=rng.randrange(span_days))).isoformat()


def _locations() -> Iterator[dict[str, Any]]:
    rng = random.Random(1)
    for i, city in enumerate(CITIES * 3, start=1):
        yield {
            "code": f"LOC-{i:03d}",
            "name": f"{city} site {i}",
            "city": city,
            "area_sqm": rng.randrange(200, 20000),
            "active": i % 7 != 0,
            "opened_on": _day(rng),
        }


def _vendors() -> Iterator[dict[str, Any]]:
    rng = random.Random(2)
    kinds = ["Concrete", "Steel", "Electrical", "Plumbing", "HVAC", "Glazing"]
    for i in range(1, 41):
        yield {
            "vendor_code": f"V{i:04d}",
            "name": f"Vendor {i} Pvt Ltd",
            "email": f"sales{i}@vendor{i}.example",
            "rating": rng.randrange(1, 6),
            "categories": sorted(rng.sample(kinds, rng.randrange(1, 3))),
            "credit_limit": _currency(rng.randrange(10, 500) * 1000, "USD"),
        }


def _currency(value: float, code: str) -> dict[str, Any]:
    return {"label": f"{value:.3f} {code}", "value": value, "currency": code}


def items(count: int, seed: int = 3, prefix: str = "ITM") -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    words = ["Rebar", "Cement", "Cable", "Pipe", "Valve", "Panel", "Bolt", "Beam", "Tile", "Duct"]
    for i in range(1, count + 1):
        yield {
            "item_code": f"{prefix}-{i:06d}",
            "description": f"{rng.choice(words)} {rng.choice(['A', 'B', 'C'])}{i % 97}",
            "unit_price": _currency(round(rng.uniform(0.5, 900), 2), "USD"),
            "weight_kg": round(rng.uniform(0.1, 250), 2),
            "in_stock": rng.random() > 0.2,
            "added_on": _day(rng),
        }


def generated(count: int, start: int = 1) -> Iterator[dict[str, Any]]:
    """Rows for `--records MASTER=N`: a unique `code` and a few typed fields."""
    rng = random.Random(start)
    for i in range(start, start + count):
        yield {
            "code": f"R{i:07d}",
            "name": f"Record {i}",
            "city": CITIES[i % len(CITIES)],
            "amount": rng.randrange(0, 100000),
            "active": i % 3 != 0,
            "day": _day(rng),
        }


GENERATED_FIELDS = {
    "code": "text",
    "name": "text",
    "city": "text",
    "amount": "number",
    "active": "boolean",
    "day": "date",
}


def _inspections() -> Iterator[dict[str, Any]]:
    rng = random.Random(4)
    results = ["Pass", "Fail", "Conditional"]
    statuses = ["Open", "Submitted", "Approved", "Rejected"]
    inspectors = ["johndoe@exto360.com", "jasonsmith@exto360.com", "admin@exto.local"]
    for i in range(1, 121):
        yield {
            "title": f"Inspection {i}",
            "location_code": f"LOC-{rng.randrange(1, 31):03d}",
            "inspection_date": _day(rng, "2025-01-01", 500),
            "score": rng.randrange(40, 101),
            "result": rng.choice(results),
            "inspector": rng.choice(inspectors),
            "findings": sorted(rng.sample(["Cracks", "Rust", "Leak", "Wiring", "None"], 2)),
            "status": rng.choice(statuses),
        }


def load_demo(store: Store, item_count: int = 3000) -> None:
    for project, name in PROJECTS.items():
        store.put_project(project, name)
    for entry in DEMO_USERS:
        store.put_user(entry)
    for group in DEMO_GROUPS:
        store.put_group(*group)
    projects = list(PROJECTS)
    sources = {
        "LOCATION": _locations(),
        "VENDOR": _vendors(),
        "ITEM_MASTER": items(item_count),
        "INSPECTION": _inspections(),
    }
    for coll in demo_collections():
        store.define(coll)
        store.bulk_insert(coll, sources[coll.name], lambda i: projects[i % 2])


def load_schema(store: Store, path: Path) -> None:
    """Define masters, modules, users, groups and projects from a TOML or JSON file."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except OSError as exc:
        raise SchemaError(f"{path}: {exc.strerror}") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"{path}: {exc}") from None
    for kind, key in (("master", "masters"), ("module", "modules")):
        for name, spec in dict(data.get(key, {})).items():
            store.define(_collection(path, kind, name, spec))
    for project in data.get("projects", []):
        store.put_project(str(project["id"]), str(project.get("name", project["id"])))
    for index, group in enumerate(data.get("groups", []), start=1):
        store.put_group(
            str(group.get("id", f"group-{index}")), str(group["name"]), group.get("project")
        )
    for user in data.get("users", []):
        name = str(user["username"]).lower()
        projects: dict[str, list[str]] = {str(p): [] for p in user.get("projects", [])}
        store.put_user(
            _user(
                name,
                str(user.get("first_name", name.split("@")[0])),
                str(user.get("last_name", "")),
                str(user.get("role", "USER")),
                int(user.get("status", 1)),
                list(user.get("groups", [])),
                projects,
            )
        )


def _collection(path: Path, kind: str, name: str, spec: Mapping[str, Any]) -> Collection:
    fields = {str(k): str(v) for k, v in dict(spec.get("fields", {})).items()}
    for field_name, field_type in fields.items():
        if field_type not in FIELD_TYPES:
            raise SchemaError(
                f"{path}: {name}.{field_name}: unknown type {field_type!r}; "
                f"expected one of {', '.join(FIELD_TYPES)}"
            )
    uniques = [str(u) for u in spec.get("unique", [])]
    for unique in uniques:
        if unique not in fields:
            raise SchemaError(f"{path}: {name}: unique field {unique!r} is not among its fields")
    prefix = str(spec.get("prefix", name[:3])) if kind == "module" else None
    return Collection(name.upper(), kind, fields, uniques, prefix)


def add_generated(store: Store, master: str, count: int) -> None:
    """`--records MASTER=N`: N more generated rows, creating the master when it is missing."""
    name = master.upper()
    coll = store.collection(name, "master")
    if coll is None:
        coll = Collection(name, "master", dict(GENERATED_FIELDS), ["code"])
        store.define(coll)
    start = (
        int(
            store.conn.execute(
                "SELECT COUNT(*) FROM records WHERE collection = ?", (name,)
            ).fetchone()[0]
        )
        + 1
    )
    store.bulk_insert(coll, generated(count, start), "Vx6-j2Z")
