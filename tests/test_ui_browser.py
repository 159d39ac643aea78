"""The web UI in a real browser: headless Debian chromium driven by playwright, against a real API and
`bench serve ui` process. Every page opens and shows what it must; screenshots go to tests/artifacts/ui/."""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import Registry
from bench.leaderboards.suites import Suites
from bench.platform.accounts import Accounts
from bench.evaluation.store import RunStore
from bench.datasets.recipes.build import build
from bench.leaderboards.robot_evals import RobotEvals
from bench.testing.data import random_trajectories, write_d4rl_file, write_robot_folder, write_ros_bag
from bench.testing.services import ApiServer, UiServer
from conftest import make_settings, settings_env

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "ui"


def seed(registry: Registry) -> str:
    """A camera dataset, state datasets with runs from two algorithms, a leaderboard; alice's token."""
    accounts = Accounts(registry.engine)
    accounts.create_user("alice")
    token, _ = accounts.create_token("alice", "ui")
    rng = np.random.default_rng(0)
    registry.publish(random_trajectories(rng, episodes=6, image_shape=(32, 32, 3)), "alice/camera",
                     description="episodes with a 32x32 camera", tags=["real-robot"])
    store = RunStore(registry.engine)
    for index in range(2):
        info = registry.publish(random_trajectories(rng, episodes=4), f"alice/state-{index}", tags=["demos"])
        for algorithm, level in (("bc", 30.0), ("iql", 60.0)):
            for seed_value in range(3):
                value = level + seed_value
                point = {"return": value, "normalized_score": value, "success_rate": 0.5}
                online = {**point, "normalized_score": value + 5}
                store.import_run({
                    "id": f"{algorithm}{index}{seed_value}", "sweep_id": "ui", "algorithm": algorithm, "config": {"lr": 3e-4},
                    "config_hash": algorithm, "seed": seed_value, "dataset_id": info.id,
                    "dataset_content_sha256": info.content_sha256, "status": "completed",
                    "plan": {"eval_episodes": 10, "offline_steps": 100, "online_steps": 100},
                    "results": {"offline": {"final": point, "best": point}, "online": {"final": online, "best": online}}},
                    [{"kind": "eval", "phase": "offline", "step": 50, "normalized_score": value - 10},
                     {"kind": "eval", "phase": "offline", "step": 100, "normalized_score": value},
                     {"kind": "eval", "phase": "online", "step": 100, "normalized_score": value + 5}], owner="alice")
    Suites(registry.engine).create({"name": "lab", "datasets": ["alice/state-0", "alice/state-1"]},
                                   accounts.principal_of("alice"))
    write_robot_folder(Path(registry.settings.home) / "drawer-log", lengths=(6, 7))
    registry.import_path(Path(registry.settings.home) / "drawer-log", "alice/sawyer-drawer",
                         source_options={"robot": "sawyer", "task": "open drawer"})
    RobotEvals(registry.engine).add("alice/sawyer-drawer", "val", "offline",
                                    [{"success": s} for s in "11111000"], task="Drawer opening")
    RobotEvals(registry.engine).add("alice/sawyer-drawer", "val", "online", [{"success": "1"}] * 8, task="Drawer opening")
    write_ros_bag(Path(registry.settings.home) / "bag-take0", ros=2)  # its camera key nests: images/front
    registry.import_path(Path(registry.settings.home) / "bag-take0", "alice/ros-bag", format="rosbag",
                         source_options={"robot": "sawyer"})
    build(registry, "pointmaze/umaze/navigate", episodes=2)  # data from a recipe, with preview frames in its card
    return token


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("ui")
    settings = make_settings(request, tmp, "sqlite-local")
    registry = Registry.open(settings)
    token = seed(registry)
    env = settings_env(settings)
    api = ApiServer(env).start()
    ui = UiServer(env, api.url).start()
    url = ui.url
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        yield {"url": url, "page": page, "token": token, "tmp": tmp, "registry": registry}
        browser.close()
    ui.stop()
    api.stop()
    registry.close()


def visit(site, path: str, expected: str, name: str):
    page = site["page"]
    page.goto(site["url"] + path)
    page.get_by_text(expected).first.wait_for(timeout=60_000)
    return page


def shot(site, name: str) -> None:
    site["page"].wait_for_timeout(800)  # let charts finish drawing
    site["page"].screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_datasets_page_lists_and_filters(site):
    page = visit(site, "/", "alice/camera-v1", "datasets")
    assert "alice/state-0-v1" in page.content() and "real-robot" in page.content()
    shot(site, "datasets")
    page.get_by_label("Search").fill("state-1")
    page.get_by_label("Search").press("Enter")
    page.get_by_text("1 datasets", exact=False).wait_for(timeout=60_000)
    # Streamlit replaces the table after the caption: wait for the rows that no longer match to go.
    page.get_by_text("alice/camera-v1").wait_for(state="detached", timeout=60_000)
    assert "alice/state-1-v1" in page.inner_text("main")
    page.wait_for_function("() => window.location.search.includes('q=state-1')", timeout=60_000)  # a shareable link


def test_pages_without_an_id_offer_a_picker(site):
    page = visit(site, "/dataset", "the Datasets page searches and filters them", "dataset-picker")
    shot(site, "dataset-picker")
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="alice/state-0-v1").click()
    page.get_by_role("tab", name="Episodes").wait_for(timeout=60_000)
    page.wait_for_function("() => window.location.search.includes('id=alice')", timeout=60_000)
    page = visit(site, "/run", "Run", "run-picker")
    page.locator("[data-testid='stSelectbox']").first.wait_for(timeout=60_000)
    shot(site, "run-picker")


def test_the_episode_viewer_plots_observations_a_path_and_names_its_episodes(site):
    page = visit(site, "/dataset?id=pointmaze/umaze/navigate", "pointmaze/umaze/navigate-v1", "viewer")
    page.get_by_role("tab", name="Episodes").click()
    panel = page.get_by_role("tabpanel", name="Episodes")
    panel.get_by_text("episode 0: ", exact=False).first.wait_for(timeout=60_000)  # the picker says what it is
    panel.get_by_text("Dimensions", exact=True).wait_for(timeout=60_000)  # observation plot, dimensions selectable
    panel.get_by_text("Path (two dimensions of an observation)").wait_for(timeout=60_000)
    panel.locator("[data-testid='stVegaLiteChart']").nth(2).wait_for(timeout=60_000)  # observation, path?, actions, rewards
    # No camera in the data: the episode is drawn in its environment, and the page says it was drawn.
    drawn = panel.locator("img[src*='rendered/frame']").first
    drawn.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=drawn.element_handle(), timeout=60_000)
    panel.get_by_text("Drawn by bench, not recorded", exact=False).wait_for(timeout=60_000)
    shot(site, "episode-viewer")
    page.get_by_role("tab", name="Download").click()
    try:
        page.get_by_role("tabpanel", name="Download").get_by_text("Load it").wait_for(timeout=120_000)
    finally:
        shot(site, "download-tab")
    assert 'Registry.open().load("pointmaze/umaze/navigate-v1")' in page.inner_text("main")


def test_a_recipe_dataset_shows_its_card_with_preview_frames_and_its_environment(site):
    page = visit(site, "/dataset?id=pointmaze/umaze/navigate", "pointmaze/umaze/navigate-v1", "recipe")
    page.get_by_text("pointmaze/umaze").first.wait_for(timeout=60_000)
    preview = page.locator("img[src*='media/preview_0']").first
    preview.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle(), timeout=60_000)
    shot(site, "recipe-card")
    page.get_by_role("tab", name="Statistics").click()
    page.get_by_text("Success rate", exact=True).wait_for(timeout=60_000)


def test_dataset_page_shows_statistics_episode_frames_and_versions(site):
    page = visit(site, "/dataset?id=alice/camera", "episodes with a 32x32 camera", "dataset")
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)  # the return histogram, drawn
    assert "Return histogram:" not in page.inner_text("main")
    shot(site, "dataset-card")
    page.get_by_role("tab", name="Statistics").click()
    page.get_by_text("Mean return").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Episodes").click()
    frame = page.locator("img[src*='/frames/pixels']").first
    frame.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 32", arg=frame.element_handle(), timeout=60_000)
    shot(site, "dataset-episode")
    page.get_by_role("tab", name="Versions").click()
    content_sha = site["registry"].show("alice/camera").content_sha256
    page.get_by_role("tabpanel", name="Versions").get_by_text(content_sha).wait_for(timeout=60_000)


def test_a_download_from_the_dataset_page_arrives_complete(site):
    page = visit(site, "/dataset?id=alice/camera", "episodes with a 32x32 camera", "download")
    page.get_by_role("tab", name="Download").click()
    link = page.get_by_role("link", name=re.compile(r"Download episodes 0:6"))
    link.wait_for(timeout=60_000)
    href = link.get_attribute("href")
    shot(site, "dataset-download")
    with page.expect_download(timeout=60_000) as waiting:
        page.evaluate("url => { const a = document.createElement('a'); a.href = url; document.body.appendChild(a); a.click(); }", href)
    path = waiting.value.path()
    with tarfile.open(path) as archive:
        names = archive.getnames()
        manifest_member = next(n for n in names if n.endswith("manifest.json"))
        import json

        manifest = json.load(archive.extractfile(manifest_member))
        for name, entry in manifest["files"].items():
            member = next(n for n in names if n.endswith("/" + name))
            assert hashlib.sha256(archive.extractfile(member).read()).hexdigest() == entry["sha256"]
    assert manifest["counts"]["episodes"] == 6


def test_leaderboard_page_shows_rows_with_intervals_and_links_to_runs(site):
    page = visit(site, "/leaderboards?name=lab", "Click a column", "leaderboards")
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)  # the ranked, sortable table
    # whiskers and seeds per dataset and phase, the aggregates' bars, the performance profile
    page.locator(".vega-embed").nth(2).wait_for(timeout=60_000)
    assert "dots: the seeds" in page.inner_text("main")
    page.get_by_text("As text, with intervals").click()
    page.get_by_text("(n=3)", exact=False).first.wait_for(timeout=60_000)
    text = page.inner_text("main")
    assert re.search(r"iql\s+61\.0 \[60\.0, 62\.0\] (->|→) 66\.0 \[65\.0, 67\.0\] \(n=3\)", text), text[:2000]
    assert "IQM" in text
    shot(site, "leaderboards")
    page.get_by_text(re.compile(r"alice/state-0: 2 entries")).click()
    page.get_by_role("link", name="iql00").first.wait_for(timeout=60_000)


def test_runs_and_a_run_with_its_curve_and_provenance(site):
    page = visit(site, "/runs", "iql00", "runs")
    assert "bc12" in page.inner_text("main")
    page.locator("[data-testid='stMultiSelect']").first.click()  # compare runs: curves on one chart, seed bands
    for run_id in ("iql00", "iql01", "bc00"):
        page.get_by_role("option", name=re.compile(f"^{run_id}: ")).click()
    page.keyboard.press("Escape")
    page.get_by_text("band: their lowest and highest").wait_for(timeout=60_000)
    shot(site, "runs")
    page = visit(site, "/run?id=iql00", "Provenance", "run")
    page.locator(".vega-embed").first.wait_for(timeout=60_000)  # the learning curve
    content_sha = site["registry"].show("alice/state-0").content_sha256
    page.get_by_text(content_sha, exact=False).first.wait_for(timeout=60_000)  # whole, not clipped
    page.get_by_text("Results", exact=True).wait_for(timeout=60_000)
    assert "final" in page.inner_text("main")
    shot(site, "run")


def test_upload_page_publishes_with_a_token(site):
    data = write_d4rl_file(site["tmp"] / "upload.hdf5", random_trajectories(np.random.default_rng(5), episodes=3))
    page = visit(site, "/upload", "Upload a dataset", "upload")
    page.get_by_text("Largest file this page takes:", exact=False).wait_for(timeout=60_000)  # the real limit
    assert "the server accepts" in page.inner_text("main") and "as a tar" in page.inner_text("main")
    button = page.get_by_role("button", name="Publish", exact=True)
    button.click()  # nothing filled in: the form says what is missing and publishes nothing
    page.get_by_text("Upload needs an API token, a dataset id, a file.").wait_for(timeout=60_000)
    # Typing, then choosing the file at once: the form re-runs nothing until submitted, so the file
    # cannot be lost to a re-run (it was, under load, before the page used a form).
    page.get_by_role("textbox", name="API token").fill(site["token"])
    page.get_by_label("Dataset id").fill("alice/from-the-browser")
    page.locator("input[type=file]").set_input_files(str(data))
    page.get_by_text("upload.hdf5").wait_for(timeout=60_000)
    button.click()
    page.get_by_text("Published alice/from-the-browser-v1").wait_for(timeout=60_000)
    shot(site, "upload")
    assert site["registry"].show("alice/from-the-browser").episodes == 3


def test_robot_logs_page_and_a_log_with_video_labels_and_success_rates(site):
    page = visit(site, "/robot-logs", "alice/sawyer-drawer-v1", "robot-logs")
    assert "robot-sawyer" in page.inner_text("main")
    shot(site, "robot-logs")
    page.get_by_role("textbox", name="Robot").fill("nobody")
    page.get_by_role("textbox", name="Robot").press("Enter")
    page.get_by_text("No robot log matches").wait_for(timeout=60_000)
    page = visit(site, "/dataset?id=alice/sawyer-drawer", "alice/sawyer-drawer-v1", "robot-log")
    page.get_by_text("duration:", exact=False).first.wait_for(timeout=60_000)  # the card: time, cameras, labels
    assert "Return histogram" not in page.inner_text("main")
    shot(site, "robot-log-card")
    page.get_by_role("tab", name="Robot log").click()
    panel = page.get_by_role("tabpanel", name="Robot log")
    panel.get_by_text("62.5% [30.6, 86.3] (5/8)").wait_for(timeout=60_000)
    assert "100.0% [67.6, 100.0] (8/8)" in panel.inner_text() and "Drawer opening" in panel.inner_text()
    assert "episode_000/front.mp4" in panel.inner_text()  # the original files, downloadable
    shot(site, "robot-log")
    page.get_by_role("tab", name="Episodes").click()
    frame = page.locator("img[src*='/frames/front']").first
    frame.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 32", arg=frame.element_handle(), timeout=60_000)
    shot(site, "robot-log-episode")


def test_a_ros_bag_logs_nested_camera_shows_its_frames(site):
    page = visit(site, "/dataset?id=alice/ros-bag", "alice/ros-bag-v1", "ros-bag")
    page.get_by_role("tab", name="Episodes").click()
    frame = page.locator("img[src*='/frames/images']").first
    frame.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 16", arg=frame.element_handle(), timeout=60_000)
    shot(site, "ros-bag-episode")
