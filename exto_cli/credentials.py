"""Token lookup and storage: EXTO_TOKEN, then the OS keyring, then the opt-in 0600 file.

The keyring is never silently replaced by plaintext: unusable backends (fail, null,
keyrings.alt) are refused for storage, every keyring call is time-bounded, and a locked or
hung keyring is an error with a hint, not a reason to fall back.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from exto_cli.config import Settings
from exto_cli.errors import AuthError, UsageError

KEYRING_SERVICE = "exto-cli"
DEFAULT_KEYRING_TIMEOUT_S = 10.0
_REFUSED_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
_T = TypeVar("_T")


@dataclass(frozen=True)
class FoundToken:
    token: str
    kind: str  # "environment" | "keyring" | "file" | "sandbox"
    detail: str  # where exactly, for `auth status`

    @property
    def source(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind


def keyring_timeout_s(env: Mapping[str, str]) -> float:
    raw = env.get("EXTO_KEYRING_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_KEYRING_TIMEOUT_S
    except ValueError:
        raise UsageError(f"EXTO_KEYRING_TIMEOUT: not a number: {raw!r}") from None


def validate_token(raw: str) -> str:
    """Strip surrounding whitespace; refuse inner whitespace or controls (never echoing it)."""
    token = raw.strip()
    if not token:
        raise UsageError("the token is empty")
    for position, ch in enumerate(token, start=1):
        if ch.isspace() or ord(ch) < 32 or ord(ch) == 127:
            kind = "whitespace" if ch.isspace() else "a control character"
            raise UsageError(
                f"the token has {kind} at position {position} of {len(token)}",
                hint="paste the key exactly as Exto showed it, on one line",
            )
    return token


class Keyring:
    """The OS keyring through the keyring package, every call bounded in time."""

    def __init__(self, timeout_s: float = DEFAULT_KEYRING_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def _call(self, what: str, fn: Callable[..., _T], *args: Any) -> _T:
        import keyring.errors

        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=target, name=f"keyring-{what}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise AuthError(
                f"the keyring did not answer within {self.timeout_s:g} s ({what})",
                hint="unlock or restart your keyring, or set EXTO_TOKEN for this shell",
            )
        error = box.get("error")
        if isinstance(error, keyring.errors.KeyringLocked):
            raise AuthError(
                f"the keyring is locked ({what})",
                hint="unlock it (log in to the desktop, or run gnome-keyring-daemon --unlock), "
                "or set EXTO_TOKEN",
            )
        if isinstance(error, keyring.errors.NoKeyringError):
            raise AuthError(f"no usable keyring ({what})", hint=_NO_KEYRING_HINT)
        if isinstance(error, keyring.errors.KeyringError):
            raise AuthError(f"the keyring failed ({what}): {error}", hint=_NO_KEYRING_HINT)
        if error is not None:
            raise AuthError(
                f"the keyring failed ({what}): {type(error).__name__}: {error}",
                hint=_NO_KEYRING_HINT,
            )
        return box.get("value")  # type: ignore[return-value]

    @property
    def backend(self) -> Any:
        import keyring

        return keyring.get_keyring()

    @property
    def backend_name(self) -> str:
        backend = self.backend
        return f"{type(backend).__module__}.{type(backend).__qualname__}"

    def refusal(self) -> str | None:
        """Why this backend must not store a token, or None when it may."""
        backend = self.backend
        inner = getattr(backend, "backends", None)
        candidates = list(inner) if inner is not None else [backend]
        usable = [b for b in candidates if not type(b).__module__.startswith(_REFUSED_MODULES)]
        if not usable:
            return f"the keyring backend {self.backend_name} does not store secrets safely"
        return None

    def check_usable(self) -> None:
        reason = self.refusal()
        if reason is not None:
            raise AuthError(reason, hint=_NO_KEYRING_HINT)

    def get(self, profile: str) -> str | None:
        import keyring

        return self._call("read", keyring.get_password, KEYRING_SERVICE, profile)

    def set(self, profile: str, token: str) -> None:
        import keyring

        self._call("write", keyring.set_password, KEYRING_SERVICE, profile, token)

    def delete(self, profile: str) -> bool:
        import keyring
        import keyring.errors

        def delete() -> bool:
            try:
                keyring.delete_password(KEYRING_SERVICE, profile)
            except keyring.errors.PasswordDeleteError:
                return False
            return True

        return self._call("delete", delete)


_NO_KEYRING_HINT = (
    "use EXTO_TOKEN, unlock or install a Secret Service (gnome-keyring, KWallet), "
    "or store the token in a 0600 file with: exto auth login --insecure-storage"
)


def token_file(settings: Settings) -> Path:
    return settings.config_dir / "credentials" / settings.profile


def write_token_file(path: Path, token: str) -> None:
    """0600 file in a 0700 directory whatever the umask, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stored_token(settings: Settings, keyring: Keyring) -> FoundToken | None:
    """The token stored for the profile: keyring first, then the opt-in file."""
    if keyring.refusal() is None:
        stored = keyring.get(settings.profile)
        if stored:
            return FoundToken(stored, "keyring", keyring.backend_name)
    path = token_file(settings)
    if path.is_file():
        return FoundToken(path.read_text(encoding="utf-8").strip(), "file", str(path))
    return None


def find_token(
    settings: Settings,
    env: Mapping[str, str],
    keyring: Keyring | None = None,
    *,
    mint: Callable[[], str] | None = None,
) -> FoundToken | None:
    """The token this run uses: EXTO_TOKEN, then the sandbox's own, then the stores.

    ``mint`` is the sandbox's minting function when the caller already has the app open.
    """
    if env.get("EXTO_TOKEN", "").strip():
        return FoundToken(env["EXTO_TOKEN"].strip(), "environment", "EXTO_TOKEN")
    if settings.auth_mode == "sandbox":
        from exto_cli.sandbox.adapter import sandbox_token

        token = mint() if mint is not None else sandbox_token(settings, env)
        return FoundToken(token, "sandbox", settings.base_url)
    return stored_token(settings, keyring or Keyring(keyring_timeout_s(env)))


def require_token(
    settings: Settings, env: Mapping[str, str], *, mint: Callable[[], str] | None = None
) -> FoundToken:
    found = find_token(settings, env, mint=mint)
    if found is None:
        raise AuthError(
            f"no token for profile {settings.profile!r}",
            hint=f"run: exto auth login --profile {settings.profile} (or set EXTO_TOKEN)",
        )
    return found
