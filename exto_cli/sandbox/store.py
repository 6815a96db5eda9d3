"""The sandbox's SQLite store: collections (masters and modules), records, users, groups."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TENANT_ID = "cwWdTZK"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
_REF_SPACE = 64**7
_REF_MULTIPLIER = 2_654_435_761  # odd, so seq -> refId is a bijection on 64**7

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, fields TEXT NOT NULL, uniques TEXT NOT NULL,
    prefix TEXT, next_number INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
    ref_id TEXT NOT NULL UNIQUE, record_number TEXT, tenant_id TEXT NOT NULL, project_id TEXT,
    status TEXT, created_by TEXT, created_at TEXT, updated_by TEXT, updated_at TEXT,
    custom TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_by_collection ON records (collection, seq);
CREATE INDEX IF NOT EXISTS records_by_number ON records (collection, record_number);
CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT);
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, name TEXT NOT NULL);
"""


INSERT_RECORD = (
    "INSERT INTO records (seq, collection, id, ref_id, record_number, tenant_id, project_id,"
    " status, created_by, created_at, updated_by, updated_at, custom)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _record_row(
    seq: int,
    collection: str,
    record_id: str,
    number: str | None,
    project: str | None,
    status: str | None,
    user: str,
    stamp: str,
    custom: Mapping[str, Any],
) -> tuple[Any, ...]:
    return (
        seq,
        collection,
        record_id,
        ref_id_for(seq),
        number,
        TENANT_ID,
        project,
        status,
        user,
        stamp,
        user,
        stamp,
        json.dumps(custom, separators=(",", ":")),
    )


@dataclass(frozen=True)
class Collection:
    name: str
    kind: str  # "master" | "module"
    fields: dict[str, str]
    uniques: list[str]
    prefix: str | None = None


@dataclass
class WriteResult:
    inserted_ids: list[str] = field(default_factory=list)
    updated: int = 0


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{dt.datetime.now(dt.UTC).microsecond // 1000:03d}Z"
    )


def ref_id_for(seq: int) -> str:
    n = (seq * _REF_MULTIPLIER) % _REF_SPACE
    chars = []
    for _ in range(7):
        n, digit = divmod(n, 64)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def object_id_for(seq: int, created: float) -> str:
    return f"{int(created) & 0xFFFFFFFF:08x}{seq & 0xFFFFFFFFFFFFFFFF:016x}"


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(value: Any, tz: str | None) -> str | None:
    """The calendar date of a stored value in zone ``tz`` (SQL function exto_local_date)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    if len(value) == 10:
        return value if value[4] == "-" and value[7] == "-" else None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(_zone(tz or "UTC")).date().isoformat()
    except (ZoneInfoNotFoundError, ValueError):
        return None


class Store:
    """Thread-safe access to one SQLite database (a file, or shared memory with path None)."""

    def __init__(self, path: Path | None) -> None:
        # "In memory" is a temporary file: SQLite's shared-cache memory databases lock whole
        # tables under concurrent readers and writers, which a threaded server would hit.
        self._tempdir = None if path is not None else tempfile.mkdtemp(prefix="exto-sandbox-")
        self.path = path if path is not None else Path(str(self._tempdir)) / "sandbox.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.uri = f"file:{self.path}"
        self._local = threading.local()
        self.write_lock = threading.RLock()
        self._keepalive = self.connect()
        with self.write_lock:
            self._keepalive.executescript(SCHEMA)
        self._collections: dict[str, Collection] = {}

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.uri, uri=True, check_same_thread=False, timeout=30, isolation_level=None
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.create_function("exto_local_date", 2, local_date, deterministic=True)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.write_lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._keepalive.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    # -- meta -------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- collections ------------------------------------------------------------------
    def define(self, coll: Collection) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO collections (name, kind, fields, uniques, prefix, next_number)"
                " VALUES (?, ?, ?, ?, ?, COALESCE((SELECT next_number FROM collections WHERE name = ?), 1))",
                (
                    coll.name,
                    coll.kind,
                    json.dumps(coll.fields),
                    json.dumps(coll.uniques),
                    coll.prefix,
                    coll.name,
                ),
            )
            for name in indexed_fields(coll):
                # Upserts look records up by unique fields and filters compare scalar fields:
                # index exactly the expression that the SQL uses.
                index = "ix_" + hashlib.sha1(f"{coll.name}\0{name}".encode()).hexdigest()[:16]
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {index} ON records "
                    f"(collection, json_extract(custom, '$.\"{name}\"'))"
                )
        self._collections.pop(coll.name, None)

    def collection(self, name: str, kind: str) -> Collection | None:
        key = f"{kind}:{name}"
        if key not in self._collections:
            row = self.conn.execute(
                "SELECT * FROM collections WHERE name = ? AND kind = ?", (name, kind)
            ).fetchone()
            if row is None:
                return None
            self._collections[key] = Collection(
                row["name"],
                row["kind"],
                json.loads(row["fields"]),
                json.loads(row["uniques"]),
                row["prefix"],
            )
        return self._collections[key]

    def collections(self) -> list[Collection]:
        names = self.conn.execute("SELECT name, kind FROM collections ORDER BY name").fetchall()
        found = (self.collection(r["name"], r["kind"]) for r in names)
        return [c for c in found if c is not None]

    # -- records ----------------------------------------------------------------------
    def query(
        self,
        coll: Collection,
        *,
        project: str | None,
        where: str | None,
        params: Sequence[Any],
        status: str | None,
        order: str | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[sqlite3.Row]]:
        clauses, args = ["collection = ?"], [coll.name]
        if project:
            clauses.append("project_id = ?")
            args.append(project)
        if status:
            clauses.append("status = ?")
            args.append(status)
        if where:
            clauses.append(where)
            args.extend(params)
        sql_where = " AND ".join(clauses)
        total = self.conn.execute(
            f"SELECT COUNT(*) FROM records WHERE {sql_where}", args
        ).fetchone()[0]
        # Two steps: order and cut only the row ids, then load the page's rows. Sorting whole
        # rows (custom JSON included) after an index range scan is what makes pages slow.
        seqs = [
            r[0]
            for r in self.conn.execute(
                f"SELECT seq FROM records WHERE {sql_where} ORDER BY {order or 'seq'} "
                "LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
        ]
        if not seqs:
            return int(total), []
        marks = ", ".join("?" for _ in seqs)
        loaded = {
            r["seq"]: r
            for r in self.conn.execute(f"SELECT * FROM records WHERE seq IN ({marks})", seqs)
        }
        return int(total), [loaded[s] for s in seqs]

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM records").fetchone()[0])

    def _find_unique(
        self,
        conn: sqlite3.Connection,
        coll: Collection,
        record: Mapping[str, Any],
        project: str | None,
    ) -> sqlite3.Row | None:
        for unique in coll.uniques:
            value = record.get(unique)
            if value is None or isinstance(value, (dict, list)):
                continue
            sql = (
                f"SELECT * FROM records WHERE collection = ? AND "
                f"json_extract(custom, '$.\"{unique}\"') = ?"
            )
            args: list[Any] = [coll.name, value]
            if project:
                sql += " AND project_id = ?"
                args.append(project)
            row: sqlite3.Row | None = conn.execute(sql + " LIMIT 1", args).fetchone()
            if row is not None:
                return row
        return None

    def upsert(
        self,
        coll: Collection,
        records: Sequence[Mapping[str, Any]],
        *,
        project: str | None,
        user: str,
    ) -> WriteResult:
        result = WriteResult()
        stamp = now_iso()
        with self.transaction() as conn:
            seq = self._next_seq(conn)
            for record in records:
                existing = self._find_unique(conn, coll, record, project)
                if existing is not None:
                    self._update(conn, existing, record, user, stamp)
                    result.updated += 1
                    continue
                result.inserted_ids.append(
                    self._insert(conn, coll, seq, record, project, user, stamp)
                )
                seq += 1
        return result

    def _insert(
        self,
        conn: sqlite3.Connection,
        coll: Collection,
        seq: int,
        record: Mapping[str, Any],
        project: str | None,
        user: str,
        stamp: str,
    ) -> str:
        record_id = object_id_for(seq, dt.datetime.now(dt.UTC).timestamp())
        number = None
        status = None
        if coll.kind == "module":
            row = conn.execute(
                "UPDATE collections SET next_number = next_number + 1 WHERE name = ? "
                "RETURNING next_number - 1",
                (coll.name,),
            ).fetchone()
            number = f"{coll.prefix or coll.name[:3]}-{int(row[0])}"
            status = str(record.get("status") or "Open")
        custom = {k: v for k, v in record.items() if not (coll.kind == "module" and k == "status")}
        row = _record_row(seq, coll.name, record_id, number, project, status, user, stamp, custom)
        conn.execute(INSERT_RECORD, row)
        return record_id

    def _update(
        self,
        conn: sqlite3.Connection,
        existing: sqlite3.Row,
        changes: Mapping[str, Any],
        user: str,
        stamp: str,
    ) -> None:
        custom = json.loads(existing["custom"])
        status = existing["status"]
        for key, value in changes.items():
            if key in ("refId", "recordNumber", "_id", "id"):
                continue
            if key == "status" and existing["record_number"] is not None:
                status = value
                continue
            custom[key] = value
        conn.execute(
            "UPDATE records SET custom = ?, status = ?, updated_by = ?, updated_at = ? WHERE seq = ?",
            (json.dumps(custom, separators=(",", ":")), status, user, stamp, existing["seq"]),
        )

    def patch(
        self,
        coll: Collection,
        records: Sequence[Mapping[str, Any]],
        *,
        project: str | None,
        user: str,
    ) -> tuple[int, list[int]]:
        """Update by refId / recordNumber / unique field; never insert. (updated, missing idx)."""
        updated, missing = 0, []
        stamp = now_iso()
        with self.transaction() as conn:
            for index, record in enumerate(records):
                existing = self._find_by_reference(conn, coll, record, project)
                if existing is None:
                    existing = self._find_unique(conn, coll, record, project)
                if existing is None:
                    missing.append(index)
                    continue
                self._update(conn, existing, record, user, stamp)
                updated += 1
        return updated, missing

    def _find_by_reference(
        self,
        conn: sqlite3.Connection,
        coll: Collection,
        record: Mapping[str, Any],
        project: str | None,
    ) -> sqlite3.Row | None:
        for key, column in (
            ("refId", "ref_id"),
            ("recordNumber", "record_number"),
            ("recordNumber", "ref_id"),
        ):
            value = record.get(key)
            if isinstance(value, str) and value:
                sql = f"SELECT * FROM records WHERE collection = ? AND {column} = ?"
                args: list[Any] = [coll.name, value]
                if project:
                    sql += " AND project_id = ?"
                    args.append(project)
                row: sqlite3.Row | None = conn.execute(sql, args).fetchone()
                if row is not None:
                    return row
        return None

    def delete(
        self, coll: Collection, references: Sequence[Mapping[str, Any]], *, project: str | None
    ) -> int:
        deleted = 0
        with self.transaction() as conn:
            for reference in references:
                row = self._find_by_reference(conn, coll, reference, project)
                if row is not None:
                    conn.execute("DELETE FROM records WHERE seq = ?", (row["seq"],))
                    deleted += 1
        return deleted

    def bulk_insert(
        self,
        coll: Collection,
        records: Iterable[Mapping[str, Any]],
        project_of: Any = None,
        user: str = "seed@exto.local",
    ) -> int:
        """Fast path for seeding: no unique lookups, one transaction, executemany."""
        stamp = now_iso()
        created = dt.datetime.now(dt.UTC).timestamp()
        count = 0
        with self.transaction() as conn:
            seq = self._next_seq(conn)
            number = int(
                conn.execute(
                    "SELECT next_number FROM collections WHERE name = ?", (coll.name,)
                ).fetchone()[0]
            )

            def rows() -> Iterator[tuple[Any, ...]]:
                nonlocal seq, number, count
                for record in records:
                    custom = dict(record)
                    status = custom.pop("status", "Open") if coll.kind == "module" else None
                    rn = f"{coll.prefix}-{number}" if coll.kind == "module" else None
                    project = project_of(count) if callable(project_of) else project_of
                    record_id = object_id_for(seq, created)
                    yield _record_row(
                        seq, coll.name, record_id, rn, project, status, user, stamp, custom
                    )
                    seq += 1
                    number += 1 if coll.kind == "module" else 0
                    count += 1

            conn.executemany(
                INSERT_RECORD,
                rows(),
            )
            conn.execute(
                "UPDATE collections SET next_number = ? WHERE name = ?", (number, coll.name)
            )
        with self.write_lock:
            self.conn.execute("PRAGMA optimize")  # fresh statistics after a big load
        return count

    # -- users, groups, projects ------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT data FROM users ORDER BY username").fetchall()
        return [json.loads(r["data"]) for r in rows]

    def user(self, username: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT data FROM users WHERE username = ?", (username.lower(),)
        ).fetchone()
        return None if row is None else dict(json.loads(row["data"]))

    def put_user(self, entry: Mapping[str, Any]) -> None:
        username = str(entry["user"]["userName"]).lower()
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO users (username, data) VALUES (?, ?)",
                (username, json.dumps(entry)),
            )

    def groups(self, *, project_only: bool, project: str | None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM groups"
        clauses = []
        args: list[Any] = []
        if project_only:
            clauses.append("project_id IS NOT NULL")
        if project:
            clauses.append("(project_id IS NULL OR project_id = ?)")
            args.append(project)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(sql + " ORDER BY project_id IS NOT NULL, name", args).fetchall()
        return [
            {
                "_id": r["id"],
                "name": r["name"],
                "projectID": r["project_id"],
                "type": "PROJECT" if r["project_id"] else "TENANT",
            }
            for r in rows
        ]

    def put_group(self, group_id: str, name: str, project: str | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO groups (id, name, project_id) VALUES (?, ?, ?)",
                (group_id, name, project),
            )

    def project_exists(self, project: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM projects WHERE id = ?", (project,)).fetchone()
            is not None
        )

    def put_project(self, project: str, name: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO projects (id, name) VALUES (?, ?)", (project, name)
            )

    def wipe(self) -> None:
        with self.transaction() as conn:
            for table in ("records", "collections", "users", "groups", "projects"):
                conn.execute(f"DELETE FROM {table}")
        self._collections.clear()


SCALAR_TYPES = ("text", "number", "boolean", "date", "select", "email", "datetime")


def indexed_fields(coll: Collection) -> list[str]:
    scalar = [n for n, t in coll.fields.items() if t in SCALAR_TYPES]
    return list(dict.fromkeys([*coll.uniques, *scalar]))


def record_json(row: sqlite3.Row) -> dict[str, Any]:
    """A record as Exto returns it (docs/exto-api.md §8.1)."""
    out: dict[str, Any] = {
        "_id": row["id"],
        "id": row["id"],
        "customFields": json.loads(row["custom"]),
        "parentID": None,
        "slug": row["ref_id"],
        "refId": row["ref_id"],
        "tenantID": row["tenant_id"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedBy": row["updated_by"],
        "updatedAt": row["updated_at"],
        "isDeleted": False,
    }
    if row["project_id"] is not None:
        out["projectID"] = row["project_id"]
    if row["record_number"] is not None:
        out["recordNumber"] = row["record_number"]
        out["status"] = row["status"]
    return out
