"""Errors that users cause and `bench` reports as one clear line (CLI) or a 4xx detail (API)."""

import difflib
from typing import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """" (did you mean X or Y?)" for the nearest candidates of a mistyped name, or "" when none is near."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class BenchError(Exception):
    """Base class: the message is shown to the user as is, so it must name the problem."""


class InvalidInput(BenchError):
    """The user's input (a file, an id, an option) is malformed or inconsistent."""


class NotFound(BenchError):
    """A named dataset, version or file does not exist."""


class Conflict(BenchError):
    """The request clashes with what exists (e.g. a version that is already published)."""


class IntegrityError(BenchError):
    """Stored data does not match its manifest."""


class Unauthorized(BenchError):
    """No credentials, or credentials that are unknown or revoked."""


class Forbidden(BenchError):
    """The caller is known but may not do this (e.g. publish in someone else's namespace)."""


class PayloadTooLarge(BenchError):
    """An upload over the server's size limit."""


class RateLimited(BenchError):
    """Too many requests from one token (or one anonymous client) in the current window."""
