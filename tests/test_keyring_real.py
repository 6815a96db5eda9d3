"""A real Secret Service round trip: gnome-keyring under dbus-run-session.

In CI (CI=true) this test must run: missing tools are a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Sandbox

IN_CI = bool(os.environ.get("CI"))  # read at import, before the isolation fixture clears it
TOOLS = ("dbus-run-session", "gnome-keyring-daemon", "secret-tool")

SCRIPT = r"""
set -u
printf '%s' 'exto-ci-keyring' | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
export PYTHON_KEYRING_BACKEND=keyring.backends.SecretService.Keyring
printf '%s' "$TOKEN" | "$PY" -m exto_cli auth login --base-url "$URL" --token-stdin
echo "login=$?"
echo "stored=$(secret-tool lookup service exto-cli username default)"
"$PY" -m exto_cli health --check-auth -o json > /dev/null
echo "call=$?"
echo "source=$("$PY" -m exto_cli auth status -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["source"])')"
"$PY" -m exto_cli auth logout
echo "logout=$?"
secret-tool lookup service exto-cli username default > /dev/null
echo "lookup_after=$?"
"""


@pytest.mark.keyring_real
def test_secret_service_round_trip(sandbox: Sandbox, tmp_path: Path) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"CI must run the real keyring test, but these are missing: {missing}")
        pytest.skip(
            f"not installed: {missing} (apt-get install gnome-keyring dbus libsecret-tools)"
        )
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "PY": sys.executable,
        "URL": sandbox.url,
        "TOKEN": sandbox.token,
    }
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    result = subprocess.run(
        ["dbus-run-session", "--", "bash", "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines.get("login") == "0", result.stderr
    assert lines.get("stored") == sandbox.token
    assert lines.get("call") == "0", result.stderr
    assert "SecretService" in lines.get("source", ""), result.stderr
    assert lines.get("logout") == "0"
    assert lines.get("lookup_after") == "1"  # secret-tool: nothing found
    assert sandbox.token not in result.stderr
