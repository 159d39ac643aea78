"""The Leaderboards page: ranked tables with intervals, aggregates and performance profiles."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.leaderboards.render import footnote, table_rows
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
    if rows:
        rows = [[f"[{row[0]}]({page_link('runs', algorithm=row[0])})", *row[1:]] for row in rows]
        st.markdown(markdown_table(header, rows))
    else:
        st.info("No completed runs on these datasets yet.")
    st.caption(footnote(board))
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
