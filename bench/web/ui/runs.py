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
    _compare(result["items"])


def _compare(items: list[dict[str, Any]]) -> None:
    """Several runs' evaluation curves on one chart: per algorithm and dataset, the mean over the chosen seeds
    with a band from the lowest to the highest seed."""
    labels = {run["id"]: f"{run['id']}: {run['algorithm']} on {run['dataset_id']}, seed {run['seed']}" for run in items}
    chosen = st.multiselect("Compare runs (their curves on one chart, seeds as a band)", list(labels),
                            format_func=labels.get, key="compare-runs")
    if not chosen:
        return
    points = []
    for run in (r for r in items if r["id"] in chosen):
        offline_steps = int((run.get("plan") or {}).get("offline_steps") or 0)
        for point in fetch(f"/runs/{run['id']}/curves", kind="eval") or []:
            points.append({"group": f"{run['algorithm']} on {run['dataset_id']}", "seed": run["seed"],
                           "step": point["step"] + (offline_steps if point["phase"] == "online" else 0),
                           **{m: point.get(m) for m in ("normalized_score", "success_rate", "return")}})
    if not points:
        st.info("These runs have no evaluations yet.")
        return
    frame = pd.DataFrame(points)
    metrics = [m for m in ("normalized_score", "success_rate", "return") if frame[m].notna().any()]
    metric = st.radio("Metric", metrics, horizontal=True, key="compare-metric")
    summary = frame.groupby(["group", "step"])[metric].agg(["mean", "min", "max", "count"]).reset_index()
    base = alt.Chart(summary).encode(x=alt.X("step:Q", title="offline updates, then online environment steps"),
                                     color=alt.Color("group:N", scale=alt.Scale(scheme="tableau10")))
    band = base.mark_area(opacity=0.2).encode(y="min:Q", y2="max:Q")
    line = base.mark_line(point=True).encode(y=alt.Y("mean:Q", title=metric),
                                             tooltip=["group", "step", "mean", "min", "max", "count"])
    st.altair_chart((band + line).properties(height=320), use_container_width=True)
    st.caption("Line: the mean over the chosen runs of each algorithm and dataset; band: their lowest and highest.")


def _results_table(run: dict[str, Any]) -> None:
    results = run.get("results") or {}
    rows = []
    for phase in ("offline", "online"):
        for which in ("final", "best"):
            point = (results.get(phase) or {}).get(which)
            if point:
                rows.append([phase, which, *[("-" if point.get(m) is None else f"{point[m]:.4g}")
                                            for m in ("return", "normalized_score", "success_rate", "stage_progress")]])
    if rows:
        st.subheader("Results")
        st.markdown(markdown_table(["phase", "evaluation", "return", "normalized score", "success rate",
                                    "stage progress"], rows))


def _losses(run_id: str, offline_steps: int) -> None:
    """The training losses the run logged (kind "train"): offline updates, then online steps, on one axis."""
    train = fetch(f"/runs/{run_id}/curves", kind="train") or []
    keys = sorted({k for p in train for k, v in p.items()
                   if k not in ("kind", "phase", "step") and isinstance(v, (int, float))})
    if not keys:
        return
    st.subheader("Training losses")
    chosen = st.multiselect("Losses", keys, default=keys[:3], key=f"losses-{run_id}")
    if not chosen:
        return
    frame = pd.DataFrame([{"step": p["step"] + (offline_steps if p["phase"] == "online" else 0),
                           "loss": f"{p['phase']}: {key}", "value": p.get(key)}
                          for p in train for key in chosen if p.get(key) is not None])
    st.altair_chart(alt.Chart(frame).mark_line().encode(
        x=alt.X("step:Q", title="offline updates, then online environment steps"), y="value:Q", color="loss:N")
        .properties(height=260), use_container_width=True)


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
        results = run.get("results") or {}
        rated = any(((results.get(phase) or {}).get(which) or {}).get("success_rate") is not None
                    for phase in ("offline", "online") for which in ("final", "best"))
        if "success_rate" not in metrics and not rated:  # the curves and the results table agree
            st.caption("success: - (the environment reports no success, so there is no rate to show)")
        # The dissertation's figures: the offline phase, then the online phase on one axis.
        frame = pd.DataFrame([{"step": p["step"] + (offline_steps if p["phase"] == "online" else 0), "phase": p["phase"],
                               metric: p.get(metric)} for p in curves])
        line = alt.Chart(frame).mark_line(point=True).encode(
            x=alt.X("step:Q", title="offline updates, then online environment steps"), y=f"{metric}:Q", color="phase:N")
        boundary = alt.Chart(pd.DataFrame({"step": [offline_steps]})).mark_rule(strokeDash=[4, 4]).encode(x="step:Q")
        st.altair_chart((line + boundary).properties(height=300), use_container_width=True)
    _results_table(run)
    _losses(run_id, offline_steps)
    st.subheader("Provenance")
    st.markdown(markdown_table(["field", "value"], [
        ["dataset", f"[{run['dataset_id']}]({page_link('dataset', id=run['dataset_id'])})"],
        ["code version", run.get("code_version") or "-"], ["host", run.get("host") or "-"],
        ["published by", run.get("owner") or "-"], ["finished", run.get("finished_at") or "-"]]))
    # Hashes whole, never clipped by a table column: they are what a reader checks.
    st.code(f"dataset content sha256  {run['dataset_content_sha256']}\nconfig hash             {run['config_hash']}",
            language=None)
    left, right = st.columns(2)
    with left:
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
