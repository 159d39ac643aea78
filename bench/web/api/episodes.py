"""What the UI looks at inside a version: per-episode statistics, one episode's arrays, single frames.

Statistics come from episodes.parquet alone. An episode's arrays and frames are read from just the
chunks that episode touches (each checked against the manifest), never the whole version, and the
episodes and decoded videos that were asked for stay in a cache bounded by bytes (BENCH_API_CACHE_BYTES).
Simulated episodes without a camera are drawn by putting them back into their environment
(bench.datasets.rendering), in the one render thread of ``Services.scenes``; drawn frames are cached too.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from bench.datasets.dataset import Episode
from bench.datasets.format import is_image_array, summarize_episodes
from bench.datasets.rendering import episode_scene
from bench.datasets.robot_logs import robot_cameras, video_file
from bench.datasets.trajectories import flatten_tree
from bench.datasets.video import decode_mp4
from bench.errors import IntegrityError, InvalidInput, NotFound
from bench.platform.accounts import Principal
from bench.web.api.datasets import readable
from bench.web.api.services import Services, fast_json, principal, services

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]
HISTOGRAM_BINS = 20
MAX_EPISODE_STEPS = 100_000
EPISODE_ROWS = 1000  # one episode's arrays go out as JSON; beyond this, use the file downloads
MAX_RENDERED_STEPS = 10_000  # a replay keeps one simulator state per row (~1 KB each) and costs ~0.3 ms a step


@dataclass(frozen=True)
class ShownEpisode:
    """One episode as the viewers need it: its arrays (only its chunks were read) and the log's cameras."""

    episode: Episode
    cameras: dict[str, dict[str, Any]]

    @property
    def nbytes(self) -> int:
        arrays = [*flatten_tree(self.episode.observations, "").values(), self.episode.actions, self.episode.rewards,
                  self.episode.terminations, self.episode.truncations, *self.episode.infos.values()]
        return int(sum(np.asarray(a).nbytes for a in arrays))


def _episode(svc: Services, version_id: str, index: int) -> ShownEpisode:
    def read() -> ShownEpisode:
        return ShownEpisode(svc.registry.episode(version_id, index), robot_cameras(svc.registry.manifest(version_id)))

    return svc.episodes.get(("episode", version_id, index), read, lambda shown: shown.nbytes)


def _video_frames(svc: Services, version_id: str, storage_path: str, camera: str, index: int,
                  described: dict[str, Any]) -> np.ndarray:
    """One episode's video from media/, checked against the manifest, decoded once and kept (bounded by bytes)."""
    def decode() -> np.ndarray:
        name = video_file(camera, index)
        entry = svc.registry.manifest(version_id)["files"].get(name)
        raw = svc.registry.storage.read_bytes(f"{storage_path}/{name}")
        if entry is None or hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
            raise IntegrityError(f"{name}: sha256 differs from the manifest; the stored version is damaged")
        frames_limit = 3 * int(described.get("height", 0)) * int(described.get("width", 0)) * (MAX_EPISODE_STEPS + 1)
        return decode_mp4(raw, max_bytes=max(frames_limit, 1))

    return svc.episodes.get(("video", version_id, camera, index), decode, lambda frames: frames.nbytes)


def _histogram(values: np.ndarray) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"counts": [], "edges": []}
    counts, edges = np.histogram(values, bins=min(HISTOGRAM_BINS, max(1, len(np.unique(values)))))
    return {"counts": counts.tolist(), "edges": edges.tolist()}


@router.get("/{dataset_id:path}/-/stats", summary="Per-episode statistics: return and length histograms, success rate")
def stats(dataset_id: str, svc: ServicesDep, caller: CallerDep):
    info = readable(svc, caller, dataset_id)
    table = svc.registry.episode_table(info.id)
    summary = summarize_episodes(table)
    returns = table.column("return").to_numpy().astype(np.float64)
    lengths = table.column("length").to_numpy().astype(np.float64)
    columns = [name for name in table.column_names if name not in {"obs_start", "step_start"}]
    # Per-episode rows (labels of real-robot logs, tasks, seeds) for the first episodes; the rest by download.
    rows = json.loads(json.dumps(table.select(columns).slice(0, EPISODE_ROWS).to_pylist(), default=str))
    return fast_json({
        "id": info.id, "episodes": info.episodes, "steps": info.steps,
        "return": {**summary["return"], "histogram": _histogram(returns)},
        "length": {**summary["length"], "histogram": _histogram(lengths)},
        "terminated": summary["terminated"], "truncated": summary["truncated"],
        "success": summary["success"],
        "episode_columns": columns,
        "episode_rows": rows,
    })


def _existing_episode(svc: Services, caller: Principal, dataset_id: str, index: int):
    info = readable(svc, caller, dataset_id)
    if index >= (info.episodes or 0):
        raise NotFound(f"{info.id} has episodes 0 to {(info.episodes or 0) - 1}, not {index}")
    return info


def _json_array(array: np.ndarray) -> Any:
    if array.dtype.kind in "fc":
        return np.where(np.isfinite(array), array, None).tolist() if not np.isfinite(array).all() else array.tolist()
    return array.tolist()


@router.get("/{dataset_id:path}/-/episodes/{index:int}", summary="One episode: actions, rewards, ends, vector observations")
def episode(dataset_id: str, index: Annotated[int, Path(ge=0, le=10**9)], svc: ServicesDep, caller: CallerDep):
    info = _existing_episode(svc, caller, dataset_id, index)
    viewed = _episode(svc, info.id, index)
    shown = viewed.episode
    if len(shown) > MAX_EPISODE_STEPS:
        raise InvalidInput(f"episode {index} has {len(shown)} steps; download it instead (episodes {index}:{index + 1})")
    observations = flatten_tree(shown.observations, "")
    frames = {key or "observation": {"count": len(array), "shape": list(array.shape[1:]), "storage": "array"}
              for key, array in observations.items() if is_image_array(array)}
    for camera, described in viewed.cameras.items():
        if described.get("storage") == "video":
            frames[camera] = {"count": len(shown) + 1, "shape": [described["height"], described["width"], 3],
                              "storage": "video"}
    vectors = {key or "observation": _json_array(array) for key, array in observations.items()
               if not is_image_array(array) and array.ndim <= 2 and array.dtype.kind in "fiub"}
    return fast_json({
        "id": info.id, "index": index, "length": len(shown), "attrs": json.loads(json.dumps(shown.attrs, default=str)),
        "actions": _json_array(np.asarray(shown.actions)), "rewards": _json_array(np.asarray(shown.rewards)),
        "terminations": shown.terminations.tolist(), "truncations": shown.truncations.tolist(),
        "observations": vectors, "frames": frames,
    })


# {key:path}: camera keys nest ("images/front" from a ROS bag); the "/frames/" anchor keeps them apart from the id.
@router.get("/{dataset_id:path}/-/episodes/{index:int}/frames/{key:path}", summary="One camera frame of an episode as PNG",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def frame(dataset_id: str, index: Annotated[int, Path(ge=0, le=10**9)], key: str,
          t: Annotated[int, Query(ge=0, le=10**9, description="observation row within the episode (0..T)")],
          svc: ServicesDep, caller: CallerDep) -> Response:
    from PIL import Image

    info = _existing_episode(svc, caller, dataset_id, index)
    viewed = _episode(svc, info.id, index)
    observations = flatten_tree(viewed.episode.observations, "")
    array = observations.get("" if key == "observation" else key)
    described = viewed.cameras.get(key, {})
    if described.get("storage") == "video":
        array = _video_frames(svc, info.id, info.storage_path, key, index, described)[observations[f"frame/{key}"]]
    if array is None or not is_image_array(array):
        raise NotFound(f"{info.id} has no camera {key!r}; its frames are {sorted(k or 'observation' for k, a in observations.items() if is_image_array(a))}")
    if t >= len(array):
        raise NotFound(f"episode {index} has {len(array)} frames, not {t + 1}")
    image = np.asarray(array[t])
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)  # CHW -> HWC
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def _scene_use(svc: Services, info, index: int, use):
    """``use(scene)`` on episode ``index`` put back into the version's environment (built once, kept open)."""
    def build():
        shown = _episode(svc, info.id, index).episode
        if len(shown) > MAX_RENDERED_STEPS:
            raise InvalidInput(f"episode {index} has {len(shown)} steps; bench renders episodes of at most "
                               f"{MAX_RENDERED_STEPS}")
        return episode_scene(svc.registry.manifest(info.id).get("env"), shown)

    return svc.scenes.run((info.id, index), build, use)


@router.get("/{dataset_id:path}/-/episodes/{index:int}/rendered",
            summary="Whether a simulated episode can be drawn in its environment, how, and how many frames")
def rendered(dataset_id: str, index: Annotated[int, Path(ge=0, le=10**9)], svc: ServicesDep, caller: CallerDep):
    info = _existing_episode(svc, caller, dataset_id, index)
    return fast_json({"id": info.id, "index": index, **_scene_use(svc, info, index, lambda scene: scene.describe())})


@router.get("/{dataset_id:path}/-/episodes/{index:int}/rendered/frame", summary="One drawn frame of a simulated episode as PNG",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def rendered_frame(dataset_id: str, index: Annotated[int, Path(ge=0, le=10**9)],
                   t: Annotated[int, Query(ge=0, le=10**9, description="observation row within the episode (0..T)")],
                   svc: ServicesDep, caller: CallerDep) -> Response:
    from PIL import Image

    info = _existing_episode(svc, caller, dataset_id, index)

    def draw() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(_scene_use(svc, info, index, lambda scene: scene.frame(t))).save(buffer, format="PNG")
        return buffer.getvalue()

    png = svc.episodes.get(("rendered", info.id, index, t), draw, len)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})
