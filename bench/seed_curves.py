"""Return curves of several seeds per variant, drawn one way for every bench script
(``bench/learning.py``, ``bench/ablation_table.py --plot``): each seed thin, the seeds' mean over
the frames all of them reached thick, one colour per variant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

Curve = tuple[Sequence[float], Sequence[float]]  # (env frames, mean episode return)


def mean_curve(curves: list[Curve], points: int = 200) -> tuple[list[float], list[float]]:
    """The seeds' mean return on ``points`` frames from 0 to the last frame every seed reached
    (each curve linearly interpolated, held at its first value before its first row)."""
    import numpy as np

    grid = np.linspace(0, min(steps[-1] for steps, _ in curves), points)
    mean = np.mean([np.interp(grid, steps, returns) for steps, returns in curves], axis=0)
    return grid.tolist(), mean.tolist()


def draw(
    groups: dict[str, list[Curve]], out: Path, title: str, size: tuple[float, float] = (7, 4)
) -> None:
    """Write ``out`` (PNG): per variant, its seeds' curves thin and their mean thick, labelled
    with the variant and its number of seeds; variants with no curve are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    for index, (name, curves) in enumerate(groups.items()):
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        colour = f"C{index}"
        for steps, returns in curves:
            ax.plot(steps, returns, color=colour, alpha=0.3, linewidth=0.8)
        grid, mean = mean_curve(curves)
        ax.plot(grid, mean, color=colour, linewidth=2, label=f"{name} ({len(curves)} seeds)")
    ax.set_xlabel("env frames")
    ax.set_ylabel("mean episode return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
