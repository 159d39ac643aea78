"""Human-readable units, one spelling for error messages, the CLI and the web UI."""

from __future__ import annotations


def human_size(num_bytes: int | float | None) -> str:
    """Bytes as "812 B", "3.4 MB", "1.2 TB" (powers of 1024); "-" when unknown."""
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1024 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(num_bytes)


def plural(count: int, noun: str) -> str:
    """"1 episode", "2 episodes", "0 episodes" (regular English plurals: an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
