"""Generated docs and completions are current; the README's tables match the code."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from exto_cli.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def generated() -> dict[Path, str]:
    module = runpy.run_path(str(ROOT / "docs" / "generate.py"))
    return module["outputs"]()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "name",
    ["docs/cli.md", "completions/exto.bash", "completions/exto.zsh", "completions/exto.fish"],
)
def test_generated_file_is_current(name: str) -> None:
    expected = generated()[ROOT / name]
    assert (ROOT / name).read_text(encoding="utf-8") == expected, (
        f"{name} is stale: run python docs/generate.py"
    )


def test_every_command_has_help() -> None:
    import typer

    from exto_cli.main import app

    def walk(command: object, path: str) -> None:
        assert getattr(command, "help", None), f"{path} has no help"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "exto")


def test_readme_exit_code_table_matches_the_enum() -> None:
    rows = re.findall(r"^\| (\d+) \| ", README, flags=re.MULTILINE)
    assert sorted(int(r) for r in rows) == sorted(int(c) for c in ExitCode)


def test_readme_test_command_is_what_ci_runs() -> None:
    block = re.search(r"<!-- test-command -->\n```sh\n(.+?)\n```", README, flags=re.DOTALL)
    assert block, "README has no marked test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert block.group(1).strip() in ci


def test_readme_lists_every_environment_variable_the_code_reads() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "exto_cli").rglob("*.py"))
    names = set(re.findall(r"\"(EXTO_[A-Z_]+)\"", code)) - {"EXTO_COMPLETE"}
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"README does not document {missing}"
