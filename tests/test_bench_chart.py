"""The benchmark's chart (bench/chart.py) and the figures run.py feeds it: no docker.

NOTE: needs the bench extra (matplotlib) as well as the test extra; devkit/setup.sh
installs both. Not skipped without it: a chart test that skips proves nothing.
"""

from __future__ import annotations

import matplotlib.image
from matplotlib.text import Text

from bench import chart, run
from bench.chart import Bar

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts(fig) -> list:
    return [t.get_text() for t in fig.findobj(Text)]


def test_draws_a_png_with_every_median_and_ratio(tmp_path):
    bars = [
        Bar("cold", "plain", 40.0, 20.0),
        Bar("cold", "ci-load-buildkit", 44.5, 22.25),
        Bar("cold", "floor", 2.0, 1.0),
        Bar("warm", "plain", 38.0, 19.0),
        Bar("warm", "ci-load-buildkit", 2.6, 1.3),
        Bar("warm", "floor", 2.0, 1.0),
    ]
    path = tmp_path / "out" / "results.png"
    fig = chart.draw(bars, path, "ci-load benchmark: medians of 3 rounds\nmachine x")

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > 600 and height > 400
    labels = texts(fig)
    assert "44.50 s\n22.2x floor" in labels
    assert "2.60 s\n1.3x floor" in labels
    assert "2.00 s" in labels  # the floor: no ratio to itself
    assert "warm (floor 2.00 s)" in labels
    assert "ci-load benchmark: medians of 3 rounds\nmachine x" in labels


def test_failed_and_missing_figures_are_written_out(tmp_path):
    bars = [
        Bar("cold", "plain", 40.0, None),
        Bar("cold", "ci-load-classic", None, None, chart.FAILED),
        Bar("cold", "floor", None, None, chart.NOT_RUN),
        # A whole scenario without a figure still gets its panel.
        Bar("partial", "plain", None, None, chart.FAILED),
        Bar("partial", "ci-load-classic", None, None, chart.NOT_RUN),
        # partial's floor is not in the list at all.
    ]
    path = tmp_path / "results.png"
    fig = chart.draw(bars, path, "t")

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    labels = texts(fig)
    assert labels.count(chart.FAILED) == 2
    assert labels.count(chart.NOT_RUN) == 3  # with the floor left out of partial
    assert "40.00 s\nno floor" in labels
    assert "partial (floor: no figure)" in labels


def test_table_and_chart_get_the_same_figures():
    results = run.Results(keep_going=True)
    for seconds in (10.0, 12.0, 11.0):
        results.samples.setdefault(("warm", "plain"), []).append(run.Sample(seconds))
        results.samples.setdefault(("warm", "floor"), []).append(run.Sample(seconds / 4))
    results.samples[("warm", "ci-load-classic")] = [run.Sample(3.0)]
    results.failures[("warm", "ci-load-classic")] = ["exit code 1: ..."]
    results.failures[("warm", "ci-load-buildkit")] = ["not run"]
    variants = ["plain", "ci-load-classic", "ci-load-buildkit", "floor"]

    bars = run.figures(results, ["warm"], variants)

    assert bars == [
        Bar("warm", "plain", 11.0, 4.0, "ok"),
        # A failed round: no median from the rounds that did run.
        Bar("warm", "ci-load-classic", None, None, chart.FAILED),
        Bar("warm", "ci-load-buildkit", None, None, chart.NOT_RUN),
        Bar("warm", "floor", 2.75, 1.0, "ok"),
    ]
    lines = run.table(results, bars)
    assert lines[1].split()[:4] == ["warm", "plain", "11.00", "4.0x"]
    assert lines[2].split()[:3] == ["warm", "ci-load-classic", "FAILED"]
    assert lines[3].split()[:4] == ["warm", "ci-load-buildkit", "NOT", "RUN"]


def test_the_partial_target_says_how_much_of_the_figure_was_docker_building():
    results = run.Results(keep_going=True)
    results.samples[("partial", "ci-load-buildkit")] = [
        run.Sample(5.4, steps_seconds=3.4, in_docker=4.9),
        run.Sample(5.6, steps_seconds=3.4, in_docker=5.0),
        run.Sample(5.5, steps_seconds=3.4, in_docker=5.1),
    ]

    lines = run.targets(
        results, ["partial"], ["ci-load-buildkit"], 3.0, {"plan": 0.4, "startup": 0.2}
    )

    assert lines[0].split()[:3] == ["NOT", "MET", "partial,"]
    # Medians: 5.5 s in all, 5.0 s of it docker's, over the 4.5 s allowed.
    assert lines[1].strip() == (
        "5.00 s of it in docker's builds, 0.50 s ci-load's own: docker alone is over the allowance"
    )
    assert lines[2].split()[:2] == ["NOT", "MET"]
