"""The Dataset page: card, statistics, an episode viewer with camera frames, versions and downloads."""

from __future__ import annotations

import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.datasets.catalogue import environment_label
from bench.errors import BenchError
from bench.platform.settings import Settings
from bench.platform.units import human_size
from bench.web.ui.api import dataset_path, get, page_link, public_url, server_url
from bench.web.ui.robot_logs import robot_log_section
from bench.web.ui.widgets import fetch, fetch_text, histogram_chart, markdown_table


def dataset_page() -> None:
    dataset_id = st.query_params.get("id")
    if not dataset_id:
        dataset_id = _pick_dataset()
        if not dataset_id:
            return
    info = fetch(dataset_path(dataset_id))
    if info is None:
        return
    st.title(info["id"])
    if info.get("description"):
        st.caption(info["description"])
    metrics = st.columns(4)
    metrics[0].metric("Episodes", info["episodes"])
    metrics[1].metric("Steps", info["steps"])
    metrics[2].metric("Size", human_size(info["size_bytes"]))
    metrics[3].metric("Visibility", "private" if info["private"] else "public")
    st.markdown(f"**Environment** {environment_label(info.get('env'))}")  # whole: the same words as list and card
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


def _pick_dataset() -> str | None:
    """With no id in the address: a picker over the newest datasets (the Datasets page searches them all)."""
    st.title("Dataset")
    listing = fetch("/datasets", limit=200) or {"items": []}
    ids = [item["id"] for item in listing["items"]]
    if not ids:
        st.info("No datasets yet: upload one, or build a recipe with `bench datasets build`.")
        return None
    chosen = st.selectbox("Dataset", [""] + ids, format_func=lambda i: i or "choose a dataset ...", key="dataset-pick")
    st.caption(f"{listing.get('total', len(ids))} datasets; the Datasets page searches and filters them.")
    if chosen:
        st.query_params["id"] = chosen  # the address names the dataset: a copied link shows this view
    return chosen or None


def _card(info: dict[str, Any]) -> None:
    """The card's Markdown, with its images shown where their heading is (they are files of the version) and
    the return histogram drawn as a chart instead of the text one the Markdown file carries."""
    text = fetch_text(dataset_path(info["id"]) + "/-/card")
    if text is None:
        return
    image = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
    histogram = re.compile(r"Return histogram:\s*```.*?```", flags=re.S)
    for section in re.split(r"(?m)^(?=## )", text):
        names = image.findall(section)
        has_histogram = bool(histogram.search(section))
        body = histogram.sub("", image.sub("", section)).strip()
        if body:
            st.markdown(body)
        if has_histogram:
            stats = fetch(dataset_path(info["id"]) + "/-/stats")
            if stats is not None:
                st.altair_chart(histogram_chart(stats["return"]["histogram"], "episode return"), use_container_width=True)
        if names:
            st.image([public_url(dataset_path(info["id"]) + f"/-/files/{name}") for name in names[:6]], width=240)


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


def _episode_choice(info: dict[str, Any], count: int) -> int:
    """A picker that says what each episode is (length, return, success, task), not a bare number box."""
    stats = fetch(dataset_path(info["id"]) + "/-/stats") or {}
    rows = stats.get("episode_rows") or []
    if not rows or len(rows) < count:  # beyond the rows the API lists: pick by number
        return int(st.number_input("Episode", min_value=0, max_value=count - 1, value=0, key="episode-index"))

    def label(index: int) -> str:
        row = rows[index]
        parts = [f"{row['length']} steps", f"return {row['return']:.3g}"]
        if row.get("success") is not None:
            parts.append("success" if row["success"] else "failure")
        if row.get("task"):
            parts.append(str(row["task"]))
        ends = "terminated" if row.get("terminated") else "truncated" if row.get("truncated") else ""
        return f"episode {index}: " + ", ".join(parts + ([ends] if ends else []))

    return int(st.selectbox("Episode", range(count), format_func=label, key="episode-pick"))


def _vector_frame(values: list, prefix: str) -> pd.DataFrame:
    frame = pd.DataFrame(values)
    if frame.ndim == 2 and frame.shape[1]:
        frame.columns = [f"{prefix}{i}" for i in range(frame.shape[1])]
    else:
        frame.columns = [f"{prefix}0"]
    frame["step"] = range(len(frame))
    return frame


def _episode_viewer(info: dict[str, Any]) -> None:
    count = info["episodes"] or 0
    if count == 0:
        return
    index = _episode_choice(info, count)
    episode = fetch(dataset_path(info["id"]) + f"/-/episodes/{index}")
    if episode is None:
        return
    attrs = ", ".join(f"{k} {v}" for k, v in episode["attrs"].items() if v not in (None, ""))
    st.caption(f"episode {index}: {episode['length']} steps" + (f"; {attrs}" if attrs else ""))
    step = int(st.slider("Step", 0, episode["length"], 0, key=f"step-{index}"))
    drawn = None if episode["frames"] or not info.get("env") else _rendering(info, index)
    plots, frames = st.columns([3, 2]) if episode["frames"] or drawn else (st.container(), None)
    if frames is not None:
        for camera, described in episode["frames"].items():
            row = min(step, described["count"] - 1)
            frames.image(public_url(dataset_path(info["id"]) + f"/-/episodes/{index}/frames/{camera}", t=row),
                         caption=f"{camera}, observation {row}", width=320)
        if drawn:
            row = min(step, drawn["frames"] - 1)
            frames.image(public_url(dataset_path(info["id"]) + f"/-/episodes/{index}/rendered/frame", t=row),
                         caption=f"rendered in {environment_label(info.get('env'))}, observation {row}", width=320)
            frames.caption(f"Drawn by bench, not recorded: {drawn['note']}.")
    rule = alt.Chart(pd.DataFrame({"step": [step]})).mark_rule(color="red").encode(x="step:Q")
    # Episode ends as dashed rules in fixed colours (the colour scale belongs to the dimensions).
    markers = None
    for flags, colour in ((episode["terminations"], "#8c1c13"), (episode["truncations"], "#7f7f7f")):
        steps = [i for i, flag in enumerate(flags) if flag]
        if steps:
            layer = alt.Chart(pd.DataFrame({"step": steps})).mark_rule(strokeDash=[5, 3], color=colour, size=2).encode(
                x="step:Q")
            markers = layer if markers is None else markers + layer
    if markers is not None:
        plots.caption("Red line: the step shown. Dashed: where the episode ends, dark red if terminated, grey if "
                      "truncated (a time limit).")

    def chart(frame: pd.DataFrame, value: str, title: str, height: int = 220) -> alt.Chart:
        long = frame.melt("step", var_name="dimension", value_name=value)
        layers = alt.Chart(long).mark_line().encode(x="step:Q", y=f"{value}:Q", color="dimension:N") + rule
        return (layers + markers if markers is not None else layers).properties(height=height, title=title)

    observations = episode["observations"]
    if observations:
        key = plots.selectbox("Observation", list(observations), key=f"obs-key-{index}") if len(observations) > 1 \
            else next(iter(observations))
        frame = _vector_frame(observations[key], "o")
        dimensions = [c for c in frame.columns if c != "step"]
        chosen = plots.multiselect("Dimensions", dimensions, default=dimensions[:6], key=f"obs-dims-{index}-{key}")
        if chosen:
            plots.altair_chart(chart(frame[["step", *chosen]], "value", f"observation {key}"), use_container_width=True)
        _path_chart(plots, observations, step, index)
    plots.altair_chart(chart(_vector_frame(episode["actions"], "a"), "action", "actions"), use_container_width=True)
    rewards = pd.DataFrame({"step": range(len(episode["rewards"])), "r": episode["rewards"]})
    plots.altair_chart(chart(rewards, "reward", "rewards"), use_container_width=True)


def _rendering(info: dict[str, Any], index: int) -> dict[str, Any] | None:
    """How a simulated episode without a camera is drawn in its environment; why not, as a caption, if it cannot."""
    try:
        with st.spinner("Putting the episode back into its environment ..."):
            return get(dataset_path(info["id"]) + f"/-/episodes/{index}/rendered")
    except BenchError as exc:
        st.caption(f"No frames: {exc}")
        return None


def _path_chart(container, observations: dict[str, list], step: int, index: int) -> None:
    """The episode's path in the plane of two observation dimensions: a maze agent's x-y, an end effector's."""
    planar = [key for key, values in observations.items() if values and isinstance(values[0], list) and len(values[0]) >= 2]
    if not planar:
        return
    # Goal-conditioned data keeps positions in achieved_goal; else the first vector observation.
    default = "achieved_goal" if "achieved_goal" in planar else planar[0]
    with container.expander("Path (two dimensions of an observation)", expanded="achieved_goal" in planar):
        columns = st.columns(3)
        key = columns[0].selectbox("Observation", planar, index=planar.index(default), key=f"path-key-{index}")
        width = len(observations[key][0])
        x = columns[1].selectbox("x", range(width), index=0, key=f"path-x-{index}-{key}")
        y = columns[2].selectbox("y", range(width), index=1, key=f"path-y-{index}-{key}")
        frame = pd.DataFrame({"step": range(len(observations[key])), "x": [row[x] for row in observations[key]],
                              "y": [row[y] for row in observations[key]]})
        path = alt.Chart(frame).mark_line(point=True).encode(
            x=alt.X("x:Q", title=f"{key}[{x}]"), y=alt.Y("y:Q", title=f"{key}[{y}]"), order="step:Q",
            color=alt.Color("step:Q", scale=alt.Scale(scheme="viridis")))
        here = alt.Chart(frame[frame["step"] == min(step, len(frame) - 1)]).mark_point(
            color="red", size=160, filled=True).encode(x="x:Q", y="y:Q")
        st.altair_chart((path + here).properties(height=320, title=f"path of episode {index}"),
                        use_container_width=True)


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
    server = (Settings.load().public_api_url or server_url()).rstrip("/")
    st.subheader("Load it")
    st.code(f"""# pip install bench; BENCH_SERVER={server} lets load() fetch it (verified, cached)
from bench.datasets import Registry
from bench.datasets.torch_data import Transitions

dataset = Registry.open().load("{info['id']}")
batch = dataset.sample(256)                      # numpy: obs, action, reward, next_obs, terminated, truncated
torch_data = Transitions(dataset)                # a torch Dataset for a DataLoader""", language="python")
    name = f"{info['name'].replace('/', '-')}-v{info['version']}"
    st.code(f"""# As Minari or D4RL data: export, then load with their own tools
bench datasets export {info['id']} --format minari --out minari_datasets/{name}
MINARI_DATASETS_PATH=minari_datasets python -c "import minari; print(minari.load_dataset('{name}'))"
bench datasets export {info['id']} --format d4rl --out {name}.hdf5     # h5py: observations, actions, ...""",
            language="bash")
