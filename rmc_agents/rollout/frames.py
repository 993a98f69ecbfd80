"""Frames: GIF/MP4 writing, the pygame window, the attention panel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import RolloutError

VIDEO_SUFFIXES = (".gif", ".mp4")


# --- frames ---------------------------------------------------------------------------------


class _VideoWriter:
    """Writes frames to a GIF (pillow) or an MP4 (ffmpeg, H.264).

    MP4 frames are streamed to ffmpeg. A GIF is written when closed; each frame is reduced to a
    256-colour palette (fast octree, no dithering) as it arrives, so a frame waits in memory at one
    byte per pixel.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.is_gif = path.suffix.lower() == ".gif"
        self.frames = 0
        self._gif_frames: list[Any] = []
        self._mp4 = None
        if not self.is_gif:
            import imageio.v2 as imageio

            self._mp4 = imageio.get_writer(
                path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1
            )

    def add(self, frame: np.ndarray) -> None:
        if self.is_gif:
            from PIL import Image

            image = Image.fromarray(frame, mode="RGB")
            self._gif_frames.append(
                image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            )
        else:
            if frame.shape[0] % 2 or frame.shape[1] % 2:  # yuv420p needs even sides
                padded = np.zeros((frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2, 3), np.uint8)  # fmt: skip
                padded[: frame.shape[0], : frame.shape[1]] = frame
                frame = padded
            self._mp4.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        if self._mp4 is not None:
            self._mp4.close()
            self._mp4 = None
        elif self._gif_frames:
            first, *rest = self._gif_frames
            first.save(
                self.path,
                save_all=True,
                append_images=rest,
                duration=round(1000.0 / self.fps),
                loop=0,
            )
            self._gif_frames = []


class _WindowClosed(Exception):
    """The person closed the pygame window."""


class _Window:
    """A pygame window showing frames at ``fps``."""

    def __init__(self, fps: float, title: str) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        self.fps, self.title = fps, title
        self.screen = None
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> None:
        pg = self.pg
        if self.screen is None or self.screen.get_size() != (frame.shape[1], frame.shape[0]):
            pg.display.init()
            self.screen = pg.display.set_mode((frame.shape[1], frame.shape[0]))
            pg.display.set_caption(self.title)
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                raise _WindowClosed
        pg.surfarray.blit_array(self.screen, frame.transpose(1, 0, 2))
        pg.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.screen is not None:
            self.pg.display.quit()
            self.screen = None


def _attention_view_for(module: Any, frame_height: int) -> Any:
    """An :class:`AttentionView` sized for ``module``'s RMC core and observation encoder."""
    from rmc_agents.rl.attention_view import AttentionView

    core, encoder = module.core, module.encoder
    mem_slots = int(core.mem_slots)
    input_rows = int(encoder.num_rows) if getattr(encoder, "rows", False) else 1
    grid = None
    images = getattr(encoder, "images", None)
    if images is not None and len(images) == 1 and input_rows > 1:
        coords = getattr(images[0], "coords", None)  # [2, H', W'] coordinate maps of the cells
        if coords is not None and coords.ndim == 3:
            grid = (int(coords.shape[1]), int(coords.shape[2]))
            if grid[0] * grid[1] > input_rows:
                grid = None
    return AttentionView(
        mem_slots,
        mem_slots + input_rows,
        int(core.num_heads),
        int(core.num_blocks),
        image_grid=grid,
        height=frame_height,
    )


def _frame(env: Any, spec: str) -> np.ndarray:
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] < 3:
        raise RolloutError(
            f"environment '{spec}' did not return an RGB frame from render() (got "
            f"{type(frame).__name__}); --video, --render and --attention need rgb_array rendering"
        )
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
