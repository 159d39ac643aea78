"""bench's web UI: datasets, episodes, leaderboards, runs, uploads. Run with `bench serve ui`."""

from __future__ import annotations

import streamlit as st

from bench.web.ui import views

st.set_page_config(page_title="bench", page_icon=":robot_face:", layout="wide")

pages = [
    st.Page(views.datasets_page, title="Datasets", default=True),  # the default page lives at /
    st.Page(views.dataset_page, title="Dataset", url_path="dataset"),
    st.Page(views.robot_logs_page, title="Robot logs", url_path="robot-logs"),
    st.Page(views.leaderboards_page, title="Leaderboards", url_path="leaderboards"),
    st.Page(views.runs_page, title="Runs", url_path="runs"),
    st.Page(views.run_page, title="Run", url_path="run"),
    st.Page(views.upload_page, title="Upload", url_path="upload"),
]
st.navigation(pages).run()
