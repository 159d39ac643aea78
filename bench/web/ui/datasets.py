"""The Datasets page: search with filters, one page of results at a time."""

from __future__ import annotations

import streamlit as st

from bench.datasets.catalogue import environment_label
from bench.platform.units import human_size
from bench.web.ui.api import page_link, server_url
from bench.web.ui.widgets import PAGE_SIZE, fetch, markdown_table, page_offset, pager


KINDS = ["any", "demos", "play", "random", "mixed", "real-robot"]


SIZES = {"any": (None, None), "< 10k steps": (None, 9_999), "10k - 100k steps": (10_000, 100_000),
         "100k - 1M steps": (100_000, 1_000_000), "> 1M steps": (1_000_001, None)}


# -- datasets -------------------------------------------------------------------------------------------
def datasets_page() -> None:
    st.title("Datasets")
    columns = st.columns([3, 2, 2, 1, 1])
    given = st.query_params  # filters can come in the address, so a search can be shared as a link
    text = columns[0].text_input("Search", value=given.get("q", ""), placeholder="name or description")
    namespace = columns[1].text_input("Namespace", value=given.get("namespace", ""), placeholder="e.g. metaworld")
    env = columns[2].text_input("Environment", value=given.get("env", ""), placeholder="e.g. metaworld/drawer-open")
    kind = columns[3].selectbox("Kind", KINDS, index=KINDS.index(given["kind"]) if given.get("kind") in KINDS else 0)
    size = columns[4].selectbox("Size", list(SIZES), index=list(SIZES).index(given["size"]) if given.get("size") in SIZES else 0)
    min_steps, max_steps = SIZES[size]
    # The address follows the filters, so a copied link reproduces this view.
    wanted = {"q": text, "namespace": namespace, "env": env, "kind": "" if kind == "any" else kind,
              "size": "" if size == list(SIZES)[0] else size}
    for key, value in wanted.items():
        if value and given.get(key) != value:
            st.query_params[key] = value
        elif not value and key in given:
            del st.query_params[key]
    filters = dict(q=text or None, namespace=namespace or None, env=env or None,
                   tag=None if kind == "any" else kind, min_steps=min_steps, max_steps=max_steps)
    result = fetch("/datasets", **filters, limit=PAGE_SIZE, offset=page_offset("datasets-page"))
    if result is None:
        return
    st.caption(f"{result['total']} datasets (latest version of each), from {server_url()}")
    rows = [[f"[{item['id']}]({page_link('dataset', id=item['id'])})", item["episodes"], item["steps"],
             human_size(item["size_bytes"]), ", ".join(item["tags"]) or "-", environment_label(item.get("env")),
             (item["published_at"] or "")[:10]] for item in result["items"]]
    if rows:
        st.markdown(markdown_table(["dataset", "episodes", "steps", "size", "tags", "environment", "published"], rows))
    else:
        st.info("No dataset matches these filters.")
    pager(result["total"], "datasets-page")
