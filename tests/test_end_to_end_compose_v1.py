"""The whole pipeline on the bundled example with Compose v1 (Debian's
docker-compose 1.29), against a real dockerd and registry.

The same runs as tests/test_end_to_end.py (classic builder) and
tests/test_end_to_end_buildkit.py (BuildKit), which use Compose v2, with
``--compose <docker-compose 1.29>``: cold with push, then warm on a wiped
engine. Compose renders the project and, with the classic builder, pulls the
cache; it pushes the cache with either builder.
"""

import shutil
import subprocess
import sys

import pytest
from test_end_to_end import (
    ALL_STAGES,
    EXAMPLE,
    REPO,
    ci_load,
    fresh_runner,
    project_flags,
    read_report,
    stage_table,
)
from test_end_to_end_buildkit import BUILDKIT_CLIENT

pytestmark = pytest.mark.docker

EXPECTED_TAGS = {f"app_stage_{s}" for s in ALL_STAGES} | {"app_final", "app_recipe_hello"}

BUILDER_FLAGS = {
    "classic": ["--builder", "classic"],
    "buildkit": ["--docker", BUILDKIT_CLIENT, "--builder", "buildkit"],
}


def v1_flags(project, cache_repo, compose_v1, builder, *extra):
    return project_flags(
        project, cache_repo, "--compose", str(compose_v1), *BUILDER_FLAGS[builder], *extra
    )


@pytest.fixture(scope="module", params=sorted(BUILDER_FLAGS))
def cold(request, engine, registry, compose_v1, tmp_path_factory):
    """One cold run with push per builder, into a cache repo of its own."""
    builder = request.param
    fresh_runner(engine)
    root = tmp_path_factory.mktemp(f"cold-v1-{builder}")
    project = root / "project"
    shutil.copytree(EXAMPLE, project)
    repo = f"e2e-v1-{builder}/cache"
    report = root / "report.json"
    process = ci_load(
        engine.env(),
        "ci-load.run",
        *v1_flags(
            project,
            f"{registry.address}/{repo}",
            compose_v1,
            builder,
            "--push",
            "--report",
            str(report),
        ),
    )
    return {
        "builder": builder,
        "repo": repo,
        "cache_repo": f"{registry.address}/{repo}",
        "report": read_report(report),
        "output": process.stdout,
    }


def test_a_cold_run_with_compose_v1_builds_every_stage_and_pushes_with_v1(
    cold, registry, compose_v1
):
    report, output = cold["report"], cold["output"]

    assert report["builder"] == cold["builder"]
    assert set(stage_table(report)) == {*ALL_STAGES, "app"}
    assert all(not cached for cached, _ in stage_table(report).values())
    assert set(registry.tags(cold["repo"])) == EXPECTED_TAGS
    assert sorted(report["pushed"]) == sorted(f"{cold['cache_repo']}:{t}" for t in EXPECTED_TAGS)
    assert f"note: {compose_v1} is Compose 1.29." in output
    # v1 read the project, and pushed; with the classic builder it pulled too.
    assert f"+ {compose_v1} -f " in output
    assert f"+ COMPOSE_PARALLEL_LIMIT=4 {compose_v1} -f " in output
    assert (" pull --ignore-pull-failures\n" in output) is (cold["builder"] == "classic")


def test_a_warm_run_with_compose_v1_on_a_fresh_runner_runs_no_step(
    cold, engine, base_image, compose_v1, tmp_path
):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    fresh_runner(engine)
    report_path = tmp_path / "warm.json"

    ci_load(
        engine.env(),
        "ci-load.run",
        *v1_flags(
            project, cold["cache_repo"], compose_v1, cold["builder"], "--report", str(report_path)
        ),
    )

    report = read_report(report_path)
    assert stage_table(report) == {name: (True, 0) for name in [*ALL_STAGES, "app"]}
    assert [r["cached"] for r in report["recipes"]] == [True]
    if cold["builder"] == "classic":
        assert len(report["pulled"]) == len(EXPECTED_TAGS)
    run = engine.docker("run", "--rm", "--network", "none", "example/app:latest")
    assert "Hello, world! This is example-app 1.4.2." in run.stdout


def test_compose_v1_runs_the_image_ci_load_tagged_for_a_service_without_image(
    engine, base_image, compose_v1, tmp_path
):
    # v1 names it PROJECT_SERVICE, the project being the directory's name
    # lowercased with only a-z0-9_- kept: myproject_app here.
    project = tmp_path / "My.Project"
    project.mkdir()
    (project / "Dockerfile").write_text(
        f'FROM {base_image} AS base\nRUN echo built > /built\nFROM base\nCMD ["cat", "/built"]\n'
    )
    (project / "docker-compose.yml").write_text(
        "services:\n  app:\n    build: .\n    network_mode: none\n"
    )
    env = engine.env()

    process = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
        + ["ci-load.build", "--service", "app", "--compose", str(compose_v1)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "-t myproject_app " in process.stdout

    # `docker-compose run` builds the image when it is missing; it must not.
    run = subprocess.run(
        [str(compose_v1), "run", "--rm", "app"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("built")
    assert "Building app" not in run.stdout + run.stderr
    assert "did not already exist" not in run.stderr
