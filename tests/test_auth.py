"""`exto auth`: login, lookup order, storage refusals, status and expiry, logout."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import keyring.errors
import pytest
from conftest import MemoryKeyring, Sandbox, run_cli
from routeserver import Reply, RouteServer, error_body

TODAY = dt.date.today()


def config(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "config" / "config.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def login(sb: Sandbox, *extra: str, token: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(
        "auth",
        "login",
        "--base-url",
        sb.url,
        "--token-stdin",
        *extra,
        input=token if token is not None else sb.token,
        env=env,
    )


def test_login_verifies_and_stores_in_the_keyring(
    sandbox: Sandbox, isolate: MemoryKeyring, tmp_path: Path
) -> None:
    result = login(sandbox, "--project", "Vx6-j2Z")
    assert result.exit_code == 0, result.stderr
    assert isolate.store[("exto-cli", "default")] == sandbox.token
    assert "verified and stored in the keyring" in result.stderr
    profile = config(tmp_path)["profiles"]["default"]  # type: ignore[index]
    assert profile["base_url"] == sandbox.url and profile["project"] == "Vx6-j2Z"
    assert profile["login_date"] == TODAY.isoformat()
    assert profile["expires"] == (TODAY + dt.timedelta(days=180)).isoformat()
    assert profile["expires_basis"] == "estimated"
    assert sandbox.token not in (tmp_path / "config" / "config.toml").read_text()


def test_login_then_an_authenticated_call_uses_the_stored_token(sandbox: Sandbox) -> None:
    assert login(sandbox).exit_code == 0
    assert run_cli("health", "--check-auth", "-o", "json").exit_code == 0


def test_login_keeps_other_profiles_and_comments(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("# my settings\n[profiles.other]\nrate = 2\n")
    assert login(sandbox, "--profile", "prod").exit_code == 0
    text = path.read_text()
    assert "# my settings" in text and tomllib.loads(text)["profiles"]["other"]["rate"] == 2


def test_login_with_expires_records_a_given_date(sandbox: Sandbox, tmp_path: Path) -> None:
    assert login(sandbox, "--expires", "2027-01-31").exit_code == 0
    profile = config(tmp_path)["profiles"]["default"]  # type: ignore[index]
    assert (profile["expires"], profile["expires_basis"]) == ("2027-01-31", "given")


def test_rejected_token_is_not_stored(
    sandbox: Sandbox, isolate: MemoryKeyring, tmp_path: Path
) -> None:
    result = login(sandbox, token="not-a-valid-token")
    assert result.exit_code == 4
    assert "the token was rejected" in result.stderr
    assert isolate.store == {} and config(tmp_path) == {}


def test_no_verify_sends_nothing(server: RouteServer, isolate: MemoryKeyring) -> None:
    result = run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        "--no-verify",
        input="tok-123456789",
    )
    assert result.exit_code == 0 and "not verified" in result.stderr
    assert server.seen == [] and isolate.store[("exto-cli", "default")] == "tok-123456789"


@pytest.mark.parametrize("raw", ["abc def", "abc\tdef", "abc\x1bdef", "   ", "a\nb"])
def test_malformed_tokens_are_refused_without_echo(server: RouteServer, raw: str) -> None:
    result = run_cli(
        "auth", "login", "--base-url", server.url + "/data", "--token-stdin", input=raw
    )
    assert result.exit_code == 2
    assert "abc" not in result.stderr and server.seen == []


def test_surrounding_whitespace_is_stripped(server: RouteServer, isolate: MemoryKeyring) -> None:
    run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        "--no-verify",
        input="  tok-abcdefgh \n",
    )
    assert isolate.store[("exto-cli", "default")] == "tok-abcdefgh"


@pytest.mark.parametrize("env", [{}, {"CI": "true"}])
def test_without_a_terminal_login_never_prompts(server: RouteServer, env: dict[str, str]) -> None:
    result = run_cli("auth", "login", "--base-url", server.url + "/data", env=env, input="")
    assert result.exit_code == 2 and "--token-stdin" in result.stderr


def test_sandbox_profile_needs_no_login() -> None:
    assert run_cli("--sandbox", "auth", "login", "--token-stdin", input="x").exit_code == 2


class SlowKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(5)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        time.sleep(5)


class LockedKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("locked")

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


def test_a_hung_keyring_is_an_error_not_a_hang(server: RouteServer) -> None:
    keyring.set_keyring(SlowKeyring())
    started = time.monotonic()
    result = run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        "--no-verify",
        input="tok-abcdefgh",
        env={"EXTO_KEYRING_TIMEOUT": "0.3"},
    )
    assert result.exit_code == 4 and "did not answer within 0.3 s" in result.stderr
    assert time.monotonic() - started < 4


def test_a_locked_keyring_fails_fast_with_a_hint(server: RouteServer) -> None:
    keyring.set_keyring(LockedKeyring())
    result = run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        "--no-verify",
        input="tok-abcdefgh",
    )
    assert result.exit_code == 4 and "locked" in result.stderr and "unlock" in result.stderr
    status = run_cli("auth", "status")
    assert status.exit_code == 4 and "locked" in status.stderr
    with_env = run_cli("auth", "status", "-o", "json", env={"EXTO_TOKEN": "env-token-1234"})
    assert with_env.exit_code == 0 and "could not check the keyring" in with_env.stdout


def _subprocess_login(
    tmp_path: Path, backend: str, *extra: str, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": backend,
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "exto_cli",
            "auth",
            "login",
            "--token-stdin",
            "--no-verify",
            "--base-url",
            "http://127.0.0.1:9/data",
            *extra,
        ],
        input="tok-0123456789",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


@pytest.mark.parametrize(
    "backend",
    [
        "keyring.backends.fail.Keyring",
        "keyring.backends.null.Keyring",
        "keyrings.alt.file.PlaintextKeyring",
    ],
)
def test_unsafe_keyring_backends_are_refused(tmp_path: Path, backend: str) -> None:
    result = _subprocess_login(tmp_path, backend)
    assert result.returncode == 4, result.stderr
    assert "does not store secrets safely" in result.stderr
    assert "--insecure-storage" in result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written


def test_insecure_storage_writes_a_0600_file_even_under_umask_000(tmp_path: Path) -> None:
    result = _subprocess_login(
        tmp_path, "keyring.backends.fail.Keyring", "--insecure-storage", umask=0
    )
    assert result.returncode == 0, result.stderr
    assert "plaintext" in result.stderr
    path = tmp_path / "config" / "credentials" / "default"
    assert path.read_text().strip() == "tok-0123456789"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_file_token_is_found_after_insecure_login(server: RouteServer) -> None:
    run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        "--no-verify",
        "--insecure-storage",
        input="tok-from-file-1",
    )
    run_cli("health", "--check-auth", "-o", "json")
    assert (
        server.requests_to("/data/api/v1/build/info")[0].headers["Authorization"]
        == "Bearer tok-from-file-1"
    )


def test_environment_token_wins_over_the_keyring(
    server: RouteServer, isolate: MemoryKeyring
) -> None:
    isolate.store[("exto-cli", "default")] = "tok-keyring-1"
    run_cli(
        "--base-url",
        server.url + "/data",
        "health",
        "--check-auth",
        "-o",
        "json",
        env={"EXTO_TOKEN": "tok-environment-1"},
    )
    assert server.seen[-1].headers["Authorization"] == "Bearer tok-environment-1"


def test_status_names_the_source_and_warns_about_shadowing(isolate: MemoryKeyring) -> None:
    isolate.store[("exto-cli", "default")] = "tok-keyring-secret-1"
    result = run_cli("auth", "status", "-o", "json", env={"EXTO_TOKEN": "tok-env-secret-9876"})
    info = json.loads(result.stdout)
    assert info["source"] == "environment (EXTO_TOKEN)" and info["token"] == "…9876"
    assert any("EXTO_TOKEN shadows" in w for w in info["warnings"])
    assert "tok-env-secret" not in result.stdout + result.stderr
    assert "tok-keyring-secret" not in result.stdout + result.stderr


def test_status_table_shows_keyring_backend_and_estimated_expiry(server: RouteServer) -> None:
    run_cli(
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        input="opaque-token-7788",
    )
    result = run_cli("auth", "status", "-o", "table")
    assert result.exit_code == 0, result.stderr
    assert "MemoryKeyring" in result.stdout and "…7788" in result.stdout
    assert "estimated" in result.stdout and " 180 " in result.stdout  # days left
    assert "opaque-token" not in result.stdout


def test_status_reads_a_jwt_expiry_as_claimed(sandbox: Sandbox) -> None:
    token = sandbox.app.mint_token(lifetime_s=10 * 86400)  # type: ignore[attr-defined]
    result = run_cli("auth", "status", "-o", "json", env={"EXTO_TOKEN": token})
    info = json.loads(result.stdout)
    assert info["expiry_basis"] == "claimed" and info["days_left"] in (9, 10)
    assert any("expires in" in w for w in info["warnings"])


def test_status_without_any_token_exits_4() -> None:
    result = run_cli("auth", "status")
    assert result.exit_code == 4 and "exto auth login --profile default" in result.stderr


@pytest.mark.parametrize(
    ("expires_in_days", "min_valid", "code"), [(30, "21d", 0), (20, "21d", 4), (30, "5w", 4)]
)
def test_min_valid_is_a_ci_gate(expires_in_days: int, min_valid: str, code: int) -> None:
    env = {
        "EXTO_TOKEN": "opaque-token-1234",
        "EXTO_TOKEN_EXPIRES": (TODAY + dt.timedelta(days=expires_in_days)).isoformat(),
    }
    result = run_cli("auth", "status", "--min-valid", min_valid, "-o", "json", env=env)
    assert result.exit_code == code, result.stderr


def test_min_valid_with_unknown_expiry_fails_safe() -> None:
    result = run_cli(
        "auth", "status", "--min-valid", "14d", env={"EXTO_TOKEN": "opaque-token-1234"}
    )
    assert result.exit_code == 4 and "EXTO_TOKEN_EXPIRES" in result.stderr


def test_expiry_warning_in_normal_use_and_not_with_quiet(server: RouteServer) -> None:
    env = {
        "EXTO_TOKEN": "opaque-token-1234",
        "EXTO_TOKEN_EXPIRES": (TODAY + dt.timedelta(days=5)).isoformat(),
    }
    base = ["--base-url", server.url + "/data"]
    loud = run_cli(*base, "health", "--check-auth", "-o", "json", env=env)
    quiet = run_cli(*base, "-q", "health", "--check-auth", "-o", "json", env=env)
    assert loud.stderr.count("warning: the token expires in 5 days") == 1
    assert "warning" not in quiet.stderr


def test_logout_removes_the_token_everywhere(
    sandbox: Sandbox, isolate: MemoryKeyring, tmp_path: Path
) -> None:
    login(sandbox)
    (tmp_path / "config" / "credentials").mkdir()
    (tmp_path / "config" / "credentials" / "default").write_text("old-file-token\n")
    result = run_cli("auth", "logout")
    assert result.exit_code == 0 and "keyring" in result.stderr and "file" in result.stderr
    assert isolate.store == {} and not (tmp_path / "config" / "credentials" / "default").exists()
    assert "expires" not in config(tmp_path)["profiles"]["default"]  # type: ignore[index]
    assert run_cli("auth", "status").exit_code == 4


def test_token_prints_the_resolved_token(isolate: MemoryKeyring) -> None:
    isolate.store[("exto-cli", "work")] = "tok-work-1234"
    result = run_cli("auth", "token", "--profile", "work")
    assert result.stdout == "tok-work-1234\n"


def test_expired_sandbox_token_is_rejected_with_the_login_hint(sandbox: Sandbox) -> None:
    token = sandbox.app.mint_token(lifetime_s=0)  # type: ignore[attr-defined]
    result = run_cli("--base-url", sandbox.url, "health", "--check-auth", env={"EXTO_TOKEN": token})
    assert result.exit_code == 4
    assert "expired, revoked, or invalidated by a server key change" in result.stderr


def test_403_names_the_missing_project_access(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/build/info",
        Reply(403, error_body(403, "Forbidden", "User not authorized to make this transaction")),
    )
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "--project",
        "Vx6-j2Z",
        "health",
        "--check-auth",
        env={"EXTO_TOKEN": "tok-12345678"},
    )
    assert result.exit_code == 4 and "no access to project Vx6-j2Z" in result.stderr


@pytest.mark.parametrize("status", [200, 400, 401, 429, 500])
def test_canary_token_never_appears_in_login_debug_output(server: RouteServer, status: int) -> None:
    canary = f"exto-canary-{uuid.uuid4()}"

    def echo(seen):  # type: ignore[no-untyped-def]
        auth = seen.headers.get("Authorization", "")
        return Reply(
            status, error_body(status, f"echo {auth}", f"you sent {auth}"), {"X-Echo": auth}
        )

    server.route("GET", "/data/api/v1/build/info", echo)
    result = run_cli(
        "--debug",
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        input=canary,
        env={"EXTO_MAX_ATTEMPTS": "2", "EXTO_MAX_WAIT": "0"},
    )
    assert server.seen, "nothing was sent"
    status_out = run_cli("--debug", "auth", "status", "-o", "json")
    everything = result.stdout + result.stderr + status_out.stdout + status_out.stderr
    assert canary not in everything
    assert canary[-4:] in status_out.stdout or status != 200


def test_canary_in_a_malformed_token_is_not_echoed(server: RouteServer) -> None:
    canary = f"exto-canary-{uuid.uuid4()}"
    result = run_cli(
        "--debug",
        "auth",
        "login",
        "--base-url",
        server.url + "/data",
        "--token-stdin",
        input=canary[:10] + " " + canary[10:],
    )
    assert result.exit_code == 2 and canary[:10] not in result.stderr + result.stdout
