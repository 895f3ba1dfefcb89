"""The whole pipeline on the bundled example, against a real dockerd and registry.

Each run goes through invoke's command line, as a user's CI would. A wiped
engine stands for a fresh CI runner: no images, no build cache.
"""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.engine import build_base_image

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples"

pytestmark = pytest.mark.docker

ALL_STAGES = ["toolchain", "hello", "deps", "build", "test"]


def ci_load(env, *args, check=True):
    """Run ``inv ci-load.<args>`` and return the finished process."""
    process = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and process.returncode != 0:
        pytest.fail(
            f"ci-load {' '.join(args)} exited {process.returncode}\n"
            f"--- stdout (end) ---\n{process.stdout[-4000:]}\n"
            f"--- stderr (end) ---\n{process.stderr[-4000:]}"
        )
    return process


def project_flags(project: Path, cache_repo: str, *extra):
    return [
        "--compose-file",
        str(project / "docker-compose.yml"),
        "--service",
        "app",
        "--other-service",
        "test",
        "--cache-repo",
        cache_repo,
        "--recipe-repo",
        "cilocal/recipe",
        "--recipe-compose",
        str(project / "recipes" / "docker-compose.yml"),
        *extra,
    ]


def read_report(path: Path) -> dict:
    return json.loads(path.read_text())


def stage_table(report: dict) -> dict:
    """stage name -> (cached, number of steps that ran)."""
    return {
        s["name"]: (s["cached"], sum(not step["cached"] for step in s["steps"]))
        for s in report["stages"]
    }


def fresh_runner(engine):
    """Wipe the engine like a new CI machine, which has only its base image."""
    engine.wipe()
    build_base_image(engine)


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy)
    return copy


@pytest.fixture(scope="module")
def cold(engine, registry, tmp_path_factory):
    """One cold run with push, into a cache repo of this module's own."""
    fresh_runner(engine)
    root = tmp_path_factory.mktemp("cold")
    project = root / "project"
    shutil.copytree(EXAMPLE, project)
    cache_repo = f"{registry.address}/e2e/cache"
    report = root / "report.json"
    process = ci_load(
        engine.env(),
        "ci-load.run",
        *project_flags(project, cache_repo, "--push", "--report", str(report)),
    )
    return {"repo": cache_repo, "report": read_report(report), "output": process.stdout}


def test_a_cold_run_builds_every_stage_and_pushes_every_cache_image(cold, registry):
    table = stage_table(cold["report"])

    assert list(table) == [*ALL_STAGES, "app"]
    assert all(not cached for cached, _ in table.values())
    expected_tags = {f"app_stage_{s}" for s in ALL_STAGES} | {"app_final", "app_recipe_hello"}
    assert set(registry.tags("e2e/cache")) == expected_tags
    assert sorted(cold["report"]["pushed"]) == sorted(
        f"{cold['repo']}:{tag}" for tag in expected_tags
    )
    assert "example/app-test:latest" in cold["report"]["tagged"]


def test_a_warm_run_on_a_fresh_runner_runs_no_step_and_the_image_works(
    cold, engine, base_image, project, tmp_path
):
    fresh_runner(engine)
    report_path = tmp_path / "warm.json"

    process = ci_load(
        engine.env(),
        "ci-load.run",
        *project_flags(project, cold["repo"], "--report", str(report_path)),
    )

    report = read_report(report_path)
    assert stage_table(report) == {name: (True, 0) for name in [*ALL_STAGES, "app"]}
    assert [r["cached"] for r in report["recipes"]] == [True]
    assert "Running in" not in process.stdout  # the classic builder ran no container
    run = engine.docker("run", "--rm", "--network", "none", "example/app:latest")
    assert "Hello, world! This is example-app 1.4.2." in run.stdout
    test_image = engine.docker(
        "image", "inspect", "--format", "{{.Id}}", "example/app-test:latest"
    ).stdout.strip()
    test_stage = engine.docker(
        "image", "inspect", "--format", "{{.Id}}", f"{cold['repo']}:app_stage_test"
    ).stdout.strip()
    assert test_image == test_stage


def test_a_changed_source_file_rebuilds_only_the_stages_that_use_it(
    cold, engine, base_image, project, tmp_path
):
    fresh_runner(engine)
    source = project / "src" / "greet.sh"
    source.write_text(source.read_text() + "\n# a change that only the build stage sees\n")
    report_path = tmp_path / "partial.json"

    ci_load(
        engine.env(),
        "ci-load.run",
        *project_flags(project, cold["repo"], "--report", str(report_path)),
    )

    table = stage_table(read_report(report_path))
    assert {name: cached for name, (cached, _) in table.items()} == {
        "toolchain": True,
        "hello": True,
        "deps": True,
        "build": False,
        "test": False,
        "app": False,
    }


def test_each_step_task_alone_does_what_run_does(cold, engine, base_image, project, tmp_path):
    fresh_runner(engine)
    env = engine.env()
    flags = project_flags(project, cold["repo"])

    ci_load(env, "ci-load.pull", *flags)
    ci_load(env, "ci-load.recipes", *flags)
    ci_load(env, "ci-load.build", *flags, "--report", str(tmp_path / "build.json"))
    pushed = ci_load(env, "ci-load.push", *flags)

    table = stage_table(read_report(tmp_path / "build.json"))
    assert all(cached for cached, _ in table.values()), table
    # Rebuilt from the pulled cache, every image has the id the registry holds.
    assert "every cache image is in the registry already: nothing to push" in pushed.stdout


def test_a_branch_run_reads_the_main_cache_through_another_repo_and_pushes_its_own(
    cold, engine, base_image, registry, project, tmp_path
):
    fresh_runner(engine)
    report_path = tmp_path / "branch.json"

    ci_load(
        engine.env(),
        "ci-load.run",
        *project_flags(
            project,
            cold["repo"],
            "--cache-version",
            "feature-x",
            "--other-repo",
            f"{cold['repo']}:app",
            "--push",
            "--report",
            str(report_path),
        ),
    )

    table = stage_table(read_report(report_path))
    assert all(cached for cached, _ in table.values()), table
    tags = set(registry.tags("e2e/cache"))
    assert {"feature-x_app_final", "feature-x_app_stage_build"} <= tags


def test_a_dry_run_prints_the_docker_commands_and_builds_nothing(cold, engine, base_image, project):
    fresh_runner(engine)

    process = ci_load(
        engine.env(), "--dry", "ci-load.run", *project_flags(project, cold["repo"], "--push")
    )

    assert "docker build -f" in process.stdout
    assert "# dry run: not run" in process.stdout
    images = engine.docker("image", "ls", "--format", "{{.Repository}}").stdout.split()
    assert images == ["cilocal/busybox"]


def test_the_work_directory_is_removed_unless_kept(cold, engine, base_image, project, tmp_path):
    kept = tmp_path / "kept"
    flags = project_flags(project, cold["repo"])

    planned = ci_load(engine.env(), "ci-load.plan", *flags)
    ci_load(engine.env(), "ci-load.recipes", *flags, "--workdir", str(kept), "--keep")
    ci_load(engine.env(), "ci-load.build", *flags, "--workdir", str(kept), "--keep")

    first_line = planned.stdout.splitlines()[0]
    assert first_line.startswith("work directory: /")
    assert not Path(first_line.split(": ", 1)[1]).exists()
    # Each stage build of the classic builder reads a copy of the Dockerfile
    # without the stages it does not need (the service's, #5, has no test).
    assert sorted(p.name for p in kept.iterdir()) == [
        "app.pruned-5.Dockerfile",
        "app.pruned-build.Dockerfile",
        "app.pruned-deps.Dockerfile",
        "app.pruned-hello.Dockerfile",
        "app.pruned-test.Dockerfile",
        "recipes.yml",
        "stages.yml",
    ]
    assert "AS test" not in (kept / "app.pruned-5.Dockerfile").read_text()
    for name in ("stages.yml",):
        check = subprocess.run(
            ["docker", "compose", "-f", str(kept / name), "config", "-q"],
            env=engine.env(),
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr


def test_build_without_its_recipe_images_says_to_run_recipes_first(engine, base_image, project):
    fresh_runner(engine)

    process = ci_load(
        engine.env(), "ci-load.build", *project_flags(project, "127.0.0.1:9/nowhere"), check=False
    )

    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == (
        "ci-load build: recipe image cilocal/recipe:hello is not built; "
        "run ci-load.recipes first (ci-load.run does both)"
    )


def test_a_failing_build_exits_non_zero_naming_the_stage_and_pushes_nothing(
    engine, base_image, registry, project
):
    dockerfile = project / "docker" / "app.Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace("RUN sleep 1 \\", "RUN false && sleep 1 \\", 1)
    )
    cache_repo = f"{registry.address}/e2e/broken"

    process = ci_load(
        engine.env(), "ci-load.run", *project_flags(project, cache_repo, "--push"), check=False
    )

    assert process.returncode == 1
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("ci-load run: building stage build failed with exit code 1")
    assert "Traceback" not in process.stderr
    assert registry.tags("e2e/broken") == []


def test_a_stage_the_targets_do_not_need_is_never_built_by_the_classic_builder(
    engine, base_image, registry, project, tmp_path
):
    # The test stage comes before the final one, so the classic builder would
    # build it on the way to the final image; here it would fail the run.
    dockerfile = project / "docker" / "app.Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace(
            "RUN sleep 1 && sh /src/tests/test_app.sh", "RUN false && sh /src/tests/test_app.sh", 1
        )
    )
    fresh_runner(engine)
    flags = [
        flag
        for flag in project_flags(
            project,
            f"{registry.address}/e2e/unneeded",
            "--builder",
            "classic",
            "--push",
            "--report",
            str(tmp_path / "r.json"),
        )
        if flag not in ("--other-service", "test")
    ]

    ci_load(engine.env(), "ci-load.run", *flags)

    report = read_report(tmp_path / "r.json")
    assert list(stage_table(report)) == ["toolchain", "hello", "deps", "build", "app"]
    assert "app_stage_test" not in registry.tags("e2e/unneeded")


def closed_loopback_port():
    """A loopback port nothing listens on: bound once by us, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_pull_from_a_registry_that_refuses_the_connection_warns_and_succeeds(engine, project):
    port = closed_loopback_port()

    process = ci_load(
        engine.env(), "ci-load.pull", *project_flags(project, f"127.0.0.1:{port}/e2e/nowhere")
    )

    assert process.returncode == 0
    warnings = [
        line
        for line in process.stdout.splitlines()
        if line.startswith("warning: the registry did not answer")
    ]
    assert len(warnings) == 1, process.stdout
    assert warnings[0].startswith("warning: the registry did not answer as a missing cache would (")
    assert warnings[0].endswith(
        f"127.0.0.1:{port}: connect: connection refused); building without that "
        "cache. Check --cache-repo and `docker login`"
    )


INLINE_COMPOSE = """\
services:
  tool:
    image: inline/tool:1
    build:
      context: .
      dockerfile_inline: |
        FROM cilocal/busybox:latest AS prep
        RUN echo 'prepared, costs $$5' > /prep
        FROM cilocal/busybox:latest
        COPY --from=prep /prep /prep
        CMD ["cat", "/prep"]
"""


def test_an_inline_dockerfile_is_built_and_cached_and_a_dockerfile_in_the_context_is_ignored(
    engine, base_image, registry, tmp_path
):
    project = tmp_path / "inline"
    project.mkdir()
    (project / "docker-compose.yml").write_text(INLINE_COMPOSE)
    (project / "Dockerfile").write_text("FROM this-must-never-be-read\n")
    flags = [
        "--compose-file",
        str(project / "docker-compose.yml"),
        "--service",
        "tool",
        "--cache-repo",
        f"{registry.address}/e2e/inline",
    ]

    ci_load(engine.env(), "ci-load.run", *flags, "--push")
    fresh_runner(engine)
    ci_load(engine.env(), "ci-load.run", *flags, "--report", str(tmp_path / "warm.json"))

    table = stage_table(read_report(tmp_path / "warm.json"))
    assert table == {"prep": (True, 0), "tool": (True, 0)}
    run = engine.docker("run", "--rm", "--network", "none", "inline/tool:1")
    assert run.stdout == "prepared, costs $5\n"
