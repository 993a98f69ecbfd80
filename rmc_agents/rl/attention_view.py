"""A picture of the Relational Memory Core's attention for one step, drawn beside a game frame.

:class:`AttentionView` turns one step's weights ``[num_blocks, num_heads, N, N]`` (query rows
first, key rows last; rows ``0..mem_slots-1`` are memories, the rest the input rows, as
:meth:`rmc_agents.core.RelationalMemory.forward` returns them) into an RGB panel:

- a heat map of the mean over heads: one row per memory slot (the queries whose results become the
  next memory), one column per key: the memory slots, then the input rows;
- the same map per head, in small panels;
- where the inputs are the cells of an image, each slot's attention to those cells laid out on the
  image grid ("where in the observation this memory reads");
- a colour bar. Colours use a fixed square-root scale over [0, 1], so the same colour means the
  same weight in every frame and small weights (a row of N weights sums to 1) stay visible.

Everything static (labels, frames, colour bar) is drawn once; each step only fills the maps, so a
few hundred frames take well under a second on top of the game's own rendering. Text comes from
pygame's bundled font (no display is needed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["AttentionView", "colour_map", "side_by_side"]

BACKGROUND = (24, 24, 28)
_BACKGROUND = np.array(BACKGROUND, dtype=np.uint8)
TEXT = (230, 230, 230)
DIM_TEXT = (160, 160, 170)
SEPARATOR = (255, 255, 255)

# Anchor colours of a perceptually ordered dark-blue -> green -> yellow ramp (viridis-like).
_RAMP = np.array(
    [
        (68, 1, 84),
        (72, 40, 120),
        (62, 74, 137),
        (49, 104, 142),
        (38, 130, 142),
        (31, 158, 137),
        (53, 183, 121),
        (110, 206, 88),
        (181, 222, 43),
        (253, 231, 37),
    ],
    dtype=np.float64,
)


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """256 RGB colours interpolated between the ramp's anchors."""
    x = np.linspace(0.0, 1.0, len(_RAMP))
    t = np.linspace(0.0, 1.0, 256)
    return (
        np.stack([np.interp(t, x, _RAMP[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)
    )


def colour_map(values: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] -> uint8 RGB ``[..., 3]`` on the square-root scale of the colour bar."""
    v = np.sqrt(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0))
    return _lut()[np.round(v * 255).astype(np.int64)]


def side_by_side(frame: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """``frame`` with ``panel`` to its right, both top-aligned on the background colour."""
    fh, fw = frame.shape[:2]
    ph, pw = panel.shape[:2]
    height = max(fh, ph)
    out = np.empty((height, fw + pw, 3), dtype=np.uint8)
    out[:fh, :fw] = frame[..., :3]
    out[:ph, fw:] = panel
    out[fh:, :fw] = _BACKGROUND
    out[ph:, fw:] = _BACKGROUND
    return out


class _Text:
    """Renders strings to uint8 RGB arrays with pygame's default font (cached per string)."""

    def __init__(self) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        pygame.font.init()
        self._pg = pygame
        self._fonts: dict[int, object] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    def render(self, text: str, size: int, colour: tuple[int, int, int]) -> np.ndarray:
        key = (text, size, colour)
        if key not in self._cache:
            if size not in self._fonts:
                self._fonts[size] = self._pg.font.Font(None, size)
            surface = self._fonts[size].render(text, True, colour, BACKGROUND)
            self._cache[key] = self._pg.surfarray.array3d(surface).transpose(1, 0, 2).copy()
        return self._cache[key]


class _Canvas:
    """A uint8 picture with the few drawing operations the panel needs."""

    def __init__(self, pixels: np.ndarray, text: _Text) -> None:
        self.pixels = pixels
        self._text = text

    def text(
        self, x: int, y: int, s: str, size: int = 16, colour=TEXT, anchor: str = "left"
    ) -> int:
        """Draw ``s`` with its top at ``y``; ``anchor`` says where ``x`` is. Returns the width."""
        img = self._text.render(s, size, colour)
        h, w = img.shape[:2]
        if anchor == "centre":
            x -= w // 2
        elif anchor == "right":
            x -= w
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.pixels.shape[1]), min(y + h, self.pixels.shape[0])
        if x1 > x0 and y1 > y0:
            self.pixels[y0:y1, x0:x1] = img[y0 - y : y1 - y, x0 - x : x1 - x]
        return w

    def fill(self, x: int, y: int, w: int, h: int, colour) -> None:
        self.pixels[max(y, 0) : y + h, max(x, 0) : x + w] = np.asarray(colour, dtype=np.uint8)

    def cells(self, x: int, y: int, colours: np.ndarray, cw: int, ch: int) -> int:
        """Paint ``colours`` ``[rows, cols, 3]`` as a grid of ``cw`` x ``ch`` pixel cells.

        Returns the width painted."""
        block = np.repeat(np.repeat(colours, ch, axis=0), cw, axis=1)
        self.pixels[y : y + block.shape[0], x : x + block.shape[1]] = block
        return block.shape[1]

    def key_map(self, x: int, y: int, values: np.ndarray, mem: int, cwm: int, cwi: int, ch: int):
        """A slots x keys map: the first ``mem`` key columns ``cwm`` wide, the inputs ``cwi``."""
        colours = colour_map(values)
        x += self.cells(x, y, colours[:, :mem], cwm, ch)
        if values.shape[1] > mem:
            self.cells(x, y, colours[:, mem:], cwi, ch)


def _clamp(value: float, low: int, high: int) -> int:
    return int(max(low, min(high, value)))


class AttentionView:
    """Draws the panel for one step's weights; see the module docstring.

    Args:
        mem_slots: memory slots (query rows shown; the first key columns).
        num_keys: ``N``, all key columns: ``mem_slots`` + input rows.
        num_heads: attention heads.
        num_blocks: attention blocks (the last block's weights are shown).
        image_grid: ``(rows, cols)`` when the first ``rows * cols`` input rows are the cells of an
            image (row-major), to also draw each slot's attention on that grid; else None.
        height: the panel is at least this tall (e.g. the game frame's height).

    Raises:
        ValueError: sizes that do not fit together (named in the message).
    """

    def __init__(
        self,
        mem_slots: int,
        num_keys: int,
        num_heads: int,
        num_blocks: int = 1,
        image_grid: tuple[int, int] | None = None,
        height: int = 0,
    ) -> None:
        if mem_slots < 1 or num_heads < 1 or num_blocks < 1:
            raise ValueError(
                f"mem_slots, num_heads and num_blocks must be >= 1, got "
                f"{mem_slots}, {num_heads}, {num_blocks}"
            )
        if num_keys < mem_slots:
            raise ValueError(f"num_keys ({num_keys}) must be >= mem_slots ({mem_slots})")
        if image_grid is not None and image_grid[0] * image_grid[1] > num_keys - mem_slots:
            raise ValueError(
                f"image_grid {image_grid} has more cells than the {num_keys - mem_slots} input rows"
            )
        self.mem_slots, self.num_keys = mem_slots, num_keys
        self.num_heads, self.num_blocks = num_heads, num_blocks
        self.num_inputs = num_keys - mem_slots
        self.image_grid = image_grid
        self._text = _Text()
        self._layout(height)
        self._template = self._draw_static()

    # ------------------------------------------------------------------------------- layout

    def _layout(self, min_height: int) -> None:
        m, n = self.mem_slots, self.num_keys
        self.left = 46
        # key column widths: memory columns stay at least 14 px wide when there are many inputs
        self.cwi = _clamp(400 / n, 1, 26)
        self.cwm = max(self.cwi, 14)
        self.ch = _clamp(130 / m, 6, 26)
        map_w = self.map_w = m * self.cwm + self.num_inputs * self.cwi
        y = 10
        self.title_y = y
        y += 40
        self.header_y = y
        y += 20
        self.map_y = y
        y += m * self.ch + 14
        # per-head panels, two per line
        self.head_cwm, self.head_cwi = max(1, self.cwm // 2), max(1, self.cwi // 2)
        self.head_ch = _clamp(self.ch // 2, 3, 12)
        head_w = m * self.head_cwm + self.num_inputs * self.head_cwi
        self.head_cols = 2 if self.num_heads > 1 and 2 * head_w + 20 <= max(map_w, 540) else 1
        self.head_boxes: list[tuple[int, int]] = []
        if self.num_heads > 1:
            self.heads_label_y = y
            y += 18
            for h in range(self.num_heads):
                col, row = h % self.head_cols, h // self.head_cols
                hx = self.left + col * (head_w + 20)
                hy = y + row * (m * self.head_ch + 18)
                self.head_boxes.append((hx, hy + 14))
            rows = -(-self.num_heads // self.head_cols)
            y += rows * (m * self.head_ch + 18) + 6
        # each slot's attention on the image grid
        self.grid_boxes: list[tuple[int, int]] = []
        if self.image_grid is not None:
            gr, gc = self.image_grid
            self.grid_px = _clamp(90 / max(gr, gc), 2, 18)
            gw = gc * self.grid_px
            per_line = max(1, (max(map_w, 400) + 12) // (gw + 12))
            self.grid_label_y = y
            y += 18
            for s in range(m):
                col, row = s % per_line, s // per_line
                self.grid_boxes.append(
                    (self.left + col * (gw + 12), y + 14 + row * (gr * self.grid_px + 20))
                )
            lines = -(-m // per_line)
            y += lines * (gr * self.grid_px + 20) + 6
        self.bar_y = y + 4
        y += 44
        self.bar_w = max(min(map_w, 300), 160)
        content_w = max(
            map_w,
            self.head_cols * (head_w + 20),
            (max(b[0] for b in self.grid_boxes) - self.left + self.image_grid[1] * self.grid_px)
            if self.grid_boxes
            else 0,
            self.bar_w,
            250,
        )
        self.width = self.left + content_w + 16
        self.height = max(y, min_height)

    def _draw_static(self) -> np.ndarray:
        blank = np.empty((self.height, self.width, 3), dtype=np.uint8)
        blank[:] = _BACKGROUND
        c = _Canvas(blank, self._text)
        m, n, left = self.mem_slots, self.num_keys, self.left
        c.text(left - 36, self.title_y, "RMC memory attention", 22)
        heads = f"mean of {self.num_heads} heads" if self.num_heads > 1 else "1 head"
        block = f", block {self.num_blocks}/{self.num_blocks}" if self.num_blocks > 1 else ""
        c.text(left - 36, self.title_y + 20, f"rows: slots (queries); {heads}{block}", 16, DIM_TEXT)
        # column groups and labels
        mem_w, in_w = m * self.cwm, self.num_inputs * self.cwi
        c.text(left + mem_w // 2, self.header_y - 2, "memory", 15, DIM_TEXT, "centre")
        if self.num_inputs:
            c.text(left + mem_w + in_w // 2, self.header_y - 2, "input", 15, DIM_TEXT, "centre")
        for k in range(n):
            if k < m and self.cwm >= 18:
                x = left + k * self.cwm + self.cwm // 2
                c.text(x, self.header_y + 9, f"m{k}", 14, DIM_TEXT, "centre")
            elif k >= m and self.cwi >= 18:
                x = left + mem_w + (k - m) * self.cwi + self.cwi // 2
                c.text(x, self.header_y + 9, f"i{k - m}", 14, DIM_TEXT, "centre")
        for s in range(m):
            y = self.map_y + s * self.ch + (self.ch - 11) // 2
            c.text(left - 6, y, f"m{s}", 15, TEXT, "right")
        if self.num_heads > 1:
            c.text(left - 36, self.heads_label_y, "per head", 15, DIM_TEXT)
            for h, (hx, hy) in enumerate(self.head_boxes):
                c.text(hx, hy - 13, f"head {h}", 14, DIM_TEXT)
        if self.grid_boxes:
            gr, gc = self.image_grid
            label = f"slot -> input cells ({gr}x{gc}), each scaled to its max"
            c.text(left - 36, self.grid_label_y, label, 15, DIM_TEXT)
            for s, (gx, gy) in enumerate(self.grid_boxes):
                c.text(gx, gy - 13, f"m{s}", 14, DIM_TEXT)
        # colour bar on the square-root scale, ticks at their weights
        bar = colour_map(np.linspace(0, 1, self.bar_w) ** 2)[None].repeat(10, axis=0)
        c.pixels[self.bar_y : self.bar_y + 10, left : left + self.bar_w] = bar
        for tick in (0.0, 0.05, 0.2, 0.5, 1.0):
            x = left + int(round(np.sqrt(tick) * (self.bar_w - 1)))
            c.fill(x, self.bar_y + 10, 1, 4, TEXT)
            c.text(x, self.bar_y + 15, f"{tick:g}", 14, DIM_TEXT, "centre")
        c.text(left - 36, self.bar_y + 28, "attention weight", 14, DIM_TEXT)
        return c.pixels

    # -------------------------------------------------------------------------------- drawing

    def draw(self, weights: np.ndarray | Sequence | None, step: int | None = None) -> np.ndarray:
        """The panel for one step.

        Args:
            weights: ``[num_blocks, num_heads, N, N]`` (or ``[num_heads, N, N]`` for one block);
                None for an episode's first frame, before the memory has attended to anything
                (the panel says so).
            step: shown in the title when given.

        Returns:
            uint8 ``[height, width, 3]``.

        Raises:
            ValueError: ``weights`` has another shape than the view was made for.
        """
        if weights is None:
            c = _Canvas(self._template.copy(), self._text)
            if step is not None:
                c.text(self.width - 10, self.title_y + 3, f"step {step}", 16, TEXT, "right")
            c.text(self.left, self.map_y + 4, "episode start: the memory has not", 15, TEXT)
            c.text(self.left, self.map_y + 22, "attended yet (its first step follows)", 15, TEXT)
            return c.pixels
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 3:
            w = w[None]
        expected = (self.num_blocks, self.num_heads, self.num_keys, self.num_keys)
        if w.shape != expected:
            raise ValueError(f"attention weights have shape {w.shape}, expected {expected}")
        w = w[-1, :, : self.mem_slots, :]  # last block, memory queries: [heads, M, N]
        mean = w.mean(axis=0)
        c = _Canvas(self._template.copy(), self._text)
        if step is not None:
            c.text(self.width - 10, self.title_y + 3, f"step {step}", 16, TEXT, "right")
        m = self.mem_slots
        c.key_map(self.left, self.map_y, mean, m, self.cwm, self.cwi, self.ch)
        if self.num_inputs:
            sep = self.left + m * self.cwm
            c.fill(sep - 1, self.map_y - 2, 2, self.mem_slots * self.ch + 4, SEPARATOR)
        for h, (hx, hy) in enumerate(self.head_boxes):
            c.key_map(hx, hy, w[h], m, self.head_cwm, self.head_cwi, self.head_ch)
        if self.grid_boxes:
            gr, gc = self.image_grid
            cells = mean[:, self.mem_slots : self.mem_slots + gr * gc]
            # each slot's weights on the cells, rescaled to its own maximum: where it looks
            peak = np.maximum(cells.max(axis=1, keepdims=True), 1e-12)
            rel = (cells / peak).reshape(self.mem_slots, gr, gc) ** 2
            for s, (gx, gy) in enumerate(self.grid_boxes):
                c.cells(gx, gy, colour_map(rel[s]), self.grid_px, self.grid_px)
        return c.pixels
