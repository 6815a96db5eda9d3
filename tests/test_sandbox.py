"""The sandbox as a product: serving, tokens, rate limit, faults, data, and `exto --sandbox`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import Sandbox, run_cli, serve_sandbox

from exto_cli.sandbox.adapter import open_app
from exto_cli.sandbox.app import Faults
from exto_cli.sandbox.serve import base_url, start_background

LOCATION = "/api/v1/master-record/LOCATION"


def serve_app(tmp_path: Path, **faults: object) -> tuple[object, object, str]:
    app = open_app(tmp_path / "s.sqlite", faults=Faults(**faults))  # type: ignore[arg-type]
    server, _thread = start_background(app)
    return app, server, base_url(server)


def test_rate_limit_answers_429_past_three_per_second(tmp_path: Path) -> None:
    app, server, url = serve_app(tmp_path, rate_per_second=3)
    headers = {"Authorization": f"Bearer {app.mint_token()}"}  # type: ignore[attr-defined]
    try:
        answers = [
            (time.time(), requests.get(url + LOCATION, headers=headers, timeout=5))
            for _ in range(8)
        ]
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    limited = [r for _, r in answers if r.status_code == 429]
    assert limited, "no 429 among 8 back-to-back requests"
    assert "Retry-After" not in limited[0].headers
    assert limited[0].json()["error"]["summary"] == "Too Many Requests"
    by_second: dict[int, int] = {}
    for at, r in answers:
        if r.status_code == 200:
            by_second[int(at)] = by_second.get(int(at), 0) + 1
    assert max(by_second.values()) <= 3


def test_retry_after_flag_adds_the_header(tmp_path: Path) -> None:
    app, server, url = serve_app(tmp_path, rate_per_second=1, retry_after=True)
    headers = {"Authorization": f"Bearer {app.mint_token()}"}  # type: ignore[attr-defined]
    try:
        statuses = [requests.get(url + LOCATION, headers=headers, timeout=5) for _ in range(3)]
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert any(r.status_code == 429 and r.headers.get("Retry-After") == "1" for r in statuses)


def test_rotate_key_rejects_earlier_tokens(sandbox: Sandbox) -> None:
    assert requests.get(sandbox.url + LOCATION, headers=sandbox.auth, timeout=5).status_code == 200
    sandbox.app.rotate_key()  # type: ignore[attr-defined]
    response = requests.get(sandbox.url + LOCATION, headers=sandbox.auth, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["detail"] == ["Invalid authentication token."]


def test_expired_token_is_401(sandbox: Sandbox) -> None:
    token = sandbox.app.mint_token(lifetime_s=0)  # type: ignore[attr-defined]
    response = requests.get(
        sandbox.url + LOCATION, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 401


def test_data_survives_a_restart(tmp_path: Path) -> None:
    app = open_app(tmp_path / "keep.sqlite")
    app.store.upsert(
        app.store.collection("LOCATION", "master"), [{"code": "KEEP-1"}], project=None, user="u"
    )  # type: ignore[arg-type]
    app.store.close()
    again = open_app(tmp_path / "keep.sqlite")
    coll = again.store.collection("LOCATION", "master")
    assert coll is not None
    total, _ = again.store.query(
        coll, project=None, where=None, params=[], status=None, order=None, limit=1, offset=0
    )
    again.store.close()
    assert total == 31


def test_fail_every_answers_503(tmp_path: Path) -> None:
    _app, server, url = serve_app(tmp_path, rate_per_second=0, fail_every=2)
    try:
        codes = [
            requests.get(url + "/api/v1/health/readiness", timeout=5).status_code for _ in range(4)
        ]
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert codes == [200, 503, 200, 503]


def test_drop_after_commit_applies_the_write_and_closes_the_connection(tmp_path: Path) -> None:
    app, server, url = serve_app(tmp_path, rate_per_second=0, drop_after_commit=True)
    headers = {"Authorization": f"Bearer {app.mint_token()}"}  # type: ignore[attr-defined]
    try:
        with pytest.raises(requests.ConnectionError):
            requests.post(url + LOCATION, json=[{"code": "DROP-1"}], headers=headers, timeout=5)
        rows = requests.get(
            url + LOCATION, params={"filter": "code:eq:DROP-1"}, headers=headers, timeout=5
        ).json()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert rows["total"] == 1


def test_latency_is_added_to_every_answer(tmp_path: Path) -> None:
    _app, server, url = serve_app(tmp_path, rate_per_second=0, latency_s=0.3)
    try:
        started = time.monotonic()
        requests.get(url + "/api/v1/health/liveness", timeout=5)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert elapsed >= 0.3  # a lower bound is behaviour, not a speed claim


def test_schema_file_declares_masters_modules_users(tmp_path: Path) -> None:
    from exto_cli.sandbox.seed import load_schema

    schema = tmp_path / "schema.toml"
    schema.write_text(
        '[masters.ASSET]\nunique = ["tag"]\nfields = { tag = "text", cost = "number" }\n'
        '[modules.PERMIT]\nprefix = "PMT"\nfields = { title = "text" }\n'
        '[[projects]]\nid = "Abc1234"\n[[users]]\nusername = "Ops@Example.com"\nprojects = ["Abc1234"]\n'
    )
    app = open_app(tmp_path / "e.sqlite", seed="empty")
    load_schema(app.store, schema)
    assert app.store.collection("ASSET", "master") is not None
    assert app.store.collection("PERMIT", "module") is not None
    assert app.store.user("ops@example.com") is not None
    assert app.store.collection("LOCATION", "master") is None
    app.store.close()


def test_schema_file_errors_name_the_problem(tmp_path: Path) -> None:
    from exto_cli.sandbox.seed import SchemaError, load_schema

    schema = tmp_path / "bad.json"
    schema.write_text(json.dumps({"masters": {"X": {"fields": {"a": "texty"}}}}))
    app = open_app(tmp_path / "e.sqlite", seed="empty")
    with pytest.raises(SchemaError, match=r"X.a: unknown type 'texty'"):
        load_schema(app.store, schema)
    app.store.close()


def test_generated_records_create_a_master_with_unique_code(tmp_path: Path) -> None:
    from exto_cli.sandbox.seed import add_generated

    app = open_app(tmp_path / "g.sqlite", seed="empty")
    add_generated(app.store, "big", 2500)
    add_generated(app.store, "BIG", 500)
    coll = app.store.collection("BIG", "master")
    assert coll is not None and coll.uniques == ["code"]
    total, rows = app.store.query(
        coll, project=None, where=None, params=[], status=None, order="seq DESC", limit=1, offset=0
    )
    app.store.close()
    assert total == 3000 and json.loads(rows[0]["custom"])["code"] == "R0003000"


# -- the command line -------------------------------------------------------------------


def test_exto_sandbox_works_with_no_server_and_no_login() -> None:
    result = run_cli("--sandbox", "health", "--check-auth", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["check"] for r in json.loads(result.stdout)] == ["readiness", "liveness", "auth"]


def test_sandbox_token_command_and_rotate_key(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.sqlite")
    token = run_cli("sandbox", "token", "--db", db).stdout.strip()
    app = open_app(Path(db))
    from exto_cli.sandbox import tokens

    assert tokens.verify(app.signing_key, token)["exp"] > time.time() + 179 * 86400
    app.store.close()
    assert run_cli("sandbox", "rotate-key", "--db", db).exit_code == 0
    app = open_app(Path(db))
    with pytest.raises(tokens.InvalidTokenError):
        tokens.verify(app.signing_key, token)
    app.store.close()


def test_sandbox_token_rejects_a_bad_duration() -> None:
    result = run_cli("sandbox", "token", "--expires-in", "soon")
    assert result.exit_code == 2 and "not a duration" in result.stderr


def test_sandbox_reset_restores_the_seed(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    app = open_app(db)
    app.store.wipe()
    app.store.close()
    assert run_cli("sandbox", "reset", "--db", str(db)).exit_code == 0
    app = open_app(db)
    assert app.store.collection("LOCATION", "master") is not None
    app.store.close()


def _serve(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    return serve_sandbox(*args, log=True)


def test_serve_prints_url_and_token_then_logs_requests_and_stops_on_ctrl_c() -> None:
    proc, url, token = _serve("--memory", "--rate", "0")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/data")
        response = requests.get(
            url + LOCATION, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert response.status_code == 200 and response.json()["total"] == 30
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert '"GET /data/api/v1/master-record/LOCATION" 200' in err


def test_serve_with_tls_and_the_ca_bundle_option(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    proc, url, token = _serve("--memory", "--tls", str(cert), str(key))
    try:
        assert url.startswith("https://127.0.0.1:")
        untrusted = run_cli("--base-url", url, "health", "-o", "json")
        trusted = run_cli(
            "--base-url",
            url,
            "--ca-bundle",
            str(cert),
            "health",
            "--check-auth",
            "-o",
            "json",
            # --ca-bundle must win over a CA bundle set in the environment
            env={"EXTO_TOKEN": token, "REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem"},
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert untrusted.exit_code == 5 and "--ca-bundle" in untrusted.stderr
    assert trusted.exit_code == 0, trusted.stderr


def test_serve_on_a_non_loopback_host_warns(tmp_path: Path) -> None:
    proc, url, _ = _serve("--memory", "--host", "0.0.0.0")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert url.startswith("http://0.0.0.0:")
    assert "warning: listening on 0.0.0.0" in err


def test_rotated_key_makes_exto_fail_with_the_login_hint(tmp_path: Path) -> None:
    db = str(tmp_path / "rot.sqlite")
    proc, url, token = _serve("--db", db, "--rate", "0")
    try:
        before = run_cli("--base-url", url, "health", "--check-auth", env={"EXTO_TOKEN": token})
        run_cli("sandbox", "rotate-key", "--db", db)
        after = run_cli("--base-url", url, "health", "--check-auth", env={"EXTO_TOKEN": token})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert before.exit_code == 0
    assert after.exit_code == 4
    assert "invalidated by a server key change" in after.stderr
