"""The UI's pages. Each reads the API (bench.web.ui.api) and renders; none touches the database or storage.

Lists are Markdown tables (real links and text in the page, so they can be read, copied and
tested); charts are Altair, bundled with Streamlit.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bench.errors import BenchError, NotFound
from bench.leaderboards.render import footnote, table_rows
from bench.web.ui.api import dataset_path, get, get_text, page_link, public_url, server_url

PAGE_SIZE = 50
RUN_LINKS = 10  # per leaderboard entry; the rest are one click away on the Runs page
KINDS = ["any", "demos", "play", "random", "mixed", "real-robot"]
SIZES = {"any": (None, None), "< 10k steps": (None, 9_999), "10k - 100k steps": (10_000, 100_000),
         "100k - 1M steps": (100_000, 1_000_000), "> 1M steps": (1_000_001, None)}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return "-"


def _page_offset(key: str) -> int:
    """The offset of the page the reader chose (kept in the session), so one request fetches the page."""
    return (int(st.session_state.get(key, 1)) - 1) * PAGE_SIZE


def _pager(total: int, key: str) -> None:
    """The page chooser, drawn once the total is known (a change re-runs the page with the new offset)."""
    pages = max(1, -(-total // PAGE_SIZE))
    if pages > 1:
        st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=min(st.session_state.get(key, 1), pages),
                        key=key)


def _fetch(path: str, **params: Any) -> Any | None:
    """A GET whose failure is shown on the page instead of a stack trace."""
    try:
        return get(path, **params)
    except NotFound as exc:
        st.warning(str(exc))
    except BenchError as exc:
        st.error(f"{server_url()}: {exc}")
    return None


def _fetch_text(path: str) -> str | None:
    try:
        return get_text(path)
    except BenchError as exc:
        st.warning(str(exc))
        return None


# -- datasets -------------------------------------------------------------------------------------------
def datasets_page() -> None:
    st.title("Datasets")
    columns = st.columns([3, 2, 2, 1, 1])
    given = st.query_params  # filters can come in the address, so a search can be shared as a link
    text = columns[0].text_input("Search", value=given.get("q", ""), placeholder="name or description")
    namespace = columns[1].text_input("Namespace", value=given.get("namespace", ""), placeholder="e.g. metaworld")
    env = columns[2].text_input("Environment", value=given.get("env", ""), placeholder="e.g. metaworld/drawer-open")
    kind = columns[3].selectbox("Kind", KINDS, index=KINDS.index(given["kind"]) if given.get("kind") in KINDS else 0)
    size = columns[4].selectbox("Size", list(SIZES))
    min_steps, max_steps = SIZES[size]
    filters = dict(q=text or None, namespace=namespace or None, env=env or None,
                   tag=None if kind == "any" else kind, min_steps=min_steps, max_steps=max_steps)
    result = _fetch("/datasets", **filters, limit=PAGE_SIZE, offset=_page_offset("datasets-page"))
    if result is None:
        return
    st.caption(f"{result['total']} datasets (latest version of each), from {server_url()}")
    rows = [[f"[{item['id']}]({page_link('dataset', id=item['id'])})", item["episodes"], item["steps"],
             _size(item["size_bytes"]), ", ".join(item["tags"]) or "-", (item.get("env") or {}).get("name", "-"),
             (item["published_at"] or "")[:10]] for item in result["items"]]
    if rows:
        st.markdown(_markdown_table(["dataset", "episodes", "steps", "size", "tags", "environment", "published"], rows))
    else:
        st.info("No dataset matches these filters.")
    _pager(result["total"], "datasets-page")


def dataset_page() -> None:
    dataset_id = st.query_params.get("id")
    if not dataset_id:
        st.info("Choose a dataset on the Datasets page.")
        return
    info = _fetch(dataset_path(dataset_id))
    if info is None:
        return
    st.title(info["id"])
    if info.get("description"):
        st.caption(info["description"])
    metrics = st.columns(5)
    metrics[0].metric("Episodes", info["episodes"])
    metrics[1].metric("Steps", info["steps"])
    metrics[2].metric("Size", _size(info["size_bytes"]))
    metrics[3].metric("Environment", (info.get("env") or {}).get("name", "none"))
    metrics[4].metric("Visibility", "private" if info["private"] else "public")
    is_log = "real-robot" in info["tags"]
    names = ["Card", "Statistics", "Episodes", "Versions", "Download"] + (["Robot log"] if is_log else [])
    card, statistics, episodes, versions, download, *robot = st.tabs(names)
    if robot:
        with robot[0]:
            _robot_log(info)
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
    text = _fetch_text(dataset_path(info["id"]) + "/-/card")
    if text is None:
        return
    # Images in the card are files of the version: show them from the API, not as broken relative links.
    previews = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    st.markdown(re.sub(r"!\[[^\]]*\]\([^)]+\)", "", text))
    if previews:
        st.image([public_url(dataset_path(info["id"]) + f"/-/files/{name}") for name in previews[:6]], width=240)


def _histogram_chart(histogram: dict[str, Any], label: str) -> alt.Chart:
    edges = histogram["edges"]
    frame = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "episodes": histogram["counts"]})
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("from:Q", title=label, bin="binned"), x2="to:Q", y=alt.Y("episodes:Q", title="episodes"),
        tooltip=["from", "to", "episodes"]).properties(height=220)


def _statistics(info: dict[str, Any]) -> None:
    stats = _fetch(dataset_path(info["id"]) + "/-/stats")
    if stats is None:
        return
    columns = st.columns(3)
    columns[0].metric("Mean return", f"{stats['return']['mean']:.3g}")
    columns[1].metric("Mean length", f"{stats['length']['mean']:.1f}")
    if stats["success"]:
        columns[2].metric("Success rate", f"{100 * stats['success']['rate']:.1f}%",
                          help=f"{stats['success']['successes']} of {stats['success']['episodes']} episodes")
    left, right = st.columns(2)
    left.altair_chart(_histogram_chart(stats["return"]["histogram"], "episode return"), use_container_width=True)
    right.altair_chart(_histogram_chart(stats["length"]["histogram"], "episode length"), use_container_width=True)


def _episode_viewer(info: dict[str, Any]) -> None:
    count = info["episodes"] or 0
    if count == 0:
        return
    index = int(st.number_input("Episode", min_value=0, max_value=count - 1, value=0, key="episode-index"))
    episode = _fetch(dataset_path(info["id"]) + f"/-/episodes/{index}")
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
    versions = _fetch(dataset_path(f"{info['namespace']}/{info['name']}") + "/-/versions")
    if versions is None:
        return
    rows = [[f"[{v['id']}]({page_link('dataset', id=v['id'])})", v["state"] + (f" ({v['yank_reason']})" if v["yanked"] else ""),
             (v["published_at"] or "")[:19], f"`{v['content_sha256']}`", f"`{v['manifest_sha256']}`"] for v in versions]
    st.markdown(_markdown_table(["version", "state", "published", "content sha256", "manifest sha256"], rows))


def _downloads(info: dict[str, Any]) -> None:
    base = dataset_path(info["id"])
    st.link_button(f"Download {info['id']} (tar, {_size(info['size_bytes'])})", public_url(base + "/-/download"))
    st.link_button("manifest.json", public_url(base + "/-/files/manifest.json"))
    count = info["episodes"] or 1
    columns = st.columns(2)
    start = int(columns[0].number_input("First episode", 0, count - 1, 0, key="download-start"))
    stop = int(columns[1].number_input("Stop before episode", start + 1, count, min(count, start + 10), key="download-stop"))
    st.link_button(f"Download episodes {start}:{stop} (bench format, tar)",
                   public_url(base + "/-/episodes/download", start=start, stop=stop))
    st.caption(f"With the CLI: `bench datasets download {info['id']} --episodes {start}:{stop} --out DIR` "
               "(resumable, verified against the manifest).")


# -- real-robot logs ------------------------------------------------------------------------------------------
def robot_logs_page() -> None:
    st.title("Robot logs")
    st.caption("Real-robot datasets: camera video, proprioception, commands, timestamps and success labels.")
    columns = st.columns(5)
    robot = columns[0].text_input("Robot", placeholder="e.g. sawyer")
    lab = columns[1].text_input("Lab")
    task = columns[2].text_input("Task", placeholder="text in the description")
    after = columns[3].date_input("Published from", value=None)
    before = columns[4].date_input("Published before", value=None)
    from bench.datasets.robot_logs import label_tag

    tags = [label_tag(kind, value) for kind, value in (("robot", robot), ("lab", lab)) if value]
    filters = dict(tag=tags[0] if tags else "real-robot", q=task or None,
                   published_after=after.isoformat() if after else None,
                   published_before=before.isoformat() if before else None)
    result = _fetch("/datasets", **filters, limit=PAGE_SIZE, offset=_page_offset("logs-page"))
    if result is None:
        return
    items = [i for i in result["items"] if "real-robot" in i["tags"] and all(t in i["tags"] for t in tags)]
    st.caption(f"{len(items)} logs")
    rows = [[f"[{i['id']}]({page_link('dataset', id=i['id'])})", i["episodes"], i["steps"],
             ", ".join(t for t in i["tags"] if t != "real-robot") or "-", i.get("description") or "-",
             (i["published_at"] or "")[:10]] for i in items]
    if rows:
        st.markdown(_markdown_table(["log", "episodes", "steps", "robot / lab", "description", "published"], rows))
    else:
        st.info("No robot log matches these filters.")
    _pager(result["total"], "logs-page")


def _robot_log(info: dict[str, Any]) -> None:
    name = f"{info['namespace']}/{info['name']}"
    evals = _fetch("/robot-evals", dataset=name)
    st.subheader("Success rates")
    if evals and evals["summary"]:
        from bench.leaderboards.robot_evals import rate_text

        rows = [[e["task"], e["policy"], rate_text(e["offline_success"]), rate_text(e["online_success"])]
                for e in evals["summary"]]
        st.markdown(_markdown_table(["task", "policy", "offline", "online (after fine-tuning)"], rows))
        st.caption("Wilson 95% intervals over trials recorded with `bench robot-evals add`.")
    else:
        st.caption("No evaluation trials recorded yet (`bench robot-evals add`).")
    stats = _fetch(dataset_path(info["id"]) + "/-/stats")
    if stats:
        st.subheader("Episodes and labels")
        wanted = ["episode_id", "length", "success", "task", "operator", "notes", "started_at", "source"]
        shown = [c for c in wanted if c in stats["episode_columns"]]
        rows = [[row.get(c, "") for c in shown] for row in stats["episode_rows"]]
        st.markdown(_markdown_table(shown, rows))
    files = _fetch(dataset_path(info["id"]) + "/-/files") or []
    originals = [f for f in files if f["name"].startswith("original/")]
    if originals:
        st.subheader("Original files")
        st.markdown("\n".join(f"- [{f['name'].removeprefix('original/')}]"
                              f"({public_url(dataset_path(info['id']) + '/-/files/' + f['name'])}) ({_size(f['size'])})"
                              for f in originals[:200]))


# -- leaderboards --------------------------------------------------------------------------------------------
def leaderboards_page() -> None:
    st.title("Leaderboards")
    suites = _fetch("/leaderboards")
    if not suites:
        return
    names = [suite["name"] for suite in suites]
    wanted = st.query_params.get("name")
    name = st.selectbox("Suite", names, index=names.index(wanted) if wanted in names else 0)
    board = _fetch(f"/leaderboards/{name}")
    if board is None:
        return
    spec = board["leaderboard"]
    st.subheader(spec.get("title") or spec["name"])
    if spec.get("description"):
        st.caption(spec["description"])
    header, rows = table_rows(board)
    if rows:
        rows = [[f"[{row[0]}]({page_link('runs', algorithm=row[0])})", *row[1:]] for row in rows]
        st.markdown(_markdown_table(header, rows))
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
    result = _fetch("/runs", **filters, limit=PAGE_SIZE, offset=_page_offset("runs-page"))
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
        st.markdown(_markdown_table(["run", "algorithm", "dataset", "seed", "status", "offline", "online", "by"], rows))
    _pager(result["total"], "runs-page")


def run_page() -> None:
    run_id = st.query_params.get("id")
    if not run_id:
        st.info("Choose a run on the Runs page.")
        return
    run = _fetch(f"/runs/{run_id}")
    if run is None:
        return
    st.title(f"Run {run['id']}")
    st.caption(f"{run['algorithm']} on {run['dataset_id']}, seed {run['seed']}: {run['status']}")
    curves = _fetch(f"/runs/{run_id}/curves", kind="eval") or []
    offline_steps = int(run["plan"].get("offline_steps") or 0)
    if curves:
        metrics = [m for m in ("normalized_score", "success_rate", "stage_progress", "return")
                   if any(p.get(m) is not None for p in curves)]
        metric = st.radio("Metric", metrics, horizontal=True)
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
        st.markdown(_markdown_table(["", ""], [
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


# -- upload ----------------------------------------------------------------------------------------------------
def upload_page() -> None:
    from bench.web.client import Client

    st.title("Upload a dataset")
    st.caption("Signed-in users publish into namespaces they own. The server validates the file exactly as "
               "`bench datasets import` does; nothing is published unless all of it is valid.")
    # A form: typing re-runs nothing until "Publish". Without it every field re-ran the page, and a file
    # chosen as such a re-run began was silently dropped (Streamlit clears its outgoing queue when a run
    # starts, and with it the server's answer carrying the upload URL).
    with st.form("upload"):
        token = st.text_input("API token", type="password", help="bench tokens create USER --name NAME")
        dataset_id = st.text_input("Dataset id", placeholder="alice/drawer-demos")
        uploaded = st.file_uploader("File (D4RL .hdf5, OGBench .npz)", type=["hdf5", "h5", "npz"])
        columns = st.columns(3)
        tags = [t.strip() for t in columns[0].text_input("Tags (comma-separated)").split(",") if t.strip()]
        private = columns[1].checkbox("Private")
        description = columns[2].text_input("Description")
        submitted = st.form_submit_button("Publish")
    if not submitted:
        return
    missing = [name for name, value in (("an API token", token), ("a dataset id", dataset_id), ("a file", uploaded))
               if not value]
    if missing:
        st.error("Upload needs " + ", ".join(missing) + ".")
        return
    bar = st.progress(0.0, text="starting")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(uploaded.name).name
        path.write_bytes(uploaded.getvalue())
        client = Client(server_url(), token)
        try:
            result = client.upload(path, dataset_id, tags=tags, private=private or None,
                                   description=description or None,
                                   progress=lambda what, done, total: bar.progress(min(1.0, done / max(total, 1)),
                                                                                  text=f"{what} {done:,} / {total:,} bytes"))
        except BenchError as exc:
            st.error(str(exc))
            return
        finally:
            client.close()
    bar.progress(1.0, text="published")
    published = result["dataset"]
    st.success(f"Published {published['id']}: {published['episodes']} episodes, {published['steps']} steps.")
    st.markdown(f"[Open {published['id']}]({page_link('dataset', id=published['id'])})")
    get.clear()
    st.code(json.dumps({k: published[k] for k in ("id", "content_sha256", "manifest_sha256")}, indent=2))
