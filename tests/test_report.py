"""The report: JSON for machines, a table for people."""

import json

from ci_load_tasks.report import Report, StageResult


def stage(name, cached, seconds=0.5, run=0, total=2):
    steps = [{"instruction": f"RUN step {i}", "cached": i >= run} for i in range(total)]
    return StageResult(name, cached, seconds, steps)


def test_the_summary_lists_recipes_then_stages_aligned_under_a_header():
    report = Report(
        stages=[stage("a", True), stage("app", False, 2.25, run=1)],
        recipes=[stage("hello", True, 0.1)],
    )

    assert report.summary().splitlines() == [
        "stage         cache  seconds  steps run  cache image",
        "recipe hello  hit        0.1  0/2        not pushed",
        "a             hit        0.5  0/2        not pushed",
        "app           miss       2.2  1/2        not pushed",
    ]


def test_a_report_with_no_builds_has_no_summary():
    assert Report().summary() == ""


def test_the_written_report_holds_every_field(tmp_path):
    path = tmp_path / "report.json"
    report = Report(stages=[stage("app", True)], tagged=["x:1"], dry=False, error=None)

    report.write(str(path))

    data = json.loads(path.read_text())
    assert set(data) == {
        "stages",
        "recipes",
        "tagged",
        "pushed",
        "push_skipped",
        "retries",
        "pulled",
        "missing",
        "registry_checked",
        "builder",
        "step_seconds",
        "dry",
        "error",
    }
    assert data["stages"][0] == {
        "name": "app",
        "cached": True,
        "seconds": 0.5,
        "steps": [
            {"instruction": "RUN step 0", "cached": True},
            {"instruction": "RUN step 1", "cached": True},
        ],
        "built": True,
        "failed": False,
    }
    assert (data["push_skipped"], data["retries"], data["registry_checked"], data["builder"]) == (
        [],
        {},
        False,
        None,
    )


def test_the_written_report_holds_skipped_pushes_retries_and_the_builder(tmp_path):
    path = tmp_path / "report.json"
    report = Report(
        pushed=["c:app_final"],
        push_skipped=["c:app_stage_base"],
        retries={"push": 1},
        registry_checked=True,
        builder="buildkit",
    )

    report.write(str(path))

    data = json.loads(path.read_text())
    assert (
        data["pushed"],
        data["push_skipped"],
        data["retries"],
        data["registry_checked"],
        data["builder"],
    ) == (
        ["c:app_final"],
        ["c:app_stage_base"],
        {"push": 1},
        True,
        "buildkit",
    )


def test_the_summary_says_a_stage_that_was_not_built_has_a_current_cache_image():
    report = Report(
        stages=[stage("app", False, 2.25, run=1), StageResult("base", True, 0.0, built=False)]
    )

    assert report.summary().splitlines() == [
        "stage  cache  seconds  steps run  cache image",
        "app    miss       2.2  1/2        not pushed",
        "base   hit        0.0  not built  already in registry",
    ]


def test_the_summary_ends_with_the_build_that_failed_and_never_calls_it_pushed():
    report = Report(
        stages=[stage("base", True), StageResult("build", False, 1.25, built=False, failed=True)],
        # Even were its name among the pushed, a failed build made no image.
        pushed=["reg/cache:app_stage_build"],
    )

    assert report.summary({"build": "reg/cache:app_stage_build"}).splitlines() == [
        "stage  cache   seconds  steps run  cache image",
        "base   hit         0.5  0/2        not pushed",
        "build  FAILED      1.2  -          not pushed",
    ]


# -- whether each cache image was pushed, as text and as Markdown ---------------

IMAGES = {
    "recipe hello": "reg/cache:app_recipe_hello",
    "base": "reg/cache:app_stage_base",
    "app": "reg/cache:app_final",
}


def pushed_report(**fields):
    return Report(
        stages=[stage("base", True), stage("app", False, 2.25, run=1)],
        recipes=[stage("hello", True, 0.1)],
        pushed=["reg/cache:app_final"],
        push_skipped=["reg/cache:app_stage_base"],
        **fields,
    )


def test_the_summary_says_per_stage_whether_its_cache_image_was_pushed():
    assert pushed_report().summary(IMAGES).splitlines() == [
        "stage         cache  seconds  steps run  cache image",
        "recipe hello  hit        0.1  0/2        not pushed",
        "base          hit        0.5  0/2        already in registry",
        "app           miss       2.2  1/2        pushed",
    ]


def test_the_markdown_summary_is_a_table_with_a_title_and_right_aligned_seconds():
    assert pushed_report().markdown(IMAGES, "ci-load run app: done").splitlines() == [
        "### ci-load run app: done",
        "",
        "| stage | cache | seconds | steps run | cache image |",
        "| --- | --- | ---: | --- | --- |",
        "| recipe hello | hit | 0.1 | 0/2 | not pushed |",
        "| base | hit | 0.5 | 0/2 | already in registry |",
        "| app | miss | 2.2 | 1/2 | pushed |",
    ]


def test_the_markdown_summary_of_a_failed_run_ends_with_its_error_kept_in_one_cell():
    error = "building stage app failed | see `docker build` output\nabove"
    lines = pushed_report(error=error).markdown(IMAGES).splitlines()

    assert lines[-2:] == [
        "",
        "**Error:** building stage app failed \\| see \\`docker build\\` output above",
    ]


def test_the_markdown_summary_of_a_run_that_built_nothing_says_so():
    assert Report(error="no such service").markdown().splitlines() == [
        "No image was built.",
        "",
        "**Error:** no such service",
    ]


def test_with_several_main_services_each_build_names_its_group_in_summary_and_json():
    base, tool = stage("base", True), stage("tool", False, run=1)
    base.group = tool.group = "app"
    worker = stage("worker", True)
    worker.group = "worker"
    report = Report(stages=[base, tool, worker], pushed=["R:app_stage_tool"])
    images = {"app: base": "R:app_stage_base", "app: tool": "R:app_stage_tool"}

    assert report.summary(images).splitlines() == [
        "stage           cache  seconds  steps run  cache image",
        "app: base       hit        0.5  0/2        not pushed",
        "app: tool       miss       0.5  1/2        pushed",
        "worker: worker  hit        0.5  0/2        not pushed",
    ]
    assert [(s["group"], s["name"]) for s in report.as_dict()["stages"]] == [
        ("app", "base"),
        ("app", "tool"),
        ("worker", "worker"),
    ]


def test_a_run_of_one_service_has_no_group_in_its_report():
    assert "group" not in Report(stages=[stage("app", True)]).as_dict()["stages"][0]
