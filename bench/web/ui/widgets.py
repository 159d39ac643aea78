"""What the UI's pages share: API reads that show errors in the page, pagination, tables and charts."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.errors import BenchError, NotFound
from bench.web.ui.api import get, get_text, server_url


PAGE_SIZE = 50


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def page_offset(key: str) -> int:
    """The offset of the page the reader chose (kept in the session), so one request fetches the page."""
    return (int(st.session_state.get(key, 1)) - 1) * PAGE_SIZE


def pager(total: int, key: str) -> None:
    """The page chooser, drawn once the total is known (a change re-runs the page with the new offset)."""
    pages = max(1, -(-total // PAGE_SIZE))
    if pages > 1:
        st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=min(st.session_state.get(key, 1), pages),
                        key=key)


def fetch(path: str, **params: Any) -> Any | None:
    """A GET whose failure is shown on the page instead of a stack trace."""
    try:
        return get(path, **params)
    except NotFound as exc:
        st.warning(str(exc))
    except BenchError as exc:
        st.error(f"{server_url()}: {exc}")
    return None


def fetch_text(path: str) -> str | None:
    try:
        return get_text(path)
    except BenchError as exc:
        st.warning(str(exc))
        return None


def histogram_chart(histogram: dict[str, Any], label: str) -> alt.Chart:
    edges = histogram["edges"]
    frame = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "episodes": histogram["counts"]})
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("from:Q", title=label, bin="binned"), x2="to:Q", y=alt.Y("episodes:Q", title="episodes"),
        tooltip=["from", "to", "episodes"]).properties(height=220)
