"""The benchmark's table as a bar chart PNG (matplotlib, headless).

run.py hands draw() the same figures its text table prints: one Bar per
scenario and variant. One panel per scenario, each with its own seconds axis
(cold takes tens of seconds, no-op about one: on a shared axis the fast
scenarios would be slivers), one colour per variant, the floor as a dashed line
across its panel, and every bar labelled with its median and ratio to the
floor. A figure that failed or did not run is written where its bar would be.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FAILED = "FAILED"
NOT_RUN = "NOT RUN"

FLOOR = "floor"
FLOOR_COLOUR = "#555555"


@dataclass(frozen=True)
class Bar:
    scenario: str
    variant: str
    seconds: float | None  # the median, push excluded; None: no figure
    ratio: float | None = None  # to the floor of the same scenario
    status: str = "ok"  # "ok", FAILED or NOT_RUN


def missing() -> str | None:
    """What to install, when matplotlib is not there (checked before a run starts)."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed: pip install -e '.[bench]' (devkit/setup.sh does)"
    return None


def draw(bars: Sequence[Bar], path: Path, title: str):
    """Write the chart to path as PNG; returns the matplotlib Figure."""
    # Imported here, not at the top: run.py checks missing() before it spends
    # minutes measuring, and the table does not need matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # no display: CI runners and ssh sessions have none
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    scenarios = list(dict.fromkeys(b.scenario for b in bars))
    variants = list(dict.fromkeys(b.variant for b in bars))
    colours = _colours(variants, matplotlib.colormaps["tab10"])

    ncols = min(2, len(scenarios)) or 1
    nrows = max(1, math.ceil(len(scenarios) / ncols))
    # Wide enough for the title's long lines (machine, versions) too.
    width = max(11.0, 1.1 * len(variants) * ncols + 1.5)
    fig = Figure(figsize=(width, 3.9 * nrows + 1.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax in axes[len(scenarios) :]:
        ax.set_visible(False)

    for ax, scenario in zip(axes, scenarios):
        row = {b.variant: b for b in bars if b.scenario == scenario}
        _panel(ax, scenario, [row.get(v) for v in variants], variants, colours)

    fig.suptitle(title, fontsize=10)
    fig.legend(
        handles=[Patch(facecolor=colours[v], label=v) for v in variants],
        loc="outside lower center",
        ncols=min(len(variants), 6),
        frameon=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return fig


def _colours(variants: Sequence[str], cmap) -> dict:
    # The floor grey, the others in the colour map's order, so a variant keeps
    # its colour in every panel.
    others = [v for v in variants if v != FLOOR]
    found = {v: cmap(i % cmap.N) for i, v in enumerate(others)}
    found[FLOOR] = FLOOR_COLOUR
    return found


def _panel(ax, scenario: str, bars: list, variants: list, colours: dict) -> None:
    xs = range(len(variants))
    heights = [b.seconds if b and b.seconds is not None else 0.0 for b in bars]
    top = max(heights, default=0.0) or 1.0
    ax.bar(xs, heights, color=[colours[v] for v in variants], width=0.75)
    ax.set_ylim(0, top * 1.22)  # room for the labels above the tallest bar
    ax.set_ylabel("seconds (median, push excluded)")
    ax.set_xticks(list(xs), variants, rotation=25, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)

    floor = next((b for b in bars if b and b.variant == FLOOR), None)
    if floor and floor.seconds is not None:
        ax.axhline(floor.seconds, color=FLOOR_COLOUR, linestyle="--", linewidth=1)
        ax.set_title(f"{scenario} (floor {floor.seconds:.2f} s)", fontsize=10)
    else:
        ax.set_title(f"{scenario} (floor: no figure)", fontsize=10)

    for x, variant, bar in zip(xs, variants, bars):
        if bar is None or bar.seconds is None:
            # Said where the bar would stand, never just left out.
            status = bar.status if bar and bar.status != "ok" else NOT_RUN
            ax.text(
                x, top * 0.03, status, rotation=90, ha="center", va="bottom",
                fontsize=9, fontweight="bold", color="#b00020",
                bbox={"facecolor": "white", "edgecolor": "#b00020", "pad": 2},
            )  # fmt: skip
            continue
        label = f"{bar.seconds:.2f} s"
        if variant != FLOOR:
            label += f"\n{bar.ratio:.1f}x floor" if bar.ratio is not None else "\nno floor"
        ax.text(x, bar.seconds + top * 0.015, label, ha="center", va="bottom", fontsize=8)
