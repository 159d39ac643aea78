"""The Runs and Run pages: runs with their results, and one run's curves and record."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.web.ui.api import page_link, public_url
from bench.web.ui.widgets import PAGE_SIZE, fetch, markdown_table, page_offset, pager


# -- runs ---------------------------------------------------------------------------------------------------
def _headline(values: dict[str, Any] | None) -> str:
    if not values:
        return "-"
    for metric, label in (("normalized_score", "score"), ("success_rate", "success"), ("return", "return")):
        if values.get(metric) is not None:
            return f"{label} {values[metric]:.3g}"
    return "-"


def runs_page() -> None:
    st.title("Runs")
    columns = st.columns(3)
    algorithm = columns[0].text_input("Algorithm", value=st.query_params.get("algorithm", ""))
    dataset = columns[1].text_input("Dataset", value=st.query_params.get("dataset", ""))
    status = columns[2].selectbox("Status", ["any", "completed", "failed", "running", "interrupted"])
    filters = dict(algorithm=algorithm or None, dataset=dataset or None, status=None if status == "any" else status)
    result = fetch("/runs", **filters, limit=PAGE_SIZE, offset=page_offset("runs-page"))
    if result is None:
        return
    st.caption(f"{result['total']} runs")
    rows = []
    for run in result["items"]:
        results = run.get("results") or {}
        offline = ((results.get("offline") or {}).get("final"))
        online = ((results.get("online") or {}).get("final"))
        rows.append([f"[{run['id']}]({page_link('run', id=run['id'])})", run["algorithm"], run["dataset_id"], run["seed"],
                     run["status"], _headline(offline), _headline(online), run.get("owner") or "-"])
    if rows:
        st.markdown(markdown_table(["run", "algorithm", "dataset", "seed", "status", "offline", "online", "by"], rows))
    pager(result["total"], "runs-page")


def run_page() -> None:
    run_id = st.query_params.get("id")
    if not run_id:
        st.title("Run")
        listing = fetch("/runs", limit=200) or {"items": []}
        labels = {run["id"]: f"{run['id']}: {run['algorithm']} on {run['dataset_id']}, seed {run['seed']} ({run['status']})"
                  for run in listing["items"]}
        if not labels:
            st.info("No runs yet: `bench evaluate ALGO DATASET` makes some, `bench runs push` shares them.")
            return
        run_id = st.selectbox("Run", [""] + list(labels), format_func=lambda i: labels.get(i, "choose a run ..."),
                              key="run-pick")
        if not run_id:
            return
        st.query_params["id"] = run_id
    run = fetch(f"/runs/{run_id}")
    if run is None:
        return
    st.title(f"Run {run['id']}")
    st.caption(f"{run['algorithm']} on {run['dataset_id']}, seed {run['seed']}: {run['status']}")
    curves = fetch(f"/runs/{run_id}/curves", kind="eval") or []
    offline_steps = int(run["plan"].get("offline_steps") or 0)
    if curves:
        metrics = [m for m in ("normalized_score", "success_rate", "stage_progress", "return")
                   if any(p.get(m) is not None for p in curves)]
        metric = st.radio("Metric", metrics, horizontal=True)
        if "success_rate" not in metrics:
            st.caption("success: - (the environment reports no success, so there is no rate to show)")
        # The dissertation's figures: the offline phase, then the online phase on one axis.
        frame = pd.DataFrame([{"step": p["step"] + (offline_steps if p["phase"] == "online" else 0), "phase": p["phase"],
                               metric: p.get(metric)} for p in curves])
        line = alt.Chart(frame).mark_line(point=True).encode(
            x=alt.X("step:Q", title="offline updates, then online environment steps"), y=f"{metric}:Q", color="phase:N")
        boundary = alt.Chart(pd.DataFrame({"step": [offline_steps]})).mark_rule(strokeDash=[4, 4]).encode(x="step:Q")
        st.altair_chart((line + boundary).properties(height=300), use_container_width=True)
    left, right = st.columns(2)
    with left:
        st.subheader("Provenance")
        st.markdown(markdown_table(["", ""], [
            ["dataset", f"[{run['dataset_id']}]({page_link('dataset', id=run['dataset_id'])})"],
            ["content sha256", f"`{run['dataset_content_sha256']}`"], ["config hash", f"`{run['config_hash']}`"],
            ["code version", run.get("code_version") or "-"], ["host", run.get("host") or "-"],
            ["published by", run.get("owner") or "-"], ["finished", run.get("finished_at") or "-"]]))
        st.subheader("Plan")
        st.json(run["plan"], expanded=False)
    with right:
        st.subheader("Config")
        st.json(run["config"])
        artifacts = (run.get("results") or {}).get("artifacts") or []
        if artifacts:
            # Pixel runs: reconstructions (top: data, bottom: decoded) and goals imagined for held-out
            # scenes (top row s_0, below: samples), as the dissertation's Figures 42 and 47.
            st.subheader("Artifacts")
            for path in artifacts:
                name = path.rsplit("/", 1)[-1]
                st.image(public_url(f"/runs/{run_id}/artifacts/{name}"), caption=name)
        if run.get("error"):
            st.error(run["error"])
