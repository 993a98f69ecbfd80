"""pygame picture of a Mini-Pacman game (imported only when an environment renders).

The picture always shows the whole map, so a person sees the game; for the viewport id the
agent's window is outlined, so the person also sees what the agent sees.
"""

from __future__ import annotations

import os

import numpy as np

from .maps import HEIGHT, WALLS, WIDTH

CELL = 28  # pixels per map cell
STATUS = 30  # pixels of the status line under the map
COLOURS = {
    "background": (0, 0, 0),
    "wall": (40, 50, 160),
    "food": (230, 220, 200),
    "pill": (255, 150, 60),
    "pacman": (255, 225, 0),
    "ghost": (230, 40, 40),
    "edible": (80, 120, 255),
    "window": (120, 255, 120),
    "text": (235, 235, 235),
}


class Renderer:
    """Draws snapshots from ``GameCore.lane``; ``human`` also shows them in a window."""

    def __init__(self, render_mode: str, fps: int, cell: int = CELL):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pg = pygame
        self.render_mode, self.fps, self.cell = render_mode, fps, cell
        pygame.font.init()
        self.font = pygame.font.Font(None, int(STATUS * 0.8))
        self.size = (WIDTH * cell, HEIGHT * cell + STATUS)
        self.window = None
        self.clock = None

    def draw(self, game: dict, viewport_size: int | None, mode: str) -> np.ndarray | None:
        """Draw ``game``; return an HxWx3 uint8 array (``rgb_array``) or show it (``human``)."""
        pg, c = self._pg, self.cell
        surface = pg.Surface(self.size)
        surface.fill(COLOURS["background"])
        for r, col in np.argwhere(WALLS == 1):
            pg.draw.rect(surface, COLOURS["wall"], (col * c, r * c, c, c))
        for r, col in np.argwhere(game["food"]):
            pg.draw.circle(surface, COLOURS["food"], self._centre(r, col), max(2, c // 10))
        for r, col in np.argwhere(game["pills"]):
            pg.draw.circle(surface, COLOURS["pill"], self._centre(r, col), c // 3)
        edible = game["power"] > 0
        for (r, col), _ in game["ghosts"]:
            self._ghost(surface, r, col, COLOURS["edible"] if edible else COLOURS["ghost"])
        r, col = game["pacman"]
        pg.draw.circle(surface, COLOURS["pacman"], self._centre(r, col), int(c * 0.42))
        if viewport_size is not None:
            half = viewport_size // 2
            top, left = max(r - half, 0), max(col - half, 0)
            bottom, right = min(r + half + 1, HEIGHT), min(col + half + 1, WIDTH)
            pg.draw.rect(
                surface,
                COLOURS["window"],
                (left * c, top * c, (right - left) * c, (bottom - top) * c),
                width=3,
            )
        status = (
            f"score {game['score']:g}   level {game['level']}   power {game['power']}   {mode}"
            + ("   GAME OVER" if game["dead"] else "")
        )
        text = self.font.render(status, True, COLOURS["text"])
        surface.blit(text, (8, HEIGHT * c + (STATUS - text.get_height()) // 2))
        if self.render_mode == "rgb_array":
            return np.ascontiguousarray(pg.surfarray.pixels3d(surface).transpose(1, 0, 2))
        self._show(surface)
        return None

    def _centre(self, r: int, col: int) -> tuple[int, int]:
        return (col * self.cell + self.cell // 2, r * self.cell + self.cell // 2)

    def _ghost(self, surface, r: int, col: int, colour) -> None:
        pg, c = self._pg, self.cell
        x, y = col * c, r * c
        pg.draw.circle(surface, colour, (x + c // 2, y + c // 2 - 1), int(c * 0.4))
        pg.draw.rect(surface, colour, (x + c // 10, y + c // 2, c - c // 5, int(c * 0.4)))
        for dx in (-c // 6, c // 6):
            pg.draw.circle(surface, (255, 255, 255), (x + c // 2 + dx, y + c // 2 - 3), c // 9)

    def _show(self, surface) -> None:
        pg = self._pg
        if self.window is None:
            pg.display.init()
            pg.display.set_caption("Mini-Pacman")
            self.window = pg.display.set_mode(self.size)
            self.clock = pg.time.Clock()
        pg.event.pump()
        self.window.blit(surface, (0, 0))
        pg.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.window is not None:
            self._pg.display.quit()
            self.window = None
