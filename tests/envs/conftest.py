"""Mini-Pacman tests: headless pygame, and the core-backend fixture."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest  # noqa: E402

import minipacman  # noqa: E402, F401  (registers the ids)


@pytest.fixture(params=["scalar", "batch"])
def backend(request):
    return request.param
