"""The Dataset page: card, statistics, an episode viewer with camera frames, versions and downloads."""

from __future__ import annotations

import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.datasets.catalogue import environment_label
from bench.platform.units import human_size
from bench.web.ui.api import dataset_path, page_link, public_url
from bench.web.ui.robot_logs import robot_log_section
from bench.web.ui.widgets import fetch, fetch_text, histogram_chart, markdown_table


def dataset_page() -> None:
    dataset_id = st.query_params.get("id")
    if not dataset_id:
        st.info("Choose a dataset on the Datasets page.")
        return
    info = fetch(dataset_path(dataset_id))
    if info is None:
        return
    st.title(info["id"])
    if info.get("description"):
        st.caption(info["description"])
    metrics = st.columns(5)
    metrics[0].metric("Episodes", info["episodes"])
    metrics[1].metric("Steps", info["steps"])
    metrics[2].metric("Size", human_size(info["size_bytes"]))
    metrics[3].metric("Environment", environment_label(info.get("env")))
    metrics[4].metric("Visibility", "private" if info["private"] else "public")
    is_log = "real-robot" in info["tags"]
    names = ["Card", "Statistics", "Episodes", "Versions", "Download"] + (["Robot log"] if is_log else [])
    card, statistics, episodes, versions, download, *robot = st.tabs(names)
    if robot:
        with robot[0]:
            robot_log_section(info)
    with card:
        _card(info)
    with statistics:
        _statistics(info)
    with episodes:
        _episode_viewer(info)
    with versions:
        _versions(info)
    with download:
        _downloads(info)


def _card(info: dict[str, Any]) -> None:
    text = fetch_text(dataset_path(info["id"]) + "/-/card")
    if text is None:
        return
    # Images in the card are files of the version: show them from the API, not as broken relative links.
    previews = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    st.markdown(re.sub(r"!\[[^\]]*\]\([^)]+\)", "", text))
    if previews:
        st.image([public_url(dataset_path(info["id"]) + f"/-/files/{name}") for name in previews[:6]], width=240)


def _statistics(info: dict[str, Any]) -> None:
    stats = fetch(dataset_path(info["id"]) + "/-/stats")
    if stats is None:
        return
    columns = st.columns(3)
    columns[0].metric("Mean return", f"{stats['return']['mean']:.3g}")
    columns[1].metric("Mean length", f"{stats['length']['mean']:.1f}")
    if stats["success"]:
        columns[2].metric("Success rate", f"{100 * stats['success']['rate']:.1f}%",
                          help=f"{stats['success']['successes']} of {stats['success']['episodes']} episodes")
    left, right = st.columns(2)
    left.altair_chart(histogram_chart(stats["return"]["histogram"], "episode return"), use_container_width=True)
    right.altair_chart(histogram_chart(stats["length"]["histogram"], "episode length"), use_container_width=True)


def _episode_viewer(info: dict[str, Any]) -> None:
    count = info["episodes"] or 0
    if count == 0:
        return
    index = int(st.number_input("Episode", min_value=0, max_value=count - 1, value=0, key="episode-index"))
    episode = fetch(dataset_path(info["id"]) + f"/-/episodes/{index}")
    if episode is None:
        return
    attrs = ", ".join(f"{k} {v}" for k, v in episode["attrs"].items() if v is not None)
    st.caption(f"episode {index}: {episode['length']} steps" + (f"; {attrs}" if attrs else ""))
    step = int(st.slider("Step", 0, episode["length"], 0, key=f"step-{index}"))
    plots, frames = st.columns([3, 2]) if episode["frames"] else (st.container(), None)
    if frames is not None:
        for camera, described in episode["frames"].items():
            row = min(step, described["count"] - 1)
            frames.image(public_url(dataset_path(info["id"]) + f"/-/episodes/{index}/frames/{camera}", t=row),
                         caption=f"{camera}, observation {row}", width=320)
    actions = pd.DataFrame(episode["actions"])
    actions.columns = [f"a{i}" for i in range(actions.shape[1])] if actions.ndim == 2 and actions.shape[1] else ["a0"]
    actions["step"] = range(len(actions))
    rule = alt.Chart(pd.DataFrame({"step": [step]})).mark_rule(color="red").encode(x="step:Q")
    long = actions.melt("step", var_name="dimension", value_name="action")
    plots.altair_chart(alt.Chart(long).mark_line().encode(x="step:Q", y="action:Q", color="dimension:N")
                       .properties(height=200, title="actions") + rule, use_container_width=True)
    rewards = pd.DataFrame({"step": range(len(episode["rewards"])), "reward": episode["rewards"]})
    plots.altair_chart(alt.Chart(rewards).mark_line().encode(x="step:Q", y="reward:Q")
                       .properties(height=160, title="rewards") + rule, use_container_width=True)


def _versions(info: dict[str, Any]) -> None:
    versions = fetch(dataset_path(f"{info['namespace']}/{info['name']}") + "/-/versions")
    if versions is None:
        return
    rows = [[f"[{v['id']}]({page_link('dataset', id=v['id'])})", v["state"] + (f" ({v['yank_reason']})" if v["yanked"] else ""),
             (v["published_at"] or "")[:19], f"`{v['content_sha256']}`", f"`{v['manifest_sha256']}`"] for v in versions]
    st.markdown(markdown_table(["version", "state", "published", "content sha256", "manifest sha256"], rows))


def _downloads(info: dict[str, Any]) -> None:
    base = dataset_path(info["id"])
    st.link_button(f"Download {info['id']} (tar, {human_size(info['size_bytes'])})", public_url(base + "/-/download"))
    st.link_button("manifest.json", public_url(base + "/-/files/manifest.json"))
    count = info["episodes"] or 1
    columns = st.columns(2)
    start = int(columns[0].number_input("First episode", 0, count - 1, 0, key="download-start"))
    stop = int(columns[1].number_input("Stop before episode", start + 1, count, min(count, start + 10), key="download-stop"))
    st.link_button(f"Download episodes {start}:{stop} (bench format, tar)",
                   public_url(base + "/-/episodes/download", start=start, stop=stop))
    st.caption(f"With the CLI: `bench datasets download {info['id']} --episodes {start}:{stop} --out DIR` "
               "(resumable, verified against the manifest).")
