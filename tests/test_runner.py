"""``runner.Runner``: the one place ci-load runs commands.

Stand-in processes are this Python (``sys.executable -c ...``) and small
scripts in tmp_path; nothing here needs docker.
"""

import io
import shlex
import sys
import textwrap
import time

import pytest

from ci_load_tasks.errors import CommandError
from ci_load_tasks.runner import TAIL_LINES, Result, Runner

PY = sys.executable


def python(code):
    """argv running ``code`` (dedented) in this Python."""
    return [PY, "-c", textwrap.dedent(code)]


@pytest.fixture
def out():
    return io.StringIO()


def test_a_command_is_printed_shell_quoted_before_its_output(out):
    argv = python("print('hello')") + ["an arg", "it's"]

    Runner(out=out).run(argv)

    assert out.getvalue() == f"+ {shlex.join(argv)}\nhello\n"
    assert out.getvalue().startswith(f"+ {PY} -c ")
    assert shlex.split(out.getvalue().splitlines()[0][2:]) == argv


def test_the_output_is_returned_with_the_exit_code_and_the_argv():
    argv = python("print('one'); print('two')")

    result = Runner(out=io.StringIO()).run(argv)

    assert (result.argv, result.exit_code, result.output, result.ran) == (
        tuple(argv),
        0,
        "one\ntwo\n",
        True,
    )
    assert result.seconds >= 0


def test_arguments_are_passed_on_as_strings():
    result = Runner(out=io.StringIO()).run(python("import sys; print(sys.argv[1:])") + [5, "a b"])

    assert result.output == "['5', 'a b']\n"


def test_added_environment_variables_reach_the_command_and_are_shown_before_it(out, monkeypatch):
    monkeypatch.setenv("CI_LOAD_TEST_INHERITED", "kept")
    argv = python("""
        import os
        print(os.environ["DOCKER_BUILDKIT"], os.environ["CI_LOAD_TEST_INHERITED"])
    """)

    result = Runner(out=out).run(argv, env={"DOCKER_BUILDKIT": "0", "NOTE": "a b"})

    assert result.output == "0 kept\n"
    assert out.getvalue() == (f"+ DOCKER_BUILDKIT=0 NOTE='a b' {shlex.join(argv)}\n0 kept\n")


def test_output_without_a_final_newline_is_returned_whole():
    argv = python("import sys; sys.stdout.write('a\\nb')")

    result = Runner(out=io.StringIO()).run(argv)

    assert result.output == "a\nb"


def test_output_streams_while_the_command_still_runs(tmp_path, out):
    # The command prints a line, then waits until that line has been seen:
    # had the runner waited for the end, the command would time out and fail.
    seen = tmp_path / "seen"
    argv = python(f"""
        import os, sys, time
        print("ready", flush=True)
        deadline = time.monotonic() + 20
        while not os.path.exists({str(seen)!r}):
            if time.monotonic() > deadline:
                sys.exit("the runner did not stream")
            time.sleep(0.01)
        print("done", flush=True)
    """)
    lines = []

    def on_line(line):
        lines.append((line, out.getvalue().endswith(line)))
        if line == "ready\n":
            seen.touch()

    result = Runner(out=out).run(argv, on_line=on_line)

    assert lines == [("ready\n", True), ("done\n", True)]
    assert result.output == "ready\ndone\n"


def test_stderr_is_merged_into_the_output_in_order(out):
    argv = python("""
        import sys
        print("out 1", flush=True)
        print("err", file=sys.stderr, flush=True)
        print("out 2", flush=True)
    """)

    result = Runner(out=out).run(argv)

    assert result.output == "out 1\nerr\nout 2\n"
    assert out.getvalue().endswith("out 1\nerr\nout 2\n")


def test_without_merging_stderr_only_stdout_is_kept_and_stderr_passes_through(out, capsys):
    argv = python("""
        import sys
        print("data", flush=True)
        print("a warning", file=sys.stderr, flush=True)
    """)

    result = Runner(out=out).run(argv, merge_stderr=False, stream=False)

    assert result.output == "data\n"
    assert out.getvalue() == f"+ {shlex.join(argv)}\n"
    assert capsys.readouterr().err == "a warning\n"


def test_stderr_that_is_not_shown_is_kept_for_the_error_message_only(out, capsys):
    argv = python("""
        import sys
        print("data", flush=True)
        sys.exit("docker: 'compose' is not a docker command.")
    """)

    with pytest.raises(CommandError) as error:
        Runner(out=out).run(argv, merge_stderr=False, stream=False, show_stderr=False)

    assert capsys.readouterr().err == ""
    assert error.value.last_line == "docker: 'compose' is not a docker command."


def test_without_streaming_nothing_but_the_command_is_printed(out):
    argv = python("print('quiet')")

    result = Runner(out=out).run(argv, stream=False)

    assert out.getvalue() == f"+ {shlex.join(argv)}\n"
    assert result.output == "quiet\n"


def test_without_echo_the_command_is_not_printed(out):
    Runner(echo=False, out=out).run(python("print('only this')"))

    assert out.getvalue() == "only this\n"


def test_say_prints_a_line_to_the_runners_output(out):
    Runner(out=out).say("== ci-load build ==")

    assert out.getvalue() == "== ci-load build ==\n"


# -- failures -------------------------------------------------------------------


def test_a_failing_command_raises_with_its_exit_code_and_the_end_of_its_output():
    argv = python("""
        import sys
        for i in range(1, 101):
            print("line", i)
        sys.exit(3)
    """)

    with pytest.raises(CommandError) as error:
        Runner(out=io.StringIO()).run(argv)

    assert error.value.exit_code == 3
    assert error.value.argv == tuple(argv)
    assert error.value.tail == "".join(f"line {i}\n" for i in range(101 - TAIL_LINES, 101))
    assert str(error.value).startswith("command failed with exit code 3 after ")
    assert str(error.value).endswith(f"s: {shlex.join(argv)}")


def test_the_tail_of_a_failure_holds_stderr_when_it_is_not_merged(capsys):
    argv = python("""
        import sys
        print("some data", flush=True)
        sys.exit("Error response from daemon: manifest unknown")
    """)

    with pytest.raises(CommandError) as error:
        Runner(out=io.StringIO()).run(argv, merge_stderr=False)

    assert error.value.exit_code == 1
    assert error.value.tail.endswith("Error response from daemon: manifest unknown\n")


def test_an_exit_code_listed_as_ok_is_returned_not_raised():
    argv = python("import sys; sys.exit(2)")

    result = Runner(out=io.StringIO()).run(argv, ok_codes=(0, 2))

    assert result.exit_code == 2


def test_an_unknown_program_is_a_command_error_saying_how_to_point_at_it():
    with pytest.raises(CommandError) as error:
        Runner(out=io.StringIO()).run(["no-such-docker-anywhere", "build", "."])

    assert str(error.value) == (
        "'no-such-docker-anywhere' not found (or not executable): "
        "install it or point ci-load at it "
        "(--docker / --compose, ci_load.docker / ci_load.compose)"
    )
    assert error.value.argv == ("no-such-docker-anywhere", "build", ".")
    assert error.value.exit_code is None


def test_a_program_that_cannot_be_started_is_a_command_error_naming_it(tmp_path):
    script = tmp_path / "docker"
    script.write_text("#!/nonexistent/interpreter\necho never\n")
    script.chmod(0o755)

    with pytest.raises(CommandError) as error:
        Runner(out=io.StringIO()).run([str(script), "build", "."])

    assert str(script) in str(error.value)
    assert error.value.argv == (str(script), "build", ".")


# -- dry run --------------------------------------------------------------------


def test_a_dry_run_prints_a_changing_command_and_does_not_run_it(tmp_path, out):
    marker = tmp_path / "ran"
    argv = python(f"open({str(marker)!r}, 'w').close()")

    result = Runner(dry=True, out=out).run(argv)

    assert not marker.exists()
    assert out.getvalue() == f"+ {shlex.join(argv)}  # dry run: not run\n"
    assert result == Result(tuple(argv), 0, "", 0.0, ran=False)


def test_a_dry_run_shows_the_added_environment_variables(out):
    Runner(dry=True, out=out).run(["docker", "build", "."], env={"DOCKER_BUILDKIT": "0"})

    assert out.getvalue() == "+ DOCKER_BUILDKIT=0 docker build .  # dry run: not run\n"


def test_a_dry_run_does_not_even_look_for_the_program(out):
    result = Runner(dry=True, out=out).run(["no-such-docker-anywhere", "push"])

    assert result.ran is False
    assert out.getvalue() == "+ no-such-docker-anywhere push  # dry run: not run\n"


def test_a_dry_run_still_runs_a_command_that_only_reads(tmp_path, out):
    marker = tmp_path / "ran"
    argv = python(f"open({str(marker)!r}, 'w').close(); print('config')")

    result = Runner(dry=True, out=out).run(argv, changes=False)

    assert marker.exists()
    assert (result.output, result.ran) == ("config\n", True)
    assert out.getvalue() == f"+ {shlex.join(argv)}\nconfig\n"


# -- run_all: quick questions asked at once ---------------------------------------


def test_run_all_returns_each_exit_code_and_output_in_the_order_asked(out):
    commands = [
        python("import time, sys; time.sleep(0.3); print('first'); sys.exit(0)"),
        python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(1)"),
        python("print('third')"),
    ]

    answers = Runner(out=out).run_all(commands)

    assert answers == [(0, "first\n"), (1, "out\nerr\n"), (0, "third\n")]
    assert out.getvalue() == "".join(f"+ {shlex.join(argv)}\n" for argv in commands)


def touch_then_wait(touch, wait_for, then_print):
    """argv that touches a file, waits (20 s at most) for another, prints."""
    code = """
        import pathlib, sys, time
        pathlib.Path(sys.argv[1]).touch()
        deadline = time.monotonic() + 20
        while not pathlib.Path(sys.argv[2]).exists():
            if time.monotonic() > deadline:
                sys.exit("waited in vain")
            time.sleep(0.05)
        print(sys.argv[3])
    """
    return python(code) + [str(touch), str(wait_for), then_print]


def test_run_all_runs_the_commands_at_the_same_time(tmp_path):
    # Each waits for the other's file: one at a time, neither would finish.
    a, b = tmp_path / "a", tmp_path / "b"

    answers = Runner(out=io.StringIO()).run_all(
        [touch_then_wait(a, b, "together"), touch_then_wait(b, a, "together")]
    )

    assert answers == [(0, "together\n"), (0, "together\n")]


def test_run_all_without_echo_prints_nothing(out):
    Runner(echo=False, out=out).run_all([python("print('x')")])

    assert out.getvalue() == ""


def test_run_all_with_an_unknown_program_is_a_command_error_naming_it():
    with pytest.raises(CommandError) as error:
        Runner(out=io.StringIO()).run_all([python("print(1)"), ["/nonexistent/docker", "x"]])

    assert str(error.value).startswith("'/nonexistent/docker' not found (or not executable)")


# -- start: a question asked now, its answer taken later -------------------------


def test_start_returns_while_the_command_runs_and_wait_gives_run_s_result(tmp_path, out):
    # The command waits for a file written only after start() returned: had
    # start() waited for it, this would time out.
    go = tmp_path / "go"
    started = Runner(out=out).start(touch_then_wait(tmp_path / "waiting", go, "went"))
    go.touch()
    result = started.wait()

    assert (result.exit_code, result.output) == (0, "went\n")
    assert started.wait() is result  # waited for once, answered again
    assert out.getvalue().startswith(f"+ {PY} -c ")  # shown when started


def test_a_started_command_that_fails_raises_run_s_error_on_wait(out):
    started = Runner(out=out).start(python("import sys; print('bad'); sys.exit(3)"))

    with pytest.raises(CommandError) as error:
        started.wait()

    assert error.value.exit_code == 3
    assert error.value.tail == "bad\n"


def test_a_held_command_and_its_stderr_are_shown_when_waited_for_not_before(capsys):
    out = io.StringIO()
    runner = Runner(out=out)
    argv = python("import sys; print('data'); print('a warning', file=sys.stderr)")
    started = runner.start(argv, merge_stderr=False, hold=True)
    # Long enough for the line to have arrived, had it been passed on.
    time.sleep(0.5)
    assert (out.getvalue(), capsys.readouterr().err) == ("", "")

    result = started.wait()

    assert out.getvalue() == f"+ {shlex.join(argv)}\n"
    assert capsys.readouterr().err == "a warning\n"
    assert (result.output, result.errors) == ("data\n", "a warning\n")


def test_cancel_stops_a_started_command_that_nobody_waits_for():
    started = Runner(out=io.StringIO()).start(python("import time; time.sleep(60)"))
    began = time.monotonic()

    started.cancel()

    with pytest.raises(CommandError) as error:
        started.wait()
    assert error.value.exit_code == -15  # SIGTERM
    assert time.monotonic() - began < 10


def test_a_read_only_command_starts_in_a_dry_run_too_and_a_changing_one_does_not(out):
    runner = Runner(dry=True, out=out)

    read = runner.start(python("print('asked')"), changes=False).wait()
    change = runner.start(python("print('changed')")).wait()

    assert (read.ran, read.output) == (True, "asked\n")
    assert (change.ran, change.output) == (False, "")
    assert "# dry run: not run" in out.getvalue()


def test_start_all_answers_later_in_the_order_asked(out):
    started = Runner(out=out).start_all([python("print('one')"), python("print('two')")])

    assert started.wait() == [(0, "one\n"), (0, "two\n")]
