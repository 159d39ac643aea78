"""The Leaderboards page: ranked tables with intervals, aggregates and performance profiles."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.leaderboards.render import footnote, phase_stat, table_rows
from bench.web.ui.api import page_link
from bench.web.ui.widgets import fetch, markdown_table


RUN_LINKS = 10  # per leaderboard entry; the rest are one click away on the Runs page


# -- leaderboards --------------------------------------------------------------------------------------------
def leaderboards_page() -> None:
    st.title("Leaderboards")
    suites = fetch("/leaderboards")
    if not suites:
        return
    names = [suite["name"] for suite in suites]
    wanted = st.query_params.get("name")
    name = st.selectbox("Suite", names, index=names.index(wanted) if wanted in names else 0)
    board = fetch(f"/leaderboards/{name}")
    if board is None:
        return
    spec = board["leaderboard"]
    st.subheader(spec.get("title") or spec["name"])
    if spec.get("description"):
        st.caption(spec["description"])
    header, rows = table_rows(board)
    if not rows:
        st.info("No completed runs on these datasets yet.")
        return
    st.dataframe(_ranked_frame(board), hide_index=True, use_container_width=True,
                 column_config={"runs": st.column_config.LinkColumn("runs", display_text="runs")})
    st.caption("Click a column's header to sort. " + footnote(board))
    _whisker_charts(board)
    with st.expander("As text, with intervals (the CLI's table)"):
        rows = [[f"[{row[0]}]({page_link('runs', algorithm=row[0])})", *row[1:]] for row in rows]
        st.markdown(markdown_table(header, rows))
    aggregate = (board.get("aggregate") or {}).get("algorithms") or []
    if aggregate:
        _aggregate_charts(aggregate, spec)
    for block in board["datasets"]:
        with st.expander(f"{block['dataset']}: {len(block['entries'])} entries"):
            for entry in block["entries"]:
                runs = ", ".join(f"[{run_id}]({page_link('run', id=run_id)})" for run_id in entry["runs"][:RUN_LINKS])
                if len(entry["runs"]) > RUN_LINKS:
                    more = page_link("runs", algorithm=entry["algorithm"], dataset=entry["dataset"])
                    runs += f" and [{len(entry['runs']) - RUN_LINKS} more]({more})"
                st.markdown(f"**{entry['rank']}. {entry['algorithm']}** (config `{entry['config_hash'][:12]}`, "
                            f"{entry['n']} seeds{', marked: fewer than ' + str(spec['min_seeds']) if entry['marked'] else ''}) "
                            f"on `{entry['dataset']}` (content `{entry['dataset_content_sha256'][:12]}`), "
                            f"code {', '.join(entry['code_versions']) or '-'}: runs {runs}")


def _phases(spec: dict[str, Any]) -> tuple[str, ...]:
    return ("offline", "online") if spec.get("phase", "both") == "both" else (spec["phase"],)


def _phase_value(entry: dict[str, Any], phase: str, metric: str) -> tuple[float | None, list[float] | None, list[float]]:
    """(value, 95% interval, per-seed values) of one entry in one phase, as the text table states it."""
    stat = phase_stat(entry, phase, metric)
    if stat is None:
        return None, None, []
    return stat[0], stat[1], (entry.get(phase) or {}).get("values", [])


def _ranked_frame(board: dict[str, Any]) -> pd.DataFrame:
    """One row per algorithm, numbers not text, so that sorting a column ranks by it: per dataset its
    offline and online value (percent for success rates), then the suite's aggregates."""
    spec = board["leaderboard"]
    scale = 100.0 if spec["metric"] == "success_rate" else 1.0
    rows: dict[str, dict[str, Any]] = {}
    for block in board["datasets"]:
        for entry in block["entries"]:
            row = rows.setdefault(entry["algorithm"], {"algorithm": entry["algorithm"], "seeds": 0,
                                                       "runs": page_link("runs", algorithm=entry["algorithm"])})
            for phase in _phases(spec):
                value, _, _ = _phase_value(entry, phase, spec["metric"])
                key = f"{block['dataset']} {phase}"
                if value is not None and key not in row:  # the best-ranked config of each algorithm
                    row[key] = round(scale * value, 2)
            row["seeds"] = max(row["seeds"], entry["n"])
    for aggregate in (board.get("aggregate") or {}).get("algorithms") or []:
        row = rows.get(aggregate["algorithm"])
        for phase in ("offline", "online"):
            for which in ("mean", "iqm"):
                stat = (aggregate.get(phase) or {}).get(which)
                if row is not None and stat:
                    row[f"{which.upper() if which == 'iqm' else which} {phase}"] = round(scale * stat["value"], 2)
    frame = pd.DataFrame(list(rows.values()))
    numbers = [c for c in frame.columns if c not in ("algorithm", "runs", "seeds")]
    frame = frame.sort_values(numbers[-1], ascending=False, na_position="last") if numbers else frame
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def _whisker_charts(board: dict[str, Any]) -> None:
    """Per dataset: each algorithm's value with its two-sided 95% interval and its seeds as points; offline and
    online side by side, each labelled, never one mixed 'final' axis."""
    spec = board["leaderboard"]
    scale = 100.0 if spec["metric"] == "success_rate" else 1.0
    marks, seeds = [], []
    for block in board["datasets"]:
        for entry in block["entries"]:
            for phase in _phases(spec):
                value, interval, values = _phase_value(entry, phase, spec["metric"])
                if value is None:
                    continue
                low, high = interval if interval else (value, value)
                label = f"{entry['algorithm']} ({entry['config_hash'][:6]})"
                marks.append({"dataset": block["dataset"], "phase": phase, "entry": label, "rank": entry["rank"],
                              "value": scale * value, "low": scale * low, "high": scale * high})
                seeds += [{"dataset": block["dataset"], "phase": phase, "entry": label, "value": scale * v}
                          for v in values]
    if not marks:
        return
    axis = "success rate (%)" if spec["metric"] == "success_rate" else spec["metric"]
    order = list(dict.fromkeys(m["entry"] for m in sorted(marks, key=lambda m: m["rank"])))
    # One table for every layer, so that the facets split all of them by dataset and phase.
    frame = pd.DataFrame([{**m, "kind": "entry"} for m in marks] + [{**p, "kind": "seed"} for p in seeds])
    colour = alt.Color("entry:N", legend=None, scale=alt.Scale(scheme="tableau10"))
    y = alt.Y("entry:N", sort=order, title=None)
    entries = alt.Chart().transform_filter(alt.datum.kind == "entry").encode(y=y, color=colour)
    whiskers = entries.mark_rule(size=2).encode(x=alt.X("low:Q", title=axis), x2="high:Q")
    low_caps = entries.mark_tick(thickness=2, size=12).encode(x="low:Q")
    high_caps = entries.mark_tick(thickness=2, size=12).encode(x="high:Q")
    centre = entries.mark_point(filled=True, size=90, shape="diamond").encode(
        x="value:Q", tooltip=["entry", "phase", alt.Tooltip("value:Q", format=".2f"),
                              alt.Tooltip("low:Q", format=".2f"), alt.Tooltip("high:Q", format=".2f")])
    dots = alt.Chart().transform_filter(alt.datum.kind == "seed").mark_circle(size=30, opacity=0.55).encode(
        y=y, x="value:Q", color=colour)
    chart = alt.layer(whiskers, low_caps, high_caps, centre, dots, data=frame).properties(
        height=28 * len(order) + 30, width=260).facet(
        row=alt.Row("dataset:N", title=None),
        column=alt.Column("phase:N", title=None, sort=["offline", "online"]))
    st.altair_chart(chart, use_container_width=False)
    st.caption("Diamond: the mean over seeds (the pooled rate for success); whiskers: its 95% interval; dots: "
               "the seeds. Offline (before any practice) and online (after it) are separate panels.")


def _aggregate_charts(aggregate: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    scale = 100.0 if spec["metric"] == "success_rate" else 1.0
    bars = []
    for row in aggregate:
        for phase in ("offline", "online"):
            stat = row.get(phase)
            if not stat:
                continue
            for which in ("mean", "iqm"):
                bars.append({"algorithm": row["algorithm"], "phase": phase, "aggregate": which.upper(),
                             "value": scale * stat[which]["value"], "low": scale * stat[which]["ci95"][0],
                             "high": scale * stat[which]["ci95"][1]})
    if not bars:
        return
    frame = pd.DataFrame(bars)
    base = alt.Chart(frame).encode(y=alt.Y("algorithm:N", title=None), yOffset="phase:N", color="phase:N")
    chart = (base.mark_bar().encode(x=alt.X("value:Q", title=spec["metric"]))
             + base.mark_rule(color="black").encode(x="low:Q", x2="high:Q"))
    st.altair_chart(chart.properties(height=40 * len(aggregate) + 40).facet(column="aggregate:N"),
                    use_container_width=False)
    profiles = []
    for row in aggregate:
        phase = "online" if row.get("online") else "offline"
        profile = (row.get(phase) or {}).get("profile")
        if profile:
            for tau, fraction, low, high in zip(profile["tau"], profile["fraction"], profile["ci95_low"], profile["ci95_high"]):
                profiles.append({"algorithm": row["algorithm"], "threshold": scale * tau, "fraction": fraction,
                                 "low": low, "high": high})
    if profiles:
        frame = pd.DataFrame(profiles)
        base = alt.Chart(frame).encode(x=alt.X("threshold:Q", title=f"{spec['metric']} threshold"), color="algorithm:N")
        st.altair_chart((base.mark_area(opacity=0.2).encode(y="low:Q", y2="high:Q")
                         + base.mark_line().encode(y=alt.Y("fraction:Q", title="fraction of runs above")))
                        .properties(height=260, title="performance profile (final phase shown)"), use_container_width=True)
