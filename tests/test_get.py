"""`exto get` against the sandbox (and a route server for paging faults)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, Sandbox, run_cli, serve_sandbox
from routeserver import Reply, RouteServer, Seen, error_body


def get(sb: Sandbox, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_cli("--base-url", sb.url, "get", *args, env={"EXTO_TOKEN": sb.token, **(env or {})})


def codes(rows: list[dict[str, Any]]) -> list[str]:
    return [r["customFields"]["code"] for r in rows]


ALL_CODES = [f"LOC-{i:03d}" for i in range(1, 31)]


@pytest.mark.parametrize(
    ("where", "count"), [("code = NOPE", 0), ("code = LOC-001", 1), ("code ^= LOC", 30)]
)
def test_json_output_is_one_valid_array_for_0_1_many_rows(
    sandbox: Sandbox, where: str, count: int
) -> None:
    result = get(sandbox, "master", "LOCATION", "--where", where, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == count


def test_json_rows_are_the_records_as_exto_returns_them(sandbox: Sandbox) -> None:
    rows = json.loads(get(sandbox, "master", "LOCATION", "-o", "json").stdout)
    assert codes(rows) == ALL_CODES
    assert {"_id", "refId", "customFields", "createdAt"} <= set(rows[0])


def test_one_page_without_all_notes_that_more_exist(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "LOCATION", "--page-size", "7", "-o", "jsonl")
    assert len(result.stdout.splitlines()) == 7
    assert "more pages exist" in result.stderr and "--page 2" in result.stderr


def test_page_option_reads_that_page(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "LOCATION", "--page-size", "7", "--page", "5", "-o", "jsonl")
    assert [json.loads(x)["customFields"]["code"] for x in result.stdout.splitlines()] == ALL_CODES[
        28:
    ]


def test_all_reads_every_page_in_order(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "LOCATION", "--all", "--page-size", "4", "-o", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["customFields"]["code"] for x in result.stdout.splitlines()] == ALL_CODES
    assert "more pages" not in result.stderr


def test_limit_stops_early_and_says_more_exist(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "LOCATION", "--limit", "10", "--page-size", "4", "-o", "jsonl")
    assert len(result.stdout.splitlines()) == 10
    assert "stopped at --limit 10; more rows exist (30 in all)" in result.stderr


def test_csv_has_ref_id_then_custom_fields_and_round_trips(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "VENDOR", "--page-size", "2", "-o", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert rows[0] == [
        "refId",
        "vendor_code",
        "name",
        "email",
        "rating",
        "categories",
        "credit_limit",
    ]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert (
        json.loads(first["categories"]) and json.loads(first["credit_limit"])["currency"] == "USD"
    )


def test_csv_nulls_are_empty_and_no_header_drops_the_header(sandbox: Sandbox) -> None:
    sandbox.app.store.upsert(
        sandbox.app.store.collection("LOCATION", "master"),  # type: ignore[attr-defined]
        [{"code": "ZZZ-1", "name": None}],
        project=None,
        user="u",
    )
    result = get(
        sandbox,
        "master",
        "LOCATION",
        "--where",
        "code = ZZZ-1",
        "--fields",
        "code,name,city",
        "-o",
        "csv",
        "--no-header",
    )
    assert result.stdout == "ZZZ-1,,\n"  # CliRunner shows CRLF as LF


def test_tsv_and_table_outputs(sandbox: Sandbox) -> None:
    tsv = get(
        sandbox,
        "master",
        "LOCATION",
        "--where",
        "code = LOC-002",
        "--fields",
        "code,name",
        "-o",
        "tsv",
    )
    assert tsv.stdout == "code\tname\nLOC-002\tPune site 2\n"
    table = get(sandbox, "master", "LOCATION", "--where", "code = LOC-002", "-o", "table")
    assert "refId" in table.stdout and "Pune site 2" in table.stdout


def test_fields_mix_top_level_and_custom_names(sandbox: Sandbox) -> None:
    result = get(
        sandbox,
        "master",
        "LOCATION",
        "--fields",
        "refId,code,createdAt",
        "--limit",
        "1",
        "-o",
        "jsonl",
    )
    row = json.loads(result.stdout)
    assert list(row) == ["refId", "code", "createdAt"] and row["code"] == "LOC-001"


def test_where_options_are_anded(sandbox: Sandbox) -> None:
    result = get(
        sandbox,
        "master",
        "LOCATION",
        "--where",
        "city = Pune or city = Kochi",
        "--where",
        "area_sqm > 10000",
        "-o",
        "jsonl",
    )
    got = [json.loads(x)["customFields"] for x in result.stdout.splitlines()]
    assert got and all(r["city"] in ("Pune", "Kochi") and r["area_sqm"] > 10000 for r in got)


def test_where_and_raw_filter_select_the_same_rows(sandbox: Sandbox) -> None:
    where = get(
        sandbox,
        "master",
        "ITEM_MASTER",
        "--where",
        "weight_kg >= 100 and in_stock = true",
        "-o",
        "jsonl",
        "--all",
    )
    raw = get(
        sandbox,
        "master",
        "ITEM_MASTER",
        "--filter",
        "weight_kg:ge:100:and:in_stock:in:true",
        "-o",
        "jsonl",
        "--all",
    )
    assert where.stdout == raw.stdout and len(where.stdout.splitlines()) > 100


def test_date_condition_is_sent_with_the_time_zone(sandbox: Sandbox) -> None:
    result = get(
        sandbox,
        "module",
        "INSPECTION",
        "--where",
        "inspection_date >= 2026-01-01",
        "--tz",
        "Asia/Kolkata",
        "-o",
        "jsonl",
        "--all",
    )
    dates = [json.loads(x)["customFields"]["inspection_date"] for x in result.stdout.splitlines()]
    assert dates and min(dates) >= "2026-01-01"


def test_status_and_sort(sandbox: Sandbox) -> None:
    result = get(
        sandbox,
        "module",
        "INSPECTION",
        "--status",
        "Approved",
        "--sort",
        "-score",
        "-o",
        "jsonl",
        "--all",
    )
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    scores = [r["customFields"]["score"] for r in rows]
    assert {r["status"] for r in rows} == {"Approved"} and scores == sorted(scores, reverse=True)


def test_users_user_and_groups(sandbox: Sandbox) -> None:
    users = list(csv.DictReader(io.StringIO(get(sandbox, "users", "-o", "csv").stdout)))
    assert len(users) == 5 and users[0]["userName"] == "admin@exto.local"
    assert json.loads(users[0]["projects"]) == ["Vx6-j2Z", "p6iD1Wb"]
    raw_users = json.loads(get(sandbox, "users", "-o", "json").stdout)
    assert set(raw_users[0]) == {"user", "groups", "projects"}
    one = json.loads(get(sandbox, "user", "johndoe@exto360.com", "-o", "json").stdout)
    assert one["user"]["userName"] == "johndoe@exto360.com"
    assert get(sandbox, "user", "nobody@x.com").exit_code == 3
    groups = json.loads(get(sandbox, "groups", "--project-only", "-o", "json").stdout)
    assert len(groups) == 5 and {g["type"] for g in groups} == {"PROJECT"}


def test_raw_sends_any_get_and_pages_with_all(sandbox: Sandbox) -> None:
    info = json.loads(get(sandbox, "raw", "/api/v1/build/info").stdout)
    assert info["name"] == "exto-data-api"
    page = json.loads(
        get(sandbox, "raw", "/api/v1/master-record/LOCATION", "--param", "pageSize=3").stdout
    )
    assert len(page["rows"]) == 3 and page["total"] == 30
    rows = get(
        sandbox, "raw", "/api/v1/master-record/LOCATION", "--all", "--page-size", "8", "-o", "jsonl"
    )
    assert len(rows.stdout.splitlines()) == 30
    assert get(sandbox, "raw", "https://elsewhere.example/x").exit_code == 2


def test_unknown_master_exits_3_with_the_server_message(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "NOPE")
    assert result.exit_code == 3 and "NOPE not Found." in result.stderr


def test_server_400_exits_2_with_its_detail(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "LOCATION", "--filter", "code:zz:1")
    assert result.exit_code == 2 and "unknown operator 'zz'" in result.stderr


def test_bad_where_shows_a_caret_and_sends_nothing(server: RouteServer) -> None:
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "get",
        "master",
        "X",
        "--where",
        "name > abc",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2
    assert "  name > abc\n       ^\n" in result.stderr
    assert server.seen == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "x = 'a:b'"], "cannot carry ':' or '|'"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--page-size", "1001"], "1000"),
        (["--checkpoint", "cp.json"], "--checkpoint needs --out"),
    ],
)
def test_bad_input_exits_2_with_nothing_sent(
    server: RouteServer, args: list[str], message: str
) -> None:
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "get",
        "master",
        "X",
        *args,
        "-o",
        "jsonl",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2 and message in result.stderr
    assert server.seen == []


def test_date_condition_without_any_time_zone_exits_2(
    server: RouteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exto_cli import listing

    monkeypatch.setattr(listing, "system_timezone", lambda env: None)
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "get",
        "master",
        "X",
        "--where",
        "d >= 2024-01-01",
        env={"EXTO_TOKEN": "t-12345678"},
    )
    assert result.exit_code == 2 and "needs a time zone" in result.stderr and server.seen == []


def test_time_zone_comes_from_the_profile(server: RouteServer, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        '[profiles.default]\ntimezone = "Asia/Kolkata"\n'
    )
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "get",
        "master",
        "X",
        "--where",
        "d >= 2024-01-01",
        "--explain",
    )
    assert "localTimeZone: Asia/Kolkata" in result.stdout


def test_explain_prints_filter_and_url_and_sends_nothing(server: RouteServer, isolate: Any) -> None:
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "get",
        "master",
        "LOCATION",
        "--where",
        "code in (A, B) and active = true",
        "--explain",
    )
    assert result.exit_code == 0
    assert "filter: code:in:A|B:and:active:in:true" in result.stdout
    assert (
        f"url: {server.url}/data/api/v1/master-record/LOCATION?filter=code%3Ain%3AA%7CB"
        in result.stdout
    )
    assert server.seen == []


# -- paging faults, staged by a route server -------------------------------------------


def paged_route(rows: list[dict[str, Any]], *, bare: bool = False, mutate: Any = None) -> Any:
    state = {"rows": rows, "mutated": False}

    def handler(seen: Seen) -> Reply:
        page, size = int(seen.query["page"][0]), int(seen.query["pageSize"][0])
        if mutate is not None and page > 1 and not state["mutated"]:
            state["mutated"] = True
            state["rows"] = mutate(state["rows"])
        current = state["rows"]
        chunk = current[(page - 1) * size : page * size]
        if bare:
            return Reply(200, chunk)
        return Reply(
            200,
            {
                "rows": chunk,
                "total": len(current),
                "page": page,
                "pageSize": size,
                "totalPages": (len(current) + size - 1) // size,
            },
        )

    return handler


def record(i: int) -> dict[str, Any]:
    return {"_id": f"{i:024x}", "refId": f"R{i:06d}", "customFields": {"n": i}}


def fetch_all(srv: RouteServer, *extra: str) -> Result:
    return run_cli(
        "--base-url",
        srv.url + "/data",
        "get",
        "master",
        "M",
        "--all",
        "--page-size",
        "5",
        "-o",
        "jsonl",
        *extra,
        env={"EXTO_TOKEN": "t-12345678", "EXTO_MAX_WAIT": "0"},
    )


def numbers(result: Result) -> list[int]:
    return [json.loads(x)["customFields"]["n"] for x in result.stdout.splitlines()]


def test_a_page_that_fails_once_with_503_is_retried_in_place(server: RouteServer) -> None:
    inner = paged_route([record(i) for i in range(23)])
    failed: set[int] = set()

    def flaky(seen: Seen) -> Reply:
        page = int(seen.query["page"][0])
        if page == 3 and page not in failed:
            failed.add(page)
            return Reply(503, error_body(503, "Service Unavailable"))
        return inner(seen)  # type: ignore[no-any-return]

    server.route("GET", "/data/api/v1/master-record/M", flaky)
    result = fetch_all(server)
    assert result.exit_code == 0, result.stderr
    assert numbers(result) == list(range(23))
    assert len(server.seen) == 6


def test_total_growing_mid_run_is_reported_and_shifted_rows_are_not_repeated(
    server: RouteServer,
) -> None:
    rows = [record(i) for i in range(20)]
    server.route(
        "GET",
        "/data/api/v1/master-record/M",
        paged_route(rows, mutate=lambda current: [record(100), record(101), *current]),
    )
    result = fetch_all(server)
    assert result.exit_code == 0
    assert numbers(result) == list(range(20))  # page 1 before the insert, the rest after it
    assert "total was 20, now 22" in result.stderr
    assert "dropped 2 duplicate rows" in result.stderr


def test_a_bare_array_answer_is_paged_until_a_short_page(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/master-record/M",
        paged_route([record(i) for i in range(12)], bare=True),
    )
    result = fetch_all(server)
    assert numbers(result) == list(range(12)) and len(server.seen) == 3


def test_an_empty_page_mid_run_stops_with_a_warning(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/master-record/M",
        paged_route([record(i) for i in range(20)], mutate=lambda current: current[:4]),
    )
    result = fetch_all(server)
    assert numbers(result) == list(range(5))
    assert "came back empty" in result.stderr


def test_plain_progress_prints_lines_when_asked(sandbox: Sandbox) -> None:
    result = get(
        sandbox,
        "master",
        "ITEM_MASTER",
        "--all",
        "--page-size",
        "100",
        "-o",
        "jsonl",
        "--progress",
        "plain",
    )
    assert "fetching 30 pages (no pacing)" in result.stderr  # the tests turn pacing off
    assert "page 30/30, 3000 rows" in result.stderr
    paced = get(
        sandbox,
        "master",
        "ITEM_MASTER",
        "--all",
        "--page-size",
        "1000",
        "-o",
        "jsonl",
        "--progress",
        "plain",
        env={"EXTO_RATE": "3"},
    )
    assert "fetching 3 pages: 3 requests, at least 1 s at 3 requests/s" in paced.stderr


def test_no_progress_when_stderr_is_not_a_terminal(sandbox: Sandbox) -> None:
    result = get(sandbox, "master", "ITEM_MASTER", "--all", "--page-size", "100", "-o", "jsonl")
    assert result.stderr == ""


# -- checkpoints -----------------------------------------------------------------------


def test_checkpoint_of_a_finished_export_is_not_run_again(sandbox: Sandbox, tmp_path: Path) -> None:
    out, cp = tmp_path / "out.jsonl", tmp_path / "cp.json"
    args = (
        "master",
        "LOCATION",
        "--all",
        "--page-size",
        "7",
        "-o",
        "jsonl",
        "--out",
        str(out),
        "--checkpoint",
        str(cp),
    )
    assert get(sandbox, *args).exit_code == 0
    assert len(out.read_text().splitlines()) == 30 and json.loads(cp.read_text())["done"] is True
    again = get(sandbox, *args)
    assert "already finished" in again.stderr and len(out.read_text().splitlines()) == 30


def test_checkpoint_refuses_a_different_query(sandbox: Sandbox, tmp_path: Path) -> None:
    out, cp = tmp_path / "out.csv", tmp_path / "cp.json"
    get(
        sandbox,
        "master",
        "LOCATION",
        "--all",
        "-o",
        "csv",
        "--out",
        str(out),
        "--checkpoint",
        str(cp),
    )
    result = get(
        sandbox,
        "master",
        "LOCATION",
        "--all",
        "--where",
        "city = Pune",
        "-o",
        "csv",
        "--out",
        str(out),
        "--checkpoint",
        str(cp),
    )
    assert result.exit_code == 2 and "different query" in result.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_killed_with_sigkill_resumes_to_the_same_output(tmp_path: Path, fmt: str) -> None:
    env = {**os.environ, "EXTO_RATE": "0"}
    server, url, token = serve_sandbox(
        "--memory", "--rate", "0", "--latency", "0.15", "--records", "BIG=3000"
    )
    try:
        env["EXTO_TOKEN"] = token
        base = [
            sys.executable,
            "-m",
            "exto_cli",
            "--base-url",
            url,
            "get",
            "master",
            "BIG",
            "--all",
            "--page-size",
            "100",
            "-o",
            fmt,
        ]
        reference = tmp_path / f"reference.{fmt}"
        subprocess.run([*base, "--out", str(reference)], env=env, check=True, timeout=120)
        out, cp = tmp_path / f"out.{fmt}", tmp_path / "cp.json"
        cmd = [*base, "--out", str(out), "--checkpoint", str(cp)]
        victim = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cp.exists() and json.loads(cp.read_text() or "{}").get("completed_pages", 0) >= 5:
                break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        state = json.loads(cp.read_text())
        assert 5 <= state["completed_pages"] < 30 and not state["done"]
        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed after page" in resumed.stderr
        assert out.read_bytes() == reference.read_bytes()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
