"""Token lookup: EXTO_TOKEN, then the OS keyring (service ``exto-cli``), then the opt-in file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from exto_cli.config import Settings
from exto_cli.errors import AuthError

KEYRING_SERVICE = "exto-cli"


def token_file(settings: Settings) -> Path:
    return settings.config_dir / "credentials" / settings.profile


def read_keyring(profile: str) -> str | None:
    import keyring
    import keyring.errors

    try:
        return keyring.get_password(KEYRING_SERVICE, profile)
    except keyring.errors.KeyringError:
        return None


def find_token(settings: Settings, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(token, source) from the first store that has one, or None."""
    if env.get("EXTO_TOKEN", "").strip():
        return env["EXTO_TOKEN"].strip(), "environment (EXTO_TOKEN)"
    if settings.auth_mode == "sandbox":
        from exto_cli.sandbox.adapter import sandbox_token

        return sandbox_token(settings, env), "sandbox"
    stored = read_keyring(settings.profile)
    if stored:
        return stored, "keyring"
    path = token_file(settings)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), f"file {path}"
    return None


def token_provider(settings: Settings, env: Mapping[str, str]) -> Callable[[], str]:
    def provide() -> str:
        found = find_token(settings, env)
        if found is None:
            raise AuthError(
                f"no token for profile {settings.profile!r}",
                hint=f"run: exto auth login --profile {settings.profile} (or set EXTO_TOKEN)",
            )
        return found[0]

    return provide
