"""Camera streams as mp4 (H.264 through PyAV's bundled FFmpeg): encode frames, count and decode them.

Real-robot logs keep camera video compressed in ``media/`` and decode it on demand; arrays of
small images go straight into the steps instead.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.errors import InvalidInput


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """uint8 frames (N, H, W, 3) as an H.264 mp4; odd sizes are padded by one edge pixel (yuv420p needs even)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise InvalidInput(f"video frames must be uint8 (N, H, W, 3) with N >= 1, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=max(1, int(round(fps))))
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for frame in padded:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_mp4(source: Path | bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Every frame of a video as uint8 (N, H, W, 3), cropped to ``size`` (height, width) when given."""
    import av

    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        with av.open(handle) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError, ValueError) as exc:  # IndexError: no video stream
        name = "video" if isinstance(source, (bytes, bytearray)) else Path(source).name
        raise InvalidInput(f"{name}: not a readable video ({exc})") from None
    if not frames:
        raise InvalidInput("the video has no frames")
    array = np.stack(frames)
    if size is not None:
        array = array[:, : size[0], : size[1]]
    return array
