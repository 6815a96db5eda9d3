"""Login, status and logout: what `exto auth` does, without the CLI."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exto_cli.config import Settings, update_profile
from exto_cli.credentials import FoundToken, Keyring, find_token, stored_token, token_file
from exto_cli.credentials import write_token_file as _write_file
from exto_cli.errors import AuthError

TOKEN_LIFETIME_DAYS = 180  # docs/exto-api.md §3.3
WARN_DAYS = 14
BUILD_INFO_PATH = "/api/v1/build/info"


@dataclass(frozen=True)
class Expiry:
    date: dt.date
    basis: str  # "given" (chosen when the key was made), "claimed" (JWT exp), "estimated"

    def days_left(self, today: dt.date) -> int:
        return (self.date - today).days


def jwt_expiry(token: str) -> dt.date | None:
    """The `exp` claim of a JWT, read without verifying; None for opaque tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC).date()
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def token_expiry(found: FoundToken, settings: Settings, env: Mapping[str, str]) -> Expiry | None:
    """What is known of when the token stops working, best source first."""
    if found.kind == "environment":
        given = _date(env.get("EXTO_TOKEN_EXPIRES", "")) if env.get("EXTO_TOKEN_EXPIRES") else None
        if given is not None:
            return Expiry(given, "given")
        claimed = jwt_expiry(found.token)
        return Expiry(claimed, "claimed") if claimed else None
    profile = settings.profile_data
    stored = _date(profile.get("expires")) if profile.get("expires") else None
    if stored is not None and profile.get("expires_basis") == "given":
        return Expiry(stored, "given")
    claimed = jwt_expiry(found.token)
    if claimed is not None:
        return Expiry(claimed, "claimed")
    return Expiry(stored, "estimated") if stored is not None else None


def expiry_warning(expiry: Expiry | None, today: dt.date, profile: str) -> str | None:
    if expiry is None:
        return None
    left = expiry.days_left(today)
    if left < 0:
        return f"the token expired on {expiry.date} ({expiry.basis}); run: exto auth login --profile {profile}"
    if left <= WARN_DAYS:
        return (
            f"the token expires in {left} day{'s' if left != 1 else ''} ({expiry.date}, "
            f"{expiry.basis}); make a new key in Exto and run: exto auth login --profile {profile}"
        )
    return None


@dataclass
class LoginResult:
    stored_in: str
    expiry: Expiry
    verified: bool
    warnings: list[str] = field(default_factory=list)


def login(
    settings: Settings,
    token: str,
    *,
    expires: dt.date | None,
    verify: Callable[[str], None] | None,
    insecure_storage: bool,
    keyring: Keyring,
    today: dt.date,
) -> LoginResult:
    """Check where it can be stored, verify it, store it, then record the profile."""
    if not insecure_storage:
        keyring.check_usable()
    if verify is not None:
        verify(token)
    warnings: list[str] = []
    if insecure_storage:
        path = token_file(settings)
        _write_file(path, token)
        stored_in = f"file {path} (mode 0600)"
        # A keyring entry would shadow the file on lookup: remove it, if a keyring answers.
        if keyring.refusal() is None:
            try:
                keyring.delete(settings.profile)
            except AuthError as exc:
                warnings.append(f"could not remove the keyring entry: {exc.message}")
    else:
        keyring.set(settings.profile, token)
        stored_in = f"keyring {keyring.backend_name} (service exto-cli, user {settings.profile})"
        token_file(settings).unlink(missing_ok=True)
    expiry = (
        Expiry(expires, "given")
        if expires
        else Expiry(today + dt.timedelta(days=TOKEN_LIFETIME_DAYS), "estimated")
    )
    update_profile(
        settings.config_file,
        settings.profile,
        {
            "base_url": settings.base_url,
            "project": settings.project_id,
            "login_date": today.isoformat(),
            "expires": expiry.date.isoformat(),
            "expires_basis": expiry.basis,
        },
    )
    return LoginResult(stored_in, expiry, verify is not None, warnings)


def logout(settings: Settings, keyring: Keyring) -> list[str]:
    """Remove the profile's token from every store; return where it was found."""
    removed = []
    if keyring.refusal() is None and keyring.delete(settings.profile):
        removed.append(f"keyring {keyring.backend_name}")
    path = token_file(settings)
    if path.exists():
        path.unlink()
        removed.append(f"file {path}")
    if settings.config_file.exists() and settings.profile in _profiles(settings):
        update_profile(
            settings.config_file,
            settings.profile,
            {},
            remove=("login_date", "expires", "expires_basis"),
        )
    return removed


def _profiles(settings: Settings) -> Mapping[str, Any]:
    from exto_cli.config import load_config

    profiles = load_config(settings.config_file).get("profiles", {})
    return profiles if isinstance(profiles, dict) else {}


def status(
    settings: Settings, env: Mapping[str, str], keyring: Keyring, today: dt.date
) -> dict[str, Any]:
    """What `exto auth status` shows; the token itself only as its last four characters."""
    found = find_token(settings, env, keyring)
    if found is None:
        raise AuthError(
            f"no token for profile {settings.profile!r}",
            hint=f"run: exto auth login --profile {settings.profile} (or set EXTO_TOKEN)",
        )
    expiry = token_expiry(found, settings, env)
    warnings = []
    warning = expiry_warning(expiry, today, settings.profile)
    if warning:
        warnings.append(warning)
    if found.kind == "environment" and settings.auth_mode != "sandbox":
        try:
            shadowed = stored_token(settings, keyring)
        except AuthError as exc:  # a locked or hung keyring must not fail an env-token status
            warnings.append(f"could not check the keyring for a shadowed token: {exc.message}")
        else:
            if shadowed is not None:
                warnings.append(f"EXTO_TOKEN shadows the token stored in the {shadowed.source}")
    return {
        "profile": settings.profile,
        "base_url": settings.base_url,
        "project": settings.project_id,
        "source": found.source,
        "token": "…" + found.token[-4:] if len(found.token) > 8 else "…",
        "expires": expiry.date.isoformat() if expiry else None,
        "days_left": expiry.days_left(today) if expiry else None,
        "expiry_basis": expiry.basis if expiry else "unknown",
        "warnings": warnings,
    }
