"""The work behind `exto sandbox ...`, kept out of the thin command module."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from exto_cli.errors import UsageError
from exto_cli.output import Printer


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    db: Path | None = None
    seed: str = "demo"
    schema: Path | None = None
    records: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    rate: int = 3
    tls: tuple[Path, Path] | None = None
    retry_after: bool = False
    fail_every: int = 0
    drop_after_commit: bool = False


def _check_seed(seed: str) -> None:
    if seed not in ("demo", "empty"):
        raise UsageError(f"--seed: expected demo or empty, got {seed!r}")


def parse_records(items: list[str]) -> list[tuple[str, int]]:
    parsed = []
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not name.strip() or not count.strip().isdigit():
            raise UsageError(f"--records: expected MASTER=N, got {item!r}")
        parsed.append((name.strip(), int(count)))
    return parsed


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(options: ServeOptions, printer: Printer, *, stdout: IO[str]) -> None:
    from exto_cli.sandbox import seed as seeding
    from exto_cli.sandbox import serve as serving
    from exto_cli.sandbox.adapter import open_app
    from exto_cli.sandbox.app import Faults

    _check_seed(options.seed)
    records = parse_records(options.records)
    faults = Faults(
        latency_s=options.latency_s,
        rate_per_second=options.rate,
        retry_after=options.retry_after,
        fail_every=options.fail_every,
        drop_after_commit=options.drop_after_commit,
    )
    app = open_app(options.db, seed=options.seed, faults=faults, log=printer.log)
    try:
        if options.schema is not None:
            seeding.load_schema(app.store, options.schema)
        for master, count in records:
            seeding.add_generated(app.store, master, count)
        tls = (str(options.tls[0]), str(options.tls[1])) if options.tls else None
        try:
            server = serving.make(app, options.host, options.port, tls)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {options.host}:{options.port}: {exc.strerror}"
            ) from None
    except seeding.SchemaError as exc:
        app.store.close()
        raise UsageError(str(exc)) from None
    if not _is_loopback(options.host):
        printer.warn(f"listening on {options.host}: other machines can reach this sandbox")
    url = serving.base_url(server)
    stdout.write(f"{url}\n{app.mint_token()}\n")
    stdout.flush()
    printer.note(
        f"sandbox serving {options.db or 'a temporary database'} at {url}; Ctrl-C stops it"
    )
    serving.serve_forever(server, on_stop=app.store.close)


def mint(db: Path, lifetime_s: float) -> str:
    from exto_cli.sandbox.adapter import open_app

    app = open_app(db)
    try:
        return app.mint_token(lifetime_s)
    finally:
        app.store.close()


def rotate(db: Path) -> None:
    from exto_cli.sandbox.adapter import open_app

    app = open_app(db)
    try:
        app.rotate_key()
    finally:
        app.store.close()


def reset(db: Path, seed: str) -> None:
    from exto_cli.sandbox.seed import load_demo
    from exto_cli.sandbox.store import Store

    _check_seed(seed)
    store = Store(db)
    try:
        store.wipe()
        if seed == "demo":
            load_demo(store)
        store.set_meta("seeded", seed)
    finally:
        store.close()
