"""The Robot logs page: real-robot logs with their labels, cameras and success rates."""

from __future__ import annotations

from typing import Any

import streamlit as st

from bench.datasets.robot_logs import label_tag
from bench.leaderboards.robot_evals import rate_text
from bench.platform.units import human_size
from bench.web.ui.api import dataset_path, page_link, public_url
from bench.web.ui.widgets import PAGE_SIZE, fetch, markdown_table, page_offset, pager


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
    tags = [label_tag(kind, value) for kind, value in (("robot", robot), ("lab", lab)) if value]
    filters = dict(tag=tags[0] if tags else "real-robot", q=task or None,
                   published_after=after.isoformat() if after else None,
                   published_before=before.isoformat() if before else None)
    result = fetch("/datasets", **filters, limit=PAGE_SIZE, offset=page_offset("logs-page"))
    if result is None:
        return
    items = [i for i in result["items"] if "real-robot" in i["tags"] and all(t in i["tags"] for t in tags)]
    st.caption(f"{len(items)} logs")
    rows = [[f"[{i['id']}]({page_link('dataset', id=i['id'])})", i["episodes"], i["steps"],
             ", ".join(t for t in i["tags"] if t != "real-robot") or "-", i.get("description") or "-",
             (i["published_at"] or "")[:10]] for i in items]
    if rows:
        st.markdown(markdown_table(["log", "episodes", "steps", "robot / lab", "description", "published"], rows))
    else:
        st.info("No robot log matches these filters.")
    pager(result["total"], "logs-page")


def robot_log_section(info: dict[str, Any]) -> None:
    name = f"{info['namespace']}/{info['name']}"
    evals = fetch("/robot-evals", dataset=name)
    st.subheader("Success rates")
    if evals and evals["summary"]:
        rows = [[e["task"], e["policy"], rate_text(e["offline_success"]), rate_text(e["online_success"])]
                for e in evals["summary"]]
        st.markdown(markdown_table(["task", "policy", "offline", "online (after fine-tuning)"], rows))
        st.caption("Wilson 95% intervals over trials recorded with `bench robot-evals add`.")
    else:
        st.caption("No evaluation trials recorded yet (`bench robot-evals add`).")
    stats = fetch(dataset_path(info["id"]) + "/-/stats")
    if stats:
        st.subheader("Episodes and labels")
        wanted = ["episode_id", "length", "success", "task", "operator", "notes", "started_at", "source"]
        shown = [c for c in wanted if c in stats["episode_columns"]]
        rows = [[row.get(c, "") for c in shown] for row in stats["episode_rows"]]
        st.markdown(markdown_table(shown, rows))
    files = fetch(dataset_path(info["id"]) + "/-/files") or []
    originals = [f for f in files if f["name"].startswith("original/")]
    if originals:
        st.subheader("Original files")
        st.markdown("\n".join(f"- [{f['name'].removeprefix('original/')}]"
                              f"({public_url(dataset_path(info['id']) + '/-/files/' + f['name'])}) ({human_size(f['size'])})"
                              for f in originals[:200]))
