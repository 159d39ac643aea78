"""bench's web UI: datasets, episodes, leaderboards, runs, uploads. Run with `bench serve ui`."""

from __future__ import annotations

import streamlit as st

from bench.web.ui import dataset, datasets, leaderboards, robot_logs, runs, upload

st.set_page_config(page_title="bench", page_icon=":robot_face:", layout="wide")

pages = [
    st.Page(datasets.datasets_page, title="Datasets", default=True),  # the default page lives at /
    st.Page(dataset.dataset_page, title="Dataset", url_path="dataset"),
    st.Page(robot_logs.robot_logs_page, title="Robot logs", url_path="robot-logs"),
    st.Page(leaderboards.leaderboards_page, title="Leaderboards", url_path="leaderboards"),
    st.Page(runs.runs_page, title="Runs", url_path="runs"),
    st.Page(runs.run_page, title="Run", url_path="run"),
    st.Page(upload.upload_page, title="Upload", url_path="upload"),
]
st.navigation(pages).run()
