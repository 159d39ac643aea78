"""The Upload page: publish a file or a directory (as a tar) through the API with a token."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from bench.errors import BenchError
from bench.platform.units import human_size
from bench.web.client import Client
from bench.web.ui.api import get, page_link, server_url


# -- upload ----------------------------------------------------------------------------------------------------
def upload_page() -> None:
    st.title("Upload a dataset")
    st.caption("Signed-in users publish into namespaces they own. The server validates the file exactly as "
               "`bench datasets import` does; nothing is published unless all of it is valid.")
    health = get("/health") or {}
    browser_limit = int(st.get_option("server.maxUploadSize")) * 2**20  # this page's own limit, in MB
    server_limit = int(health.get("upload_max_bytes") or browser_limit)
    st.info(f"Largest file this page takes: {human_size(min(browser_limit, server_limit))} (the server accepts "
            f"{human_size(server_limit)}; `bench datasets upload` sends up to that, resumably). A directory (a Minari "
            "dataset, a robot-log folder, a ROS 2 bag) goes as a tar: `tar cf NAME.tar DIR`, then upload the .tar.")
    # A form: typing re-runs nothing until "Publish". Without it every field re-ran the page, and a file
    # chosen as such a re-run began was silently dropped (Streamlit clears its outgoing queue when a run
    # starts, and with it the server's answer carrying the upload URL).
    with st.form("upload"):
        token = st.text_input("API token", type="password", help="bench tokens create USER --name NAME")
        dataset_id = st.text_input("Dataset id", placeholder="alice/drawer-demos")
        uploaded = st.file_uploader("File (D4RL .hdf5, OGBench .npz, ROS 1 .bag, or a directory as .tar)",
                                    type=["hdf5", "h5", "npz", "bag", "tar"])
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
