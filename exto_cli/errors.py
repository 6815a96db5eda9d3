"""Exit codes, the ExtoError tree and the translation of HTTP error answers.

The exit codes are a public interface (README table, ``tests/test_exit_codes.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    NETWORK = 5
    PARTIAL = 6
    NOT_READY = 7
    RATE_LIMITED = 8
    UNKNOWN_OUTCOME = 9
    SIGINT = 130
    SIGTERM = 143


class ExtoError(Exception):
    """An error exto reports to the user as ``error:`` / ``hint:`` lines and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: Sequence[str] = (),
        request_id: str | None = None,
        status: int | None = None,
        snippet: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details)
        self.request_id = request_id
        self.status = status
        self.snippet = list(snippet)  # shown verbatim, e.g. an expression and a caret


class UsageError(ExtoError):
    exit_code = ExitCode.USAGE


class NotFoundError(ExtoError):
    exit_code = ExitCode.NOT_FOUND


class AuthError(ExtoError):
    exit_code = ExitCode.AUTH


class NetworkError(ExtoError):
    exit_code = ExitCode.NETWORK


class PartialFailureError(ExtoError):
    exit_code = ExitCode.PARTIAL


class NotReadyError(ExtoError):
    exit_code = ExitCode.NOT_READY


class RateLimitedError(ExtoError):
    exit_code = ExitCode.RATE_LIMITED


class UnknownOutcomeError(ExtoError):
    exit_code = ExitCode.UNKNOWN_OUTCOME


class InterruptedByUserError(ExtoError):
    exit_code = ExitCode.SIGINT


class TerminatedError(ExtoError):
    exit_code = ExitCode.SIGTERM


# docs/exto-api.md §11: the server answers 500 (not 404) for an unknown master or module,
# with a detail like "ITEM_MASTER not Found." (case as written by the server).
_NOT_FOUND_DETAIL = re.compile(r"\bnot found\.?\s*$", re.IGNORECASE)


def error_body_parts(body: Any) -> tuple[str | None, list[str]]:
    """Return (summary, details) from an Exto error body; details may be a string or a list."""
    if not isinstance(body, dict):
        return None, []
    error = body.get("error")
    if not isinstance(error, dict):
        message = body.get("message")
        return (str(message) if message is not None else None), []
    summary = error.get("summary")
    detail = error.get("detail")
    if detail is None:
        details: list[str] = []
    elif isinstance(detail, list):
        details = [str(item) for item in detail]
    else:
        details = [str(detail)]
    return (str(summary) if summary is not None else None), details


def error_class_for_status(status: int, details: Sequence[str]) -> type[ExtoError]:
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitedError
    if status >= 500 and any(_NOT_FOUND_DETAIL.search(d) for d in details):
        return NotFoundError
    if status in (400, 413, 414, 422):
        return UsageError
    return ExtoError
