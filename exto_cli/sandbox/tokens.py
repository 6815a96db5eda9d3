"""Sandbox tokens: JWTs signed with HS256 by the sandbox's private key.

Real Exto tokens are opaque; the sandbox's carry an ``exp`` claim so that expiry can be staged
and read (``exto auth status`` marks such an expiry "claimed"). Rotating the key invalidates
every token minted before, as a change of Exto's Access Token Private Key does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

DEFAULT_LIFETIME_S = 180 * 86400


class InvalidTokenError(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> str:
    return secrets.token_hex(32)


def mint(
    key: str,
    *,
    subject: str,
    tenant: str,
    lifetime_s: float = DEFAULT_LIFETIME_S,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": subject,
        "tid": tenant,
        "iat": issued,
        "exp": issued + int(lifetime_s),
        "jti": secrets.token_hex(8),
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def verify(key: str, token: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of a valid token; InvalidTokenError for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("malformed")
    signing_input = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    try:
        signature = _unb64(parts[2])
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise InvalidTokenError("malformed") from None
    if not hmac.compare_digest(signature, expected):
        raise InvalidTokenError("bad signature")
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise InvalidTokenError("no expiry")
    if claims["exp"] <= (now if now is not None else time.time()):
        raise InvalidTokenError("expired")
    return claims
