"""What a run shows, end to end: the summary, --quiet, --verbose, CI folds,
GitHub's job summary, and the live display on a real pseudo-terminal.

Each run goes through invoke's command line (or the ``ci-load`` program)
against the private dockerd and registry, on a two-stage project of this
file's own (tests/data/output/): small, so that the runs here stay quick.
"""

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest
from test_end_to_end import REPO, ci_load

pytestmark = pytest.mark.docker

PROJECT = REPO / "tests" / "data" / "output"
FAULT = "fault injected: the last stage fails here"
SUMMARY_HEADER = re.compile(r"^stage +cache +seconds +steps run +cache image$")
# Lines only docker itself prints: the classic builder's steps, BuildKit's vertices.
DOCKER_LINE = re.compile(r"^(Step \d+/\d+ : |#\d+ |Sending build context)")
# Variables that would change the display mode or add CI folds.
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CI_JOB_ID")


@pytest.fixture
def project(tmp_path):
    """A copy of the project whose stages no other test has built: every
    test starts cold, whatever ran before on the shared engine."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT, copy)
    dockerfile = copy / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("@TOKEN@", uuid.uuid4().hex))
    return copy


def local_env(engine, **extra):
    """The engine's environment with no CI variables of the machine running
    the tests, plus ``extra``."""
    env = {k: v for k, v in engine.env().items() if k not in CI_VARIABLES}
    env.update(extra)
    return env


def flags(project, registry, repo, *extra):
    return [
        "--compose-file",
        str(project / "docker-compose.yml"),
        "--service",
        "app",
        "--cache-repo",
        f"{registry.address}/output/{repo}",
        "--retry-delay",
        "0",
        *extra,
    ]


def break_app_stage(project: Path) -> None:
    dockerfile = project / "Dockerfile"
    text = dockerfile.read_text()
    assert text.count("RUN cat /greeting.txt") == 1
    dockerfile.write_text(text.replace("RUN cat /greeting.txt", f"RUN echo '{FAULT}' && false", 1))


def summary_rows(stdout: str) -> dict:
    """stage -> (cache, steps run, cache image) from the printed summary table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if SUMMARY_HEADER.match(line))
    rows = {}
    for line in lines[start + 1 :]:
        cells = re.split(r" {2,}", line.strip())
        if len(cells) != 5:
            break
        rows[cells[0]] = (cells[1], cells[3], cells[4])
    return rows


# -- GitHub Actions: groups and the job summary -------------------------------------


def test_github_gets_a_group_per_step_and_a_job_summary_table_per_run(
    engine, base_image, registry, project, tmp_path
):
    summary = tmp_path / "summary.md"
    env = local_env(engine, CI="true", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))

    cold = ci_load(env, "ci-load.run", *flags(project, registry, "github", "--push"))
    ci_load(env, "ci-load.run", *flags(project, registry, "github", "--push"))

    lines = cold.stdout.splitlines()
    for step in ("pull", "recipes", "build", "push"):
        opened = lines.index(f"::group::ci-load {step}")
        closed = lines.index("::endgroup::", opened)
        assert lines[closed + 1].startswith(f"== {step} done in "), cold.stdout
        assert "::group::" not in "".join(lines[opened + 1 : closed])  # GitHub has no nesting
    tables = summary.read_text().split("### ")[1:]
    assert len(tables) == 2, summary.read_text()
    cold_title, cold_table = tables[0].split("\n", 1)
    assert re.fullmatch(r"ci-load run app: done in \d+\.\ds", cold_title)
    assert cold_table.strip().splitlines()[:2] == [
        "| stage | cache | seconds | steps run | cache image |",
        "| --- | --- | ---: | --- | --- |",
    ]
    cold_rows = markdown_rows(cold_table)
    assert [(row[0], row[1], row[4]) for row in cold_rows] == [
        ("base", "miss", "pushed"),
        ("app", "miss", "pushed"),
    ], summary.read_text()
    assert all(re.fullmatch(r"\d+\.\d", row[2]) for row in cold_rows)
    assert [row[4] for row in markdown_rows(tables[1])] == [
        "already in registry",
        "already in registry",
    ], summary.read_text()
    assert set(registry.tags("output/github")) == {"app_stage_base", "app_final"}


def markdown_rows(table: str) -> list:
    """The cells of each row of a Markdown summary table, header left out."""
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_a_failed_run_adds_its_error_line_to_the_job_summary(
    engine, base_image, registry, project, tmp_path
):
    break_app_stage(project)
    summary = tmp_path / "summary.md"
    env = local_env(engine, CI="true", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))

    process = ci_load(env, "ci-load.run", *flags(project, registry, "github-failed"), check=False)

    assert process.returncode == 1, process.stdout + process.stderr
    error = process.stderr.strip().splitlines()[-1]
    assert error.startswith("ci-load run: building ")
    text = summary.read_text()
    assert re.search(r"^### ci-load run app: failed after \d+\.\ds$", text, re.M), text
    last = text.strip().splitlines()[-1]
    # The same line as on stderr; Markdown's special characters escaped.
    unescaped = re.sub(r"\\(.)", r"\1", last)
    assert unescaped == "**Error:** " + error[len("ci-load run: ") :], text
    # After the group is closed, the end of docker's output is shown again.
    lines = process.stdout.splitlines()
    closed = max(i for i, line in enumerate(lines) if line == "::endgroup::")
    assert any(FAULT in line for line in lines[closed:]), process.stdout


# -- --quiet ----------------------------------------------------------------------


def test_quiet_prints_the_summary_and_no_command_or_docker_output(
    engine, base_image, registry, project
):
    env = local_env(engine)

    process = ci_load(env, "ci-load.run", *flags(project, registry, "quiet", "--quiet", "--push"))

    lines = process.stdout.splitlines()
    assert not [line for line in lines if line.startswith("+ ")], process.stdout
    assert not [line for line in lines if DOCKER_LINE.match(line)], process.stdout
    assert not [line for line in lines if line.startswith("== ")], process.stdout
    rows = summary_rows(process.stdout)
    assert {stage: (cache, pushed) for stage, (cache, _, pushed) in rows.items()} == {
        "base": ("miss", "pushed"),
        "app": ("miss", "pushed"),
    }, process.stdout
    assert re.fullmatch(r"ci-load finished in \d+\.\ds", lines[-1])
    # Nothing but the table and its closing line (and a blank line before them).
    assert [line for line in lines if line.strip()] == lines[-4:], process.stdout


def test_quiet_with_a_failing_run_step_shows_the_end_of_dockers_log_and_the_one_line_error(
    engine, base_image, registry, project
):
    break_app_stage(project)
    env = local_env(engine)

    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(REPO),
            "ci-load.run",
            *flags(project, registry, "quiet-failed", "--quiet"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )

    lines = process.stdout.splitlines()
    assert process.returncode == 1, process.stdout
    assert lines[-1].startswith("ci-load run: building ") and "service app" in lines[-1]
    tail_start = lines.index("the end of the failed command's output:")
    assert any(FAULT in line for line in lines[tail_start:-1]), process.stdout
    assert any(re.search(r"(non-zero code|exit code): 1", line) for line in lines[tail_start:])
    # docker's log shows once, as the tail, and no command echo is shown.
    assert sum(FAULT in line for line in lines) == sum(FAULT in line for line in lines[tail_start:])
    assert not [line for line in lines if line.startswith("+ ")], process.stdout


# -- --verbose --------------------------------------------------------------------


def test_verbose_prints_each_generated_file_as_written(engine, base_image, registry, project):
    workdir = project.parent / "work"
    env = local_env(engine)

    process = ci_load(
        env,
        "ci-load.build",
        *flags(project, registry, "verbose", "--verbose", "--keep", "--workdir", str(workdir)),
    )

    written = workdir / "stages.yml"
    shown = f"--- generated {written} ---\n{written.read_text().rstrip()}\n--- end of {written} ---"
    assert shown in process.stdout


def test_quiet_and_verbose_at_once_is_a_one_line_error(engine, project, registry):
    process = ci_load(
        local_env(engine),
        "ci-load.run",
        *flags(project, registry, "both", "--quiet", "--verbose"),
        check=False,
    )

    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [
        "ci-load run: quiet and verbose are both on (--quiet/--verbose, ci_load.quiet/"
        "ci_load.verbose or INVOKE_CI_LOAD_QUIET/VERBOSE): choose one"
    ]


def test_quiet_from_the_environment_works(engine, base_image, registry, project):
    env = local_env(engine, INVOKE_CI_LOAD_QUIET="1")

    process = ci_load(env, "ci-load.build", *flags(project, registry, "quiet-env"))

    assert not [line for line in process.stdout.splitlines() if line.startswith("+ ")]
    assert summary_rows(process.stdout)


# -- GitLab -----------------------------------------------------------------------


def test_under_gitlab_each_step_is_a_collapsed_section(engine, base_image, registry, project):
    env = local_env(engine, CI="true", CI_JOB_ID="4242")

    # Bytes: text mode would turn the markers' \r into newlines.
    process = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "ci-load.run"]
        + flags(project, registry, "gitlab"),
        env=env,
        capture_output=True,
        timeout=600,
    )

    assert process.returncode == 0, process.stderr.decode()
    text = process.stdout.decode()
    for step in ("pull", "recipes", "build"):
        start = re.search(
            rf"\x1b\[0Ksection_start:(\d+):ci_load_{step}\[collapsed=true\]\r\x1b\[0K"
            rf"== ci-load {step} ==\n",
            text,
        )
        assert start, text
        end = re.search(rf"\x1b\[0Ksection_end:(\d+):ci_load_{step}\r\x1b\[0K\n", text)
        assert end and end.start() > start.end(), text
        assert int(end.group(1)) >= int(start.group(1))
        assert text[end.end() :].startswith(f"== {step} done in ")


# -- the live display on a terminal -------------------------------------------------


def run_in_terminal(argv, env, cwd, stop_when=None, signum=None, timeout=300):
    """Run ``argv`` on a new pseudo-terminal (120x40); returns (exit code,
    everything it wrote). With ``stop_when``, send ``signum`` once that text
    has been written."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    output = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if stop_when and not sent and stop_when.encode() in output:
                os.kill(pid, signum)
                sent = True
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{argv} did not finish in {timeout}s:\n{output.decode()[-3000:]}")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def terminal_env(engine):
    return local_env(
        engine,
        TERM="xterm-256color",
        PYTHONPATH=os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
    )


CI_LOAD_PROGRAM = [sys.executable, "-m", "ci_load_tasks.cli"]
# rich hides the cursor while it draws and shows it again when it stops.
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def test_on_a_terminal_the_ci_load_program_shows_a_live_status_and_exits_0(
    engine, base_image, registry, project
):
    code, output = run_in_terminal(
        [*CI_LOAD_PROGRAM, "run", *flags(project, registry, "terminal", "--push")],
        terminal_env(engine),
        project,
    )

    assert code == 0, output[-3000:]
    # The status line: the step and its time, redrawn in place.
    assert re.search(r"ci-load \S*build\S* \S*\d+\.\ds", output), output[-3000:]
    assert output.count(HIDE_CURSOR) >= 1 and output.rfind(SHOW_CURSOR) > output.rfind(HIDE_CURSOR)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "")
    assert re.search(r"^stage +cache +seconds +steps run +cache image$", plain, re.M), plain
    assert re.search(r"^ci-load finished in \d+\.\ds$", plain, re.M)


def test_on_a_terminal_a_failed_run_ends_with_its_error_line_whole_and_exit_code_1(
    engine, base_image, registry, project
):
    break_app_stage(project)

    code, output = run_in_terminal(
        [*CI_LOAD_PROGRAM, "run", *flags(project, registry, "terminal-failed")],
        terminal_env(engine),
        project,
    )

    assert code == 1, output[-3000:]
    last = output.rstrip("\r\n").rsplit("\n", 1)[-1].rstrip("\r")
    # Whole and clean: no status line drawn over it, no escape codes in it.
    assert last.startswith("ci-load run: building ") and "service app" in last, repr(output[-2000:])
    assert "\x1b" not in last, repr(last)
    assert output.rfind(SHOW_CURSOR) < output.rfind("ci-load run: building ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_on_a_terminal_a_signal_stops_the_live_display_and_keeps_the_exit_code(
    engine, base_image, registry, project, signum
):
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace("RUN cat /greeting.txt", "RUN sleep 60", 1)
    )

    code, output = run_in_terminal(
        [*CI_LOAD_PROGRAM, "run", *flags(project, registry, "terminal-signal")],
        terminal_env(engine),
        project,
        stop_when="sleep 60",
        signum=signum,
        timeout=120,
    )

    assert code == 128 + signum, output[-3000:]
    last = output.rstrip("\r\n").rsplit("\n", 1)[-1].rstrip("\r")
    name = signal.Signals(signum).name
    assert last.startswith(f"ci-load run: interrupted by {name}"), repr(output[-2000:])
    assert "\x1b" not in last, repr(last)
    assert output.rfind(SHOW_CURSOR) > output.rfind(HIDE_CURSOR)
