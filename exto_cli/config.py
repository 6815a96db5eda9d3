"""Settings and profiles: option > environment > profile in config.toml > built-in default."""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exto_cli.errors import UsageError

DEFAULT_BASE_URL = "https://platform.exto360.com/data"
DEFAULT_RATE_PER_SECOND = 3.0
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_WAIT_S = 60.0
DEFAULT_MAX_RETRY_TIME_S = 300.0
SANDBOX_PROFILE = "sandbox"
AUTH_MODES = ("bearer", "none", "sandbox")

# The built-in profile behind `--sandbox`: the in-process sandbox, whose token it mints itself.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    SANDBOX_PROFILE: {"base_url": "sandbox://demo", "auth": "sandbox"},
}

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class GlobalOptions:
    """Values given on the command line; None means "not given"."""

    profile: str | None = None
    base_url: str | None = None
    project_id: str | None = None
    rate_per_second: float | None = None
    timeout_s: float | None = None
    ca_bundle: str | None = None
    headers: tuple[str, ...] = ()
    verbose: bool = False
    debug: bool = False
    quiet: bool = False
    color: str | None = None
    no_input: bool = False


@dataclass(frozen=True)
class Settings:
    profile: str
    base_url: str
    project_id: str | None
    rate_per_second: float
    timeout_s: float
    ca_bundle: str | None
    headers: dict[str, str]
    auth_mode: str
    verbose: bool
    debug: bool
    quiet: bool
    color: str
    no_input: bool
    timezone: str | None
    max_attempts: int
    max_wait_s: float
    max_retry_time_s: float
    config_dir: Path
    cache_dir: Path
    profile_data: dict[str, Any] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"


def config_dir(env: Mapping[str, str]) -> Path:
    if env.get("EXTO_CONFIG_DIR"):
        return Path(env["EXTO_CONFIG_DIR"])
    import platformdirs

    return Path(platformdirs.user_config_dir("exto", appauthor=False))


def cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("EXTO_CACHE_DIR"):
        return Path(env["EXTO_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("exto", appauthor=False))


def load_config(path: Path) -> dict[str, Any]:
    """Read config.toml; a missing file is an empty config, a malformed one a usage error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", hint="fix or remove the file") from None


def profile_table(config: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles = config.get("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(f"{path}: [profiles] must be a table")
    table = profiles.get(name, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [profiles.{name}] must be a table")
    return {**BUILTIN_PROFILES.get(name, {}), **table}


def parse_header(text: str, source: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _HEADER_NAME.match(name):
        raise UsageError(
            f"{source}: expected NAME:VALUE, got {text.split(':', 1)[0]!r}...",
            hint="for example --header 'Ocp-Apim-Subscription-Key:abc123'",
        )
    value = value.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"{source}: header {name} has a control character in its value")
    return name, value


def _number(value: Any, source: str, *, minimum: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: not a number: {value!r}") from None
    if number < minimum or number != number:
        raise UsageError(f"{source}: must be at least {minimum:g}, got {value!r}")
    return number


def _pick(
    option: Any, env: Mapping[str, str], env_name: str, profile: Mapping[str, Any], key: str
) -> tuple[Any, str] | None:
    """The first value given, with where it came from (for error messages)."""
    if option is not None:
        return option, f"--{key.replace('_', '-')}"
    if env.get(env_name):
        return env[env_name], env_name
    if key in profile:
        return profile[key], f"config.toml [profiles] {key}"
    return None


def _headers(
    options: GlobalOptions, env: Mapping[str, str], prof: Mapping[str, Any]
) -> dict[str, str]:
    headers: dict[str, str] = {}
    table = prof.get("headers", {})
    if not isinstance(table, dict):
        raise UsageError("config.toml: headers must be a table of NAME = VALUE")
    headers.update({str(k): str(v) for k, v in table.items()})
    # EXTO_HEADERS holds one NAME:VALUE per line.
    for line in env.get("EXTO_HEADERS", "").splitlines():
        if line.strip():
            name, value = parse_header(line, "EXTO_HEADERS")
            headers[name] = value
    for item in options.headers:
        name, value = parse_header(item, "--header")
        headers[name] = value
    return headers


def resolve(options: GlobalOptions, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    cfg_dir = config_dir(env)
    profile_name = options.profile or env.get("EXTO_PROFILE") or "default"
    prof = profile_table(load_config(cfg_dir / "config.toml"), profile_name, cfg_dir)

    def pick(option: Any, env_name: str, key: str, default: Any) -> tuple[Any, str]:
        return _pick(option, env, env_name, prof, key) or (default, "default")

    base_url = str(pick(options.base_url, "EXTO_BASE_URL", "base_url", DEFAULT_BASE_URL)[0])
    rate, rate_src = pick(options.rate_per_second, "EXTO_RATE", "rate", DEFAULT_RATE_PER_SECOND)
    timeout, timeout_src = pick(options.timeout_s, "EXTO_TIMEOUT", "timeout", DEFAULT_TIMEOUT_S)
    attempts, attempts_src = pick(None, "EXTO_MAX_ATTEMPTS", "max_attempts", DEFAULT_MAX_ATTEMPTS)
    max_wait, wait_src = pick(None, "EXTO_MAX_WAIT", "max_wait", DEFAULT_MAX_WAIT_S)
    max_total, total_src = pick(
        None, "EXTO_MAX_RETRY_TIME", "max_retry_time", DEFAULT_MAX_RETRY_TIME_S
    )
    auth_mode = str(prof.get("auth", "bearer"))
    if auth_mode not in AUTH_MODES:
        raise UsageError(f"config.toml [profiles.{profile_name}] auth: expected bearer or none")
    color = options.color or "auto"
    if color not in ("auto", "always", "never"):
        raise UsageError(f"--color: expected auto, always or never, got {color!r}")
    project = pick(options.project_id, "EXTO_PROJECT_ID", "project", None)[0]
    ca_bundle = pick(options.ca_bundle, "EXTO_CA_BUNDLE", "ca_bundle", None)[0]
    timezone = pick(None, "EXTO_TZ", "timezone", None)[0]
    return Settings(
        profile=profile_name,
        base_url=base_url.rstrip("/"),
        project_id=str(project) if project else None,
        rate_per_second=_number(rate, rate_src),
        timeout_s=_number(timeout, timeout_src, minimum=0.001),
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        headers=_headers(options, env, prof),
        auth_mode=auth_mode,
        verbose=options.verbose or options.debug or _truthy(env.get("EXTO_DEBUG")),
        debug=options.debug or _truthy(env.get("EXTO_DEBUG")),
        quiet=options.quiet,
        color=color,
        no_input=options.no_input or bool(env.get("CI")),
        timezone=str(timezone) if timezone else None,
        max_attempts=max(1, int(_number(attempts, attempts_src, minimum=1))),
        max_wait_s=_number(max_wait, wait_src),
        max_retry_time_s=_number(max_total, total_src),
        config_dir=cfg_dir,
        cache_dir=cache_dir(env),
        profile_data=prof,
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, source: str) -> float:
    """Seconds from '180d', '12h', '30m', '45s', '2w' or a plain number of seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number = value[:-1] if value[-1:] in _DURATION_UNITS else value
    try:
        amount = float(number)
    except ValueError:
        raise UsageError(
            f"{source}: not a duration: {text!r}",
            hint="use a number with s, m, h, d or w, e.g. 14d",
        ) from None
    if amount < 0 or amount != amount:
        raise UsageError(f"{source}: must not be negative, got {text!r}")
    return amount * _DURATION_UNITS[unit]


def update_profile(
    path: Path, profile: str, values: Mapping[str, Any], remove: tuple[str, ...] = ()
) -> None:
    """Set (and remove) keys of [profiles.NAME] in config.toml, keeping comments; atomic."""
    import tempfile

    import tomlkit

    try:
        document = (
            tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
        )
    except tomlkit.exceptions.ParseError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", hint="fix or remove the file") from None
    profiles = document.setdefault("profiles", tomlkit.table(is_super_table=True))
    table = profiles.setdefault(profile, tomlkit.table())
    for key in remove:
        table.pop(key, None)
    for key, value in values.items():
        if value is not None:
            table[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(tomlkit.dumps(document))
    os.replace(tmp, path)


def parse_date(text: str, source: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{source}: expected a date YYYY-MM-DD, got {text!r}") from None
