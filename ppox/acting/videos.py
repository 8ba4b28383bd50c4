"""One video file from a list of RGB frames (moviepy, as Gymnasium's RecordVideo writes single-agent episodes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppox.errors import ConfigError


def require_writer() -> None:
    """A one-line error where moviepy is missing (called before any episode is played)."""
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ConfigError('--video needs moviepy: pip install "ppox[video]"') from None


def write_clip(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write ``frames`` (each [H, W, 3] uint8) as an mp4 at ``path``; a clear error where moviepy is missing."""
    require_writer()
    from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

    path.parent.mkdir(parents=True, exist_ok=True)
    clip = ImageSequenceClip([np.asarray(f, np.uint8) for f in frames], fps=fps)
    try:
        clip.write_videofile(str(path), logger=None)
    finally:
        clip.close()
