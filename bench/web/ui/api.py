"""The UI's view of the API: cached GETs through the same client the CLI uses, and browser-facing URLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import streamlit as st

from bench.platform.settings import Settings
from bench.web.client import Client


def server_url() -> str:
    """The API this UI shows: ``bench serve ui --api URL`` passes it as BENCH_SERVER."""
    return (Settings.load().server or "http://127.0.0.1:8000").rstrip("/")


@st.cache_resource
def _client(url: str) -> Client:
    return Client(url, token=None, timeout=60)


@st.cache_data(ttl=15, show_spinner=False)
def get(path: str, **params: Any) -> Any:
    """A GET of public data, cached for a few seconds (pages re-run on every widget change)."""
    return _client(server_url()).get_json(path, **params)


@st.cache_data(ttl=15, show_spinner=False)
def get_text(path: str) -> str:
    return _client(server_url()).request("GET", path).text


def dataset_path(dataset_id: str) -> str:
    return f"/datasets/{quote(dataset_id, safe='/')}"


def public_url(path: str, **params: Any) -> str:
    """A URL the browser fetches directly from the API (downloads, frames)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    base = (Settings.load().public_api_url or server_url()).rstrip("/")
    return f"{base}/api/v1{path}" + (f"?{query}" if query else "")


def page_link(page: str, **params: Any) -> str:
    """A link to another page of this UI with query parameters (the dataset, run, suite shown)."""
    return f"/{page}?{urlencode(params, safe='/')}"
