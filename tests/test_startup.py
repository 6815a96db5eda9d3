"""`exto --version` and `exto --help` stay fast: no requests, keyring or werkzeug at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("requests", "keyring", "werkzeug", "urllib3")


def imported_modules(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "exto_cli", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "importtime printed nothing"
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("health", "--help")])
def test_start_up_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "exto_cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_version_prints_the_package_version() -> None:
    from exto_cli import __version__

    out = subprocess.run(
        [sys.executable, "-m", "exto_cli", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out == f"exto {__version__}\n"
