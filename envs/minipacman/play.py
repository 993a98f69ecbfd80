"""Play Mini-Pacman with the keyboard: ``python -m minipacman.play [--full] [--mode hunt]``.

Arrow keys (or WASD) move, space stays, R restarts, Esc/Q quits. The game waits for your key, one
step per press; the agent's view is outlined on the map for the viewport id.
"""

from __future__ import annotations

import argparse

from .core import MODES
from .env import MiniPacmanEnv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="MiniPacman-Full-v0 (default: viewport)"
    )
    parser.add_argument("--mode", default="regular", choices=list(MODES))
    parser.add_argument("--viewport-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    import pygame

    env = MiniPacmanEnv(
        view="full" if args.full else "viewport",
        mode=args.mode,
        viewport_size=args.viewport_size,
        render_mode="human",
    )
    keys = {
        pygame.K_SPACE: 0,
        pygame.K_RIGHT: 1, pygame.K_d: 1,
        pygame.K_UP: 2, pygame.K_w: 2,
        pygame.K_LEFT: 3, pygame.K_a: 3,
        pygame.K_DOWN: 4, pygame.K_s: 4,
    }  # fmt: skip
    env.reset(seed=args.seed)
    over = False
    print("arrows/WASD move, space stays, R restarts, Esc/Q quits")
    while True:
        event = pygame.event.wait()
        if event.type == pygame.QUIT:
            break
        if event.type != pygame.KEYDOWN:
            continue
        if event.key in (pygame.K_ESCAPE, pygame.K_q):
            break
        if event.key == pygame.K_r:
            env.reset()
            over = False
        elif event.key in keys and not over:
            _, reward, terminated, truncated, info = env.step(keys[event.key])
            if terminated or truncated:
                over = True
                end = "caught" if terminated else "time up"
                print(f"{end}: score {info['score']:g}, level {info['level']} (R restarts)")
    env.close()


if __name__ == "__main__":
    main()
