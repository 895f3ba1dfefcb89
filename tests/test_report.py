"""The report: JSON for machines, a table for people."""

import json

from ci_load_tasks.report import Report, StageResult


def stage(name, cached, seconds=0.5, run=0, total=2):
    steps = [{"instruction": f"RUN step {i}", "cached": i >= run} for i in range(total)]
    return StageResult(name, cached, seconds, steps)


def test_the_summary_lists_recipes_then_stages_aligned_under_a_header():
    report = Report(stages=[stage("a", True), stage("app", False, 2.25, run=1)],
                    recipes=[stage("hello", True, 0.1)])

    assert report.summary().splitlines() == [
        "stage         cache  seconds  steps run",
        "recipe hello  hit        0.1  0/2",
        "a             hit        0.5  0/2",
        "app           miss       2.2  1/2",
    ]


def test_a_report_with_no_builds_has_no_summary():
    assert Report().summary() == ""


def test_the_written_report_holds_every_field(tmp_path):
    path = tmp_path / "report.json"
    report = Report(stages=[stage("app", True)], tagged=["x:1"], dry=False, error=None)

    report.write(str(path))

    data = json.loads(path.read_text())
    assert set(data) == {"stages", "recipes", "tagged", "pushed", "pulled", "missing",
                         "step_seconds", "dry", "error"}
    assert data["stages"][0] == {
        "name": "app", "cached": True, "seconds": 0.5,
        "steps": [{"instruction": "RUN step 0", "cached": True},
                  {"instruction": "RUN step 1", "cached": True}],
    }
