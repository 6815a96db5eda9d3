from __future__ import annotations

from pathlib import Path

import pytest

from exto_cli.config import GlobalOptions, resolve
from exto_cli.errors import UsageError


def write_config(env: dict[str, str], text: str) -> None:
    path = Path(env["EXTO_CONFIG_DIR"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"EXTO_CONFIG_DIR": str(tmp_path / "cfg"), "EXTO_CACHE_DIR": str(tmp_path / "cache")}


def test_defaults(env: dict[str, str]) -> None:
    s = resolve(GlobalOptions(), env)
    assert (s.profile, s.base_url, s.rate_per_second) == (
        "default",
        "https://platform.exto360.com/data",
        3.0,
    )
    assert (s.max_attempts, s.max_wait_s, s.max_retry_time_s) == (5, 60.0, 300.0)


def test_option_beats_environment_beats_profile_beats_default(env: dict[str, str]) -> None:
    write_config(env, '[profiles.default]\nrate = 1\ntimeout = 9\nproject = "P1"\n')
    env["EXTO_RATE"] = "2"
    s = resolve(GlobalOptions(rate_per_second=2.5), env)
    assert s.rate_per_second == 2.5
    s = resolve(GlobalOptions(), env)
    assert (s.rate_per_second, s.timeout_s, s.project_id) == (2.0, 9.0, "P1")
    del env["EXTO_RATE"]
    assert resolve(GlobalOptions(), env).rate_per_second == 1.0


def test_profile_from_environment_selects_its_table(env: dict[str, str]) -> None:
    write_config(env, '[profiles.prod]\nbase_url = "https://acme.exto360.com/data/"\n')
    env["EXTO_PROFILE"] = "prod"
    s = resolve(GlobalOptions(), env)
    assert (s.profile, s.base_url) == ("prod", "https://acme.exto360.com/data")


def test_sandbox_profile_is_built_in(env: dict[str, str]) -> None:
    s = resolve(GlobalOptions(profile="sandbox"), env)
    assert (s.base_url, s.auth_mode) == ("sandbox://demo", "sandbox")


def test_headers_merge_profile_environment_and_options(env: dict[str, str]) -> None:
    write_config(env, '[profiles.default.headers]\nX-A = "1"\nX-B = "1"\n')
    env["EXTO_HEADERS"] = "X-B: 2\nX-C:2"
    s = resolve(GlobalOptions(headers=("X-C:3",)), env)
    assert s.headers == {"X-A": "1", "X-B": "2", "X-C": "3"}


def test_auth_none_profile_for_gateways(env: dict[str, str]) -> None:
    write_config(env, '[profiles.default]\nauth = "none"\n')
    assert resolve(GlobalOptions(), env).auth_mode == "none"


@pytest.mark.parametrize(
    ("options", "extra_env", "message"),
    [
        (GlobalOptions(headers=("no-colon",)), {}, "--header: expected NAME:VALUE"),
        (GlobalOptions(), {"EXTO_RATE": "fast"}, "EXTO_RATE: not a number"),
        (GlobalOptions(rate_per_second=-1), {}, "--rate: must be at least 0"),
        (GlobalOptions(color="pink"), {}, "--color"),
    ],
)
def test_bad_settings_are_usage_errors(
    env: dict[str, str], options: GlobalOptions, extra_env: dict[str, str], message: str
) -> None:
    env.update(extra_env)
    with pytest.raises(UsageError, match=message):
        resolve(options, env)


def test_malformed_config_names_file_and_line(env: dict[str, str]) -> None:
    write_config(env, "[profiles.default]\nrate = = 3\n")
    with pytest.raises(UsageError, match=r"config.toml: not valid TOML: .*line 2"):
        resolve(GlobalOptions(), env)
