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


# The largest decoded video accepted (frames x height x width x 3 bytes), and the largest frame.
MAX_DECODED_BYTES = 8 << 30
MAX_FRAME_PIXELS = 4096 * 4096


def decode_mp4(source: Path | bytes, size: tuple[int, int] | None = None, max_bytes: int = MAX_DECODED_BYTES,
               start: int = 0, count: int | None = None) -> np.ndarray:
    """Every frame of a video as uint8 (N, H, W, 3), cropped to ``size`` (height, width) when given; or only
    frames ``start`` to ``start + count`` (counted at the stream's frame rate from its first frame), reached by
    seeking to the keyframe before them, so that a clip of a long video costs the clip, not the video.

    The bytes are demuxed as mp4 and nothing else, from memory: FFmpeg left to probe a file could
    take it for a playlist (HLS, concat) and open the other files or URLs it names, and an mp4's own
    data references to other files stay off (FFmpeg's default). Decoding stops at ``max_bytes``.
    """
    import av

    name = "video" if isinstance(source, (bytes, bytearray)) else Path(source).name
    # A file is read through a Python file object, as bytes are: never by FFmpeg's own file protocol.
    handle = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    frames, decoded = [], 0
    try:
        with handle, av.open(handle, format="mp4", options={"enable_drefs": "0"}) as container:
            stream = container.streams.video[0]
            declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
            if declared > MAX_FRAME_PIXELS:
                raise InvalidInput(f"{name}: frames of {stream.codec_context.width}x{stream.codec_context.height} "
                                   f"pixels are larger than {MAX_FRAME_PIXELS} pixels")
            rate = stream.average_rate or stream.guessed_rate
            first_pts = stream.start_time or 0
            if start > 0 and rate and stream.time_base:
                container.seek(first_pts + int(start / rate / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if start > 0 or count is not None:
                    index = (int(round((frame.pts - first_pts) * stream.time_base * rate)) if frame.pts is not None
                             and rate else start + len(frames))
                    if index < start:
                        continue
                    if count is not None and index >= start + count:
                        break
                if frame.width * frame.height > MAX_FRAME_PIXELS:
                    raise InvalidInput(f"{name}: frames of {frame.width}x{frame.height} pixels are larger than "
                                       f"{MAX_FRAME_PIXELS} pixels")
                decoded += frame.width * frame.height * 3
                if decoded > max_bytes:
                    raise InvalidInput(f"{name}: the video decodes to more than {max_bytes >> 20} MiB")
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, IndexError, ValueError) as exc:  # IndexError: no video stream
        raise InvalidInput(f"{name}: not a readable mp4 video ({type(exc).__name__})") from None
    if not frames:
        raise InvalidInput(f"{name}: the video has no frames")
    array = np.stack(frames)
    if size is not None:
        array = array[:, : size[0], : size[1]]
    return array
