"""`exto update` against the sandbox: validation first, batches, journal, failures, resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, Sandbox, run_cli, serve_sandbox
from routeserver import RouteServer

from exto_cli.sandbox.adapter import open_app
from exto_cli.sandbox.app import Faults, SandboxApp
from exto_cli.sandbox.seed import add_generated
from exto_cli.sandbox.serve import base_url, start_background

HEADER = ["code", "name", "city", "amount", "active", "day"]


def rows(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "code": f"P{i:06d}",
            "name": f"Part {i}",
            "city": ["Pune", "Leeds"][i % 2],
            "amount": i * 3,
            "active": i % 3 == 0,
            "day": f"2025-0{1 + i % 9}-1{i % 10}",
        }
        for i in range(start, start + n)
    ]


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER, lineterminator="\r\n")
        writer.writeheader()
        for r in records:
            writer.writerow({**r, "active": str(r["active"]).lower()})
    return path


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Sandbox, SandboxApp]]:
    """A served sandbox with an empty master PARTS (unique `code`)."""
    app = open_app(tmp_path / "u.sqlite", seed="demo", faults=Faults(rate_per_second=0))
    add_generated(app.store, "PARTS", 0)
    server, _thread = start_background(app)
    yield Sandbox(base_url(server), app.mint_token(), app), app
    server.shutdown()
    server.server_close()
    app.store.close()


def update(
    sb: Sandbox, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return run_cli(
        "--base-url",
        sb.url,
        "update",
        *args,
        input=input,
        env={"EXTO_TOKEN": sb.token, **(env or {})},
    )


def stored(app: SandboxApp, name: str = "PARTS") -> list[dict[str, Any]]:
    coll = app.store.collection(name, "master")
    assert coll is not None
    _, found = app.store.query(
        coll,
        project=None,
        where=None,
        params=[],
        status=None,
        order=None,
        limit=1_000_000,
        offset=0,
    )
    return [json.loads(r["custom"]) for r in found]


def journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_3000_row_csv_load_then_get_equals_the_input(
    parts: tuple[Sandbox, SandboxApp], tmp_path: Path
) -> None:
    sb, app = parts
    source = write_csv(tmp_path / "parts.csv", rows(3000))
    result = update(sb, "master", "PARTS", str(source), "--key", "code", "-o", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["inserted"], summary["updated"], summary["batches"]) == (3000, 0, "3 sent of 3")
    exported = run_cli(
        "--base-url",
        sb.url,
        "get",
        "master",
        "PARTS",
        "--all",
        "-o",
        "csv",
        "--fields",
        ",".join(HEADER),
        env={"EXTO_TOKEN": sb.token},
    )
    # Keyed batches go out concurrently, so Exto may store them in any batch order.
    assert sorted(exported.stdout.splitlines()) == sorted(source.read_text().splitlines())
    again = update(sb, "master", "PARTS", str(source), "--key", "code", "-o", "json")
    assert json.loads(again.stdout)["inserted"] == 0 and json.loads(again.stdout)["updated"] == 3000
    assert len(stored(app)) == 3000


def test_export_edit_reload_changes_only_the_edited_values(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {"EXTO_TOKEN": sandbox.token}
    exported = run_cli(
        "--base-url", sandbox.url, "get", "master", "VENDOR", "--all", "-o", "csv", env=env
    ).stdout
    edited = tmp_path / "vendors.csv"
    edited.write_text(exported.replace("Vendor 7 Pvt Ltd", "Vendor Seven Ltd"), encoding="utf-8")
    before = json.loads(
        run_cli(
            "--base-url", sandbox.url, "get", "master", "VENDOR", "--all", "-o", "json", env=env
        ).stdout
    )
    result = run_cli(
        "--base-url",
        sandbox.url,
        "update",
        "master",
        "VENDOR",
        str(edited),
        "--key",
        "vendor_code",
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    after = json.loads(
        run_cli(
            "--base-url", sandbox.url, "get", "master", "VENDOR", "--all", "-o", "json", env=env
        ).stdout
    )
    changed = [
        (b["customFields"], a["customFields"])
        for b, a in zip(before, after, strict=True)
        if b["customFields"] != a["customFields"]
    ]
    assert len(changed) == 1 and changed[0][1]["name"] == "Vendor Seven Ltd"
    assert (
        changed[0][1]["credit_limit"] == changed[0][0]["credit_limit"]
    )  # currency objects survive


def test_a_bad_row_stops_everything_before_any_request(server: RouteServer, tmp_path: Path) -> None:
    records = rows(10_000)
    source = write_csv(tmp_path / "big.csv", records)
    lines = source.read_bytes().decode().split("\r\n")
    lines[4321] = lines[4321] + ",extra"  # data row 4,321 of 10,000: line 4,322 of the file
    source.write_bytes("\r\n".join(lines).encode())
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "update",
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2
    assert f"{source}:4322: expected 6 fields, found 7" in result.stderr
    assert "nothing was sent" in result.stderr and server.seen == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no records"),
        ("code,name\r\nA,x\r\nA,y\r\n", 'the key code = "A" appears again (also on line 2)'),
        ("code,name\r\n,x\r\n", "in.csv:2: the key field 'code' has no value"),
        ('[{"code": "A"}, 3]', "expected an object, found int"),
        ('[{"code": "A"},\n {"code": }]', ":2:11: not valid JSON"),
    ],
)
def test_input_problems_are_listed_with_positions(
    server: RouteServer, tmp_path: Path, content: str, message: str
) -> None:
    suffix = ".json" if content.startswith("[") else ".csv"
    source = tmp_path / f"in{suffix}"
    source.write_text(content)
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "update",
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert server.seen == []


def test_on_duplicate_last_keeps_the_last_record(
    parts: tuple[Sandbox, SandboxApp], tmp_path: Path
) -> None:
    sb, app = parts
    source = tmp_path / "dups.jsonl"
    source.write_text(
        '{"code": "A", "name": "first"}\n{"code": "B"}\n{"code": "A", "name": "last"}\n'
    )
    result = update(sb, "master", "PARTS", str(source), "--key", "code", "--on-duplicate", "last")
    assert result.exit_code == 0, result.stderr
    assert sorted((r["code"], r.get("name")) for r in stored(app)) == [("A", "last"), ("B", None)]


def test_csv_typing_and_overrides(parts: tuple[Sandbox, SandboxApp], tmp_path: Path) -> None:
    sb, app = parts
    source = tmp_path / "typed.csv"
    source.write_text(
        "code,name,amount,active,day,extra,tags\r\n"
        '007,12,5,true,,"{""value"":12,""currency"":""USD""}","[""A"",""B""]"\r\n'
    )
    assert (
        update(sb, "master", "PARTS", str(source), "--type", "name=text", "--key", "code").exit_code
        == 0
    )
    (record,) = stored(app)
    assert record == {
        "code": "007",
        "name": "12",
        "amount": 5,
        "active": True,
        "extra": {"value": 12, "currency": "USD"},
        "tags": ["A", "B"],
    }
    source.write_text("code,day\r\n007,\r\n")
    update(sb, "master", "PARTS", str(source), "--empty", "null", "--key", "code")
    assert stored(app)[0]["day"] is None


def test_stdin_and_set(parts: tuple[Sandbox, SandboxApp]) -> None:
    sb, app = parts
    assert update(sb, "master", "PARTS", "-", input='[{"code": "S1", "amount": 1}]').exit_code == 0
    assert update(sb, "master", "PARTS", "--set", "code=S2", "--set", "amount:=2").exit_code == 0
    assert sorted((r["code"], r["amount"]) for r in stored(app)) == [("S1", 1), ("S2", 2)]


def test_records_exported_as_json_load_back(
    parts: tuple[Sandbox, SandboxApp], sandbox: Sandbox
) -> None:
    sb, app = parts
    exported = run_cli(
        "--base-url",
        sandbox.url,
        "get",
        "master",
        "LOCATION",
        "--all",
        "-o",
        "jsonl",
        env={"EXTO_TOKEN": sandbox.token},
    ).stdout
    result = update(sb, "master", "PARTS", "-", "--key", "code", input=exported)
    assert result.exit_code == 0, result.stderr
    assert len(stored(app)) == 30 and "refId" not in stored(app)[0]


def test_a_rejected_batch_exits_6_and_only_its_rows_go_to_failed_rows(
    parts: tuple[Sandbox, SandboxApp], tmp_path: Path
) -> None:
    sb, app = parts
    records = rows(25)
    records[12]["amount"] = "lots"  # a number field: the server rejects the whole batch
    source = write_csv(tmp_path / "in.csv", records)
    failed, results = tmp_path / "failed.csv", tmp_path / "results.jsonl"
    result = update(
        sb,
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--batch-size",
        "10",
        "--failed-rows",
        str(failed),
        "--results",
        str(results),
    )
    assert result.exit_code == 6
    with open(failed, newline="") as f:
        failed_rows = list(csv.DictReader(f))
    assert [r["code"] for r in failed_rows] == [r["code"] for r in records[10:20]]
    assert len(stored(app)) == 15
    outcomes = {e["batch"]: e for e in journal(results) if e["event"] == "outcome"}
    assert outcomes[2]["status"] == "failed" and "expects number" in outcomes[2]["error"]
    assert outcomes[1]["status"] == outcomes[3]["status"] == "ok"


def test_module_update_without_user_is_refused_before_sending(
    server: RouteServer, tmp_path: Path
) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text('{"title": "x"}\n')
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "update",
        "module",
        "INSPECTION",
        str(source),
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2 and "--user" in result.stderr and server.seen == []


def test_module_update_with_user(sandbox: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text('{"title": "new inspection", "score": 90}\n')
    result = run_cli(
        "--base-url",
        sandbox.url,
        "update",
        "module",
        "INSPECTION",
        str(source),
        "--user",
        "johndoe@exto360.com",
        "-o",
        "json",
        env={"EXTO_TOKEN": sandbox.token},
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["inserted"] == 1


def test_unknown_master_exits_3(sandbox: Sandbox, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", rows(3))
    result = run_cli(
        "--base-url",
        sandbox.url,
        "update",
        "master",
        "NOPE",
        str(source),
        env={"EXTO_TOKEN": sandbox.token},
    )
    assert result.exit_code == 3 and "NOPE not Found." in result.stderr


def test_dry_run_plans_and_sends_nothing(server: RouteServer, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", rows(2500))
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "--rate",
        "3",
        "update",
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--dry-run",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 0
    assert "2500 records" in result.stdout and "batches: 3 of up to 1000" in result.stdout
    assert "requests: 3, at least 0.7 s at 3 requests/s" in result.stdout
    assert server.seen == []


def test_dry_run_diff_counts_creates_updates_and_unchanged(
    parts: tuple[Sandbox, SandboxApp], tmp_path: Path
) -> None:
    sb, _ = parts
    update(sb, "master", "PARTS", str(write_csv(tmp_path / "a.csv", rows(150))), "--key", "code")
    changed = rows(160)
    changed[3]["name"] = "renamed"
    result = update(
        sb,
        "master",
        "PARTS",
        str(write_csv(tmp_path / "b.csv", changed)),
        "--key",
        "code",
        "--dry-run",
        "--diff",
    )
    assert "create: 10" in result.stdout and "update: 1" in result.stdout
    assert "unchanged: 149" in result.stdout


def test_dropped_answer_keyed_batch_is_resent_without_duplicates(tmp_path: Path) -> None:
    app = open_app(
        tmp_path / "d.sqlite",
        seed="empty",
        faults=Faults(rate_per_second=0, drop_after_commit=True),
    )
    add_generated(app.store, "PARTS", 0)
    server, _ = start_background(app)
    try:
        source = write_csv(tmp_path / "in.csv", rows(30))
        result = run_cli(
            "--base-url",
            base_url(server),
            "update",
            "master",
            "PARTS",
            str(source),
            "--key",
            "code",
            "--batch-size",
            "10",
            env={"EXTO_TOKEN": app.mint_token(), "EXTO_MAX_WAIT": "0"},
        )
        assert result.exit_code == 0, result.stderr
        assert sorted(r["code"] for r in stored(app)) == [r["code"] for r in rows(30)]
    finally:
        server.shutdown()
        app.store.close()


def test_dropped_answer_unkeyed_batch_is_applied_once_and_reported_unknown(tmp_path: Path) -> None:
    app = open_app(
        tmp_path / "d.sqlite",
        seed="empty",
        faults=Faults(rate_per_second=0, drop_after_commit=True),
    )
    add_generated(app.store, "PARTS", 0)
    server, _ = start_background(app)
    results = tmp_path / "results.jsonl"
    try:
        source = write_csv(tmp_path / "in.csv", rows(5))
        result = run_cli(
            "--base-url",
            base_url(server),
            "update",
            "master",
            "PARTS",
            str(source),
            "--results",
            str(results),
            env={"EXTO_TOKEN": app.mint_token()},
        )
        assert result.exit_code == 9, result.stderr
        assert len(stored(app)) == 5  # applied once, not re-sent
        (outcome,) = [e for e in journal(results) if e["event"] == "outcome"]
        assert outcome["status"] == "unknown"
        assert (tmp_path / "results.failed.csv").exists()
    finally:
        server.shutdown()
        app.store.close()


# -- interruptions: real processes -------------------------------------------------------


def _server(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str, str]:
    db = str(tmp_path / "s.sqlite")
    return serve_sandbox("--db", db, "--seed", "empty", "--records", "PARTS=0", *extra)


def _wait_for(path: Path, predicate: Any, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            events = [
                json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")
            ]
            if predicate(events):
                return events
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {path}")


def _stored_codes(url: str, token: str) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "exto_cli",
            "--base-url",
            url,
            "get",
            "master",
            "PARTS",
            "--all",
            "-o",
            "jsonl",
            "--fields",
            "code",
        ],
        env={**os.environ, "EXTO_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line)["code"] for line in out.stdout.splitlines()]


def _load_cmd(url: str, tmp_path: Path, *extra: str) -> tuple[list[str], Path]:
    """A 500-row load in 5 batches at 2 requests/s, slow enough to interrupt."""
    source = write_csv(tmp_path / "in.csv", rows(500))
    results = tmp_path / "results.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "exto_cli",
        "--base-url",
        url,
        "--rate",
        "2",
        "update",
        "master",
        "PARTS",
        str(source),
        "--batch-size",
        "100",
        "--results",
        str(results),
        *extra,
    ]
    return cmd, results


def _start(cmd: list[str], token: str) -> subprocess.Popen[str]:
    env = {**os.environ, "EXTO_TOKEN": token}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _sent(batch: int) -> Any:
    return lambda events: any(e["event"] == "sending" and e["batch"] == batch for e in events)


def test_sigkill_during_batch_3_of_5_then_resume_gives_the_input_exactly(tmp_path: Path) -> None:
    server, url, token = _server(tmp_path, "--latency", "0.3")
    env = {**os.environ, "EXTO_TOKEN": token}
    try:
        cmd, results = _load_cmd(url, tmp_path, "--key", "code")
        victim = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(results, _sent(3))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert len({e["batch"] for e in journal(results) if e.get("status") == "ok"}) < 5
        resumed = subprocess.run(
            [*cmd, "--resume", str(results)], env=env, capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 0, resumed.stderr
        assert sorted(_stored_codes(url, token)) == [r["code"] for r in rows(500)]  # none twice
        statuses = {e["batch"]: e["status"] for e in journal(results) if e["event"] == "outcome"}
        assert statuses == dict.fromkeys(range(1, 6), "ok")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


def test_sigint_stops_after_the_batch_in_flight_with_a_parseable_journal(tmp_path: Path) -> None:
    server, url, token = _server(tmp_path, "--latency", "0.3")
    try:
        cmd, results = _load_cmd(url, tmp_path)
        proc = _start(cmd, token)
        _wait_for(results, _sent(2))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        events = journal(results)  # every line parses
        sent = {e["batch"] for e in events if e["event"] == "sending"}
        finished = {e["batch"] for e in events if e["event"] == "outcome"}
        assert sent == finished and len(sent) < 5
        assert events[-1]["event"] == "end" and events[-1]["interrupted"] is True
        assert len(_stored_codes(url, token)) == 100 * len(sent)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


def test_a_second_sigint_stops_at_once_and_the_journal_still_parses(tmp_path: Path) -> None:
    server, url, token = _server(tmp_path, "--latency", "5")
    try:
        cmd, results = _load_cmd(url, tmp_path)
        proc = _start(cmd, token)
        _wait_for(results, _sent(1))
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "stopped at once" in err
        assert time.monotonic() - started < 4  # did not wait out the 5 s answer
        events = journal(results)
        assert events[-1]["event"] == "sending"  # batch 1 left without an outcome
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


def test_resume_refuses_a_changed_input(parts: tuple[Sandbox, SandboxApp], tmp_path: Path) -> None:
    sb, _ = parts
    source = write_csv(tmp_path / "in.csv", rows(30))
    results = tmp_path / "r.jsonl"
    update(
        sb,
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--batch-size",
        "10",
        "--results",
        str(results),
    )
    write_csv(source, rows(30, start=2))
    result = update(
        sb,
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--batch-size",
        "10",
        "--resume",
        str(results),
    )
    assert result.exit_code == 2 and "no longer matches" in result.stderr


def test_resume_skips_ok_batches(parts: tuple[Sandbox, SandboxApp], tmp_path: Path) -> None:
    sb, _ = parts
    source = write_csv(tmp_path / "in.csv", rows(30))
    results = tmp_path / "r.jsonl"
    update(
        sb,
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--batch-size",
        "10",
        "--results",
        str(results),
    )
    again = update(
        sb,
        "master",
        "PARTS",
        str(source),
        "--key",
        "code",
        "--batch-size",
        "10",
        "--resume",
        str(results),
        "-o",
        "json",
    )
    summary = json.loads(again.stdout)
    assert summary["records sent"] == 0 and summary["skipped (already done)"] == 30
