"""The ``ci-load`` command: the collection as a program of its own."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples"
TASKS = ["build", "plan", "pull", "push", "recipes", "run"]


def ci_load(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ci_load_tasks.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_the_version_is_the_package_s():
    result = ci_load("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ci-load ")
    assert "unknown" not in result.stdout  # setup.sh installs the package


def test_the_list_names_every_task_with_its_help_line():
    result = ci_load("--list")

    assert result.returncode == 0, result.stderr
    listed = [
        line.split()[0]
        for line in result.stdout.splitlines()
        if line.startswith("  ") and not line.startswith("    ")
    ]
    assert listed == TASKS
    assert "ci-load." not in result.stdout  # the tasks are the program's own


@pytest.mark.parametrize("task", TASKS)
def test_help_on_each_task_lists_the_compose_file_flag_and_its_short_form(task):
    result = ci_load("--help", task)

    assert result.returncode == 0, result.stderr
    assert "  -f, --compose-file " in result.stdout


def test_a_plan_from_a_repo_without_tasks_py_reads_the_compose_file_given_with_f(
    docker_config, tmp_path
):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config))

    result = ci_load(
        "plan",
        "-f",
        "docker-compose.yml",
        "--service",
        "app",
        "--builder",
        "classic",
        "--json",
        env=env,
        cwd=project,
    )

    assert result.returncode == 0, result.stderr
    assert not (project / "tasks.py").exists()
    plan = json.loads(result.stdout)
    assert plan["compose_files"] == [str(project / "docker-compose.yml")]
    assert plan["stages"] == ["toolchain", "hello", "deps", "build"]


def test_the_installed_console_script_is_the_same_program():
    script = shutil.which("ci-load")
    if script is None:
        pytest.fail("no ci-load script on PATH: run `bash devkit/setup.sh` (pip install -e .)")

    result = subprocess.run([script, "--list"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ci_load("--list").stdout
