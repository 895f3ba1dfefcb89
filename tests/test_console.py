"""``console``: what people see; its mode choice, CI markers and job summary.

Plain mode writes to a StringIO here; the live display is tested on a real
pseudo-terminal in tests/test_output.py.
"""

import io
import re

import pytest

from ci_load_tasks.console import (
    LIVE,
    PLAIN,
    Console,
    choose_mode,
    gitlab_section_end,
    gitlab_section_start,
    section_name,
)
from ci_load_tasks.errors import CommandError
from ci_load_tasks.report import Report, StageResult

TAIL = "Step 2/2 : RUN false\nThe command '/bin/sh -c false' returned a non-zero code: 1\n"


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(
    "is_terminal, env, quiet, expected",
    [
        pytest.param(True, {}, False, LIVE, id="a terminal is live"),
        pytest.param(False, {}, False, PLAIN, id="a pipe or file is plain"),
        pytest.param(True, {"CI": "true"}, False, PLAIN, id="CI=true on a terminal is plain"),
        pytest.param(True, {"CI": "0"}, False, PLAIN, id="CI set to anything is plain"),
        pytest.param(True, {"CI": ""}, False, LIVE, id="an empty CI does not count"),
        pytest.param(True, {"TERM": "dumb"}, False, PLAIN, id="a dumb terminal is plain"),
        pytest.param(True, {}, True, PLAIN, id="quiet on a terminal is plain"),
    ],
)
def test_the_mode_is_live_only_on_a_terminal_outside_ci(is_terminal, env, quiet, expected):
    assert choose_mode(is_terminal, env, quiet) == expected


def test_for_stream_asks_the_stream_whether_it_is_a_terminal():
    assert Console.for_stream(Terminal(), env={}).mode == LIVE
    assert Console.for_stream(io.StringIO(), env={}).mode == PLAIN
    assert Console.for_stream(Terminal(), env={"CI": "1"}).mode == PLAIN


# -- GitLab and GitHub markers ---------------------------------------------------


def test_gitlab_section_markers_have_gitlabs_exact_format():
    assert gitlab_section_start("ci_load_build", "== ci-load build ==", 1700000000) == (
        "\x1b[0Ksection_start:1700000000:ci_load_build[collapsed=true]\r\x1b[0K== ci-load build =="
    )
    assert gitlab_section_end("ci_load_build", 1700000009) == (
        "\x1b[0Ksection_end:1700000009:ci_load_build\r\x1b[0K"
    )


def test_a_section_name_keeps_only_what_gitlab_accepts():
    assert section_name("build") == "ci_load_build"
    assert section_name("push partial/2") == "ci_load_push_partial_2"


def plain(env, **options):
    out = io.StringIO()
    return Console(out, env=env, **options), out


def run_step(console, fail=None):
    with console.step("build"):
        console.command("docker build .")
        console.output("Step 1/2 : FROM busybox\n")
        if fail:
            raise fail


def test_under_github_actions_a_step_is_a_group_with_its_time_after_it():
    console, out = plain({"GITHUB_ACTIONS": "true"})

    run_step(console)

    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "",
        "::group::ci-load build",
        "+ docker build .",
        "Step 1/2 : FROM busybox",
        "::endgroup::",
    ]
    assert re.fullmatch(r"== build done in \d+\.\ds ==", lines[5])


def test_under_gitlab_a_step_is_a_collapsed_section_named_after_it():
    console, out = plain({"CI_JOB_ID": "42"})

    run_step(console)

    lines = out.getvalue().split("\n")  # not splitlines(): the markers hold a \r
    assert re.fullmatch(
        r"\x1b\[0Ksection_start:\d+:ci_load_build\[collapsed=true\]\r\x1b\[0K== ci-load build ==",
        lines[1],
    )
    assert re.fullmatch(r"\x1b\[0Ksection_end:\d+:ci_load_build\r\x1b\[0K", lines[4])
    assert lines[5].startswith("== build done in ")


@pytest.mark.parametrize(
    "env, closing",
    [
        pytest.param({"GITHUB_ACTIONS": "true"}, "::endgroup::", id="github"),
        pytest.param({"CI_JOB_ID": "42"}, "\x1b[0Ksection_end:", id="gitlab"),
    ],
)
def test_a_failed_steps_fold_is_closed_before_the_end_of_the_failed_commands_output(env, closing):
    console, out = plain(env)
    error = CommandError("building stage app failed", ("docker",), 1, TAIL)

    with pytest.raises(CommandError):
        run_step(console, fail=error)

    text = out.getvalue()
    closed = text.index(closing)
    assert text.index("== build failed after ") > closed
    assert text.rindex("returned a non-zero code: 1") > closed
    # Printed once, however often the error passes by the console.
    console.explain(error)
    assert out.getvalue().count("returned a non-zero code: 1") == 1


def test_without_ci_folds_a_failed_commands_output_is_not_printed_twice():
    console, out = plain({})
    error = CommandError("building stage app failed", ("docker",), 1, TAIL)

    with pytest.raises(CommandError):
        run_step(console, fail=error)
    console.explain(error)

    assert out.getvalue().count("returned a non-zero code: 1") == 0  # docker's own lines: stand-ins
    assert "== build failed after " in out.getvalue()


def test_quiet_shows_no_step_command_or_output_but_warnings_and_a_failures_tail():
    console, out = plain({}, quiet=True)
    error = CommandError("building stage app failed", ("docker",), 1, TAIL)

    console.line("work directory: /tmp/x")
    console.warning("the registry did not answer")
    with pytest.raises(CommandError):
        run_step(console, fail=error)

    assert out.getvalue().splitlines() == [
        "warning: the registry did not answer",
        "the end of the failed command's output:",
        *TAIL.splitlines(),
    ]


def test_an_interrupted_step_says_so_and_shows_no_tail():
    console, out = plain({"GITHUB_ACTIONS": "true"})

    with pytest.raises(KeyboardInterrupt):
        run_step(console, fail=KeyboardInterrupt())

    assert "== build interrupted after " in out.getvalue()
    assert "failed command's output" not in out.getvalue()


def test_verbose_shows_a_written_files_contents_and_the_default_does_not():
    verbose, shown = plain({}, verbose=True)
    default, silent = plain({})

    for console in (verbose, default):
        console.file("/tmp/w/stages.yml", "services:\n  app: {}\n")

    assert shown.getvalue().splitlines() == [
        "--- generated /tmp/w/stages.yml ---",
        "services:",
        "  app: {}",
        "--- end of /tmp/w/stages.yml ---",
    ]
    assert silent.getvalue() == ""


# -- GitHub's job summary ----------------------------------------------------------


def test_the_job_summary_is_appended_to_the_file_github_names(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("earlier step\n")
    console, _ = plain({"GITHUB_STEP_SUMMARY": str(path)})
    report = Report(stages=[StageResult("app", True, 0.5)], pushed=["r:app_final"])

    assert console.write_step_summary(report, {"app": "r:app_final"}, "ci-load run") is None

    assert path.read_text().splitlines() == [
        "earlier step",
        "### ci-load run",
        "",
        "| stage | cache | seconds | steps run | cache image |",
        "| --- | --- | ---: | --- | --- |",
        "| app | hit | 0.5 | 0/0 | pushed |",
        "",
    ]


def test_without_github_step_summary_no_file_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    console, _ = plain({})

    assert console.write_step_summary(Report(), {}, "ci-load run") is None
    assert list(tmp_path.iterdir()) == []


def test_a_job_summary_that_cannot_be_written_is_a_warning_naming_it(tmp_path):
    console, _ = plain({"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such.md")})

    warning = console.write_step_summary(Report(), {}, "ci-load run")

    assert warning is not None and "GITHUB_STEP_SUMMARY" in warning and "such.md" in warning


def test_quiet_starts_the_summary_with_its_table_and_the_default_leaves_a_gap():
    report = Report()
    report.stages.append(StageResult("app", True, 0.5))

    quiet, quiet_out = plain({}, quiet=True)
    quiet.summary(report, {"app": "r:app_final"}, "done")
    loud, loud_out = plain({})
    loud.summary(report, {"app": "r:app_final"}, "done")

    assert quiet_out.getvalue().splitlines()[0] != ""
    assert loud_out.getvalue().splitlines()[0] == ""
    assert loud_out.getvalue().splitlines()[1:] == quiet_out.getvalue().splitlines()
