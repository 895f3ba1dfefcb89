"""A corpus of real-world project shapes, read the way Docker reads them.

Each directory of tests/data/corpus/ is a small project of one shape (see the
README there): compose file(s), Dockerfile(s), sources, ``case.json`` (how
ci-load is run on it) and ``expected.json`` (what ``ci-load.plan --json`` must
say about it, as Docker and compose would read the project).

Every project is planned through the real command line, with no daemon: the
``docker compose`` plugin of a private DOCKER_CONFIG renders the compose
files. Every case is planned and built with the classic builder unless its
``case.json`` names another (``builder``). The projects the classic builder
can build (those whose ``case.json`` has a ``build`` section) are also run for
real, twice: a cold run that pushes the cache, then a run on a wiped engine
that must take every stage from it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.engine import build_base_image

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "corpus"


def _load_cases():
    cases = []
    for directory in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        case = json.loads((directory / "case.json").read_text(encoding="utf-8"))
        case["kind"] = directory.name
        case["expected"] = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
        cases.append(case)
    return cases


CASES = _load_cases()
BUILDABLE = [case for case in CASES if "build" in case]


def _params(cases):
    return [pytest.param(case, id=case["id"]) for case in cases]


# -- running ci-load on a copy of a project -----------------------------------------


def copy_project(case, tmp_path) -> Path:
    """A copy of the project in a directory of its own name (the compose project)."""
    project = tmp_path / case["kind"]
    shutil.copytree(CORPUS / case["kind"], project)
    for name in ("case.json", "expected.json"):
        (project / name).unlink()
    return project


def case_env(case, project: Path, base) -> dict:
    """``base`` plus the project's own variables ($PROJECT: the copy's path)."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH")] if p)
    for name, value in case.get("env", {}).items():
        env[name] = value.replace("$PROJECT", str(project))
    return env


def ci_load(project: Path, env: dict, *args) -> subprocess.CompletedProcess:
    """``python -m invoke --search-root REPO ARGS`` in the project; must succeed."""
    process = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if process.returncode != 0:
        pytest.fail(
            f"ci-load {' '.join(args)} exited {process.returncode}\n"
            f"--- stdout (end) ---\n{process.stdout[-4000:]}\n"
            f"--- stderr (end) ---\n{process.stderr[-4000:]}",
            pytrace=False,
        )
    return process


def service_flags(case) -> list:
    # The builder is named, never auto: what auto picks depends on the docker
    # client of the machine, and the expectations hold for one builder.
    return [
        "--service",
        case["service"],
        "--builder",
        case.get("builder", "classic"),
        *case.get("args", []),
    ]


# -- comparing a plan with expected.json ----------------------------------------------


def normalize(value, project: Path, workdir: str):
    """Paths as expected.json writes them.

    A path in the project becomes relative to it ("." for the project
    itself); in a text (a path followed by words, as in a warning), the
    project is ``$PROJECT`` and the work directory ``$WORKDIR``. No path in
    the corpus holds white space.
    """
    if isinstance(value, dict):
        return {k: normalize(v, project, workdir) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, project, workdir) for v in value]
    if not isinstance(value, str):
        return value
    root = str(project)
    if value == root:
        return "."
    if value.startswith(root + os.sep) and not any(c.isspace() for c in value):
        return value[len(root) + 1 :]
    return value.replace(workdir, "$WORKDIR").replace(root, "$PROJECT")


def pick(plan: dict, key: str):
    """The value at ``key``: a plan key, or a path into it such as
    ``builds/-1/images`` (list indexes may be negative)."""
    value = plan
    for part in key.split("/"):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return f"<no {part!r} in the plan>"
    return value


def plan_subset(plan: dict, expected: dict) -> dict:
    """The plan's values of the keys expected.json names; a number where the
    plan has a list stands for the list's length."""
    found = {}
    for key, wanted in expected.items():
        value = pick(plan, key)
        if isinstance(wanted, int) and not isinstance(wanted, bool) and isinstance(value, list):
            value = len(value)
        found[key] = value
    return found


@pytest.mark.parametrize("case", _params(CASES))
def test_the_plan_reads_the_project_as_docker_does(case, tmp_path, docker_config, _shield_env):
    project = copy_project(case, tmp_path)
    for name in case.get("crlf", []):
        # Guard against a checkout that converted the line endings.
        assert b"\r\n" in (project / name).read_bytes(), f"{name} lost its CRLF endings"
    env = case_env(case, project, dict(os.environ, DOCKER_CONFIG=str(docker_config)))

    result = ci_load(project, env, "ci-load.plan", "--json", *service_flags(case))

    raw = json.loads(result.stdout)
    plan = normalize(raw, project, raw["workdir"])
    assert plan_subset(plan, case["expected"]) == case["expected"]


# -- the same plan from Compose v1 ----------------------------------------------------

# Projects Compose v1 (docker-compose 1.29) cannot read: keys newer than it.
# ci-load stops with compose's own reason.
V1_REFUSES = {
    "build_args_map": "services.app.build.args contains true, which is an invalid type, "
    "it should be a string, number, or a null",
    "dockerfile_inline": "services.app.build contains unsupported option: 'dockerfile_inline'",
    "platform_and_digest": "services.app.build contains unsupported option: 'platforms'",
    "stage_dependencies": "services.app.build contains unsupported option: 'additional_contexts'",
}

# Where v1's plan differs from v2's: (text in v1's plan as JSON, v2's text).
# Each must be found, so a difference that goes away is noticed.
# (And, in every project whose main service has no image:, the name compose
# gives that image: PROJECT_SERVICE in v1, PROJECT-SERVICE in v2.)
V1_DIFFERS = {
    # v1 renders an arg listed without a value and not set in the environment
    # as "" (v2 leaves it out): docker gets NOT_SET= instead of the
    # Dockerfile's default. Nothing in v1's output tells the two apart.
    "build_args_list": [
        (', "NOT_SET": ""', ""),
        (', "--build-arg", "NOT_SET="', ""),
        (" --build-arg NOT_SET=", ""),
    ],
}


def plan_with(case, project: Path, env: dict, *compose) -> dict:
    result = ci_load(project, env, "ci-load.plan", "--json", *service_flags(case), *compose)
    raw = json.loads(result.stdout)
    return normalize(raw, project, raw["workdir"])


def as_v2_would_say(value, v1: str, v2: list):
    """A v1 plan's compose commands written with v2's command, ``v2``."""
    if isinstance(value, dict):
        return {k: as_v2_would_say(v, v1, v2) for k, v in value.items()}
    if isinstance(value, list):
        if value and value[0] == v1:
            value = [*v2, *value[1:]]
        return [as_v2_would_say(v, v1, v2) for v in value]
    if isinstance(value, str):
        return value.replace(f"{v1} ", " ".join(v2) + " ")
    return value


def comparable(plan: dict) -> dict:
    # stages.yml copies each build section as compose rendered it, and v1
    # leaves out defaults v2 writes (dockerfile: Dockerfile); ci-load builds
    # with docker build, not from that file.
    plan = dict(plan, files={k: v for k, v in plan["files"].items() if k != "stages.yml"})
    del plan["compose_version"]
    return plan


READABLE_BY_V1 = [case for case in CASES if case["kind"] not in V1_REFUSES]


@pytest.mark.parametrize("case", _params(READABLE_BY_V1))
def test_compose_v1_gives_the_plan_compose_v2_gives(
    case, tmp_path, docker_config, compose_v1, _shield_env
):
    project = copy_project(case, tmp_path)
    env = case_env(case, project, dict(os.environ, DOCKER_CONFIG=str(docker_config)))

    v2 = plan_with(case, project, env)
    v1 = plan_with(case, project, env, "--compose", str(compose_v1))

    assert v1["compose_version"].startswith("1.29.")
    assert not v2["compose_version"].startswith("1.")
    v2_compose = v2["push"][: v2["push"].index("-f")]  # docker compose
    text = json.dumps(comparable(as_v2_would_say(v1, str(compose_v1), v2_compose)))
    differences = list(V1_DIFFERS.get(case["kind"], []))
    service = case["service"]
    v1_image, v2_image = (
        next(b for b in plan["builds"] if b["compose_service"] == service)["images"][0]
        for plan in (v1, v2)
    )
    if v1_image != v2_image:
        assert (v1_image, v2_image) == (f"{project.name}_{service}", f"{project.name}-{service}")
        differences.append((f'"{v1_image}"', f'"{v2_image}"'))
        differences.append((f" {v1_image} ", f" {v2_image} "))
    for v1_text, v2_text in differences:
        assert v1_text in text, f"v1 no longer differs here: {v1_text!r}"
        text = text.replace(v1_text, v2_text)
    assert json.loads(text) == comparable(v2)


@pytest.mark.parametrize("kind", sorted(V1_REFUSES))
def test_compose_v1_stops_at_keys_it_does_not_know_with_one_line(
    kind, tmp_path, docker_config, compose_v1, _shield_env
):
    case = next(c for c in CASES if c["kind"] == kind)
    project = copy_project(case, tmp_path)
    env = case_env(case, project, dict(os.environ, DOCKER_CONFIG=str(docker_config)))

    process = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "ci-load.plan"]
        + [*service_flags(case), "--compose", str(compose_v1)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == (
        f"ci-load plan: compose could not read {project / 'compose.yaml'}: "
        f"{V1_REFUSES[kind]} (Compose {compose_v1_version(compose_v1)} is v1, which knows "
        "no compose keys newer than 2021: if the key is right, Compose v2 may read this file)"
    )


def compose_v1_version(binary: Path) -> str:
    answer = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
    return answer.split()[2].rstrip(",")


# -- building for real ----------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("case", _params(BUILDABLE))
def test_a_second_run_on_a_fresh_runner_takes_every_stage_from_the_cache(
    case, engine, engine_env, registry, base_image, tmp_path
):
    build = case["build"]
    project = copy_project(case, tmp_path)
    env = case_env(case, project, engine_env)
    repo = "corpus/" + case["kind"].replace("_", "-")
    cache_repo = f"{registry.address}/{repo}"
    flags = [*service_flags(case), "--cache-repo", cache_repo]

    ci_load(project, env, "ci-load.run", *flags, "--push", "--report", str(tmp_path / "cold.json"))
    # A fresh CI runner: nothing but the base image.
    engine.wipe()
    build_base_image(engine)
    ci_load(project, env, "ci-load.run", *flags, "--report", str(tmp_path / "warm.json"))

    # What was built first, then where it came from.
    assert registry.tags(repo) == sorted(build["cache_tags"])
    image = f"{cache_repo}:{case['service']}_final"
    for check in build.get("checks", []):
        run = engine.docker("run", "--rm", "--network", "none", image, *check["command"])
        assert run.stdout == check["stdout"], check["command"]
    report = json.loads((tmp_path / "warm.json").read_text())
    assert [(s["name"], s["cached"]) for s in report["stages"]] == [
        (name, True) for name in build["report_stages"]
    ], [(s["name"], s["steps"]) for s in report["stages"] if not s["cached"]]
