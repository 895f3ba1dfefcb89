"""The one place ci-load runs docker and compose (the only module using ``sh``).

Every command is shown shell-quoted before it runs, so it can be pasted
into a terminal; its output streams live; the last lines are kept so a
failure can be reported with the end of the output, where docker says what
went wrong. A dry run shows what would run and runs nothing that changes
anything. What is shown, and how, is the console's business (console.py).
"""

import collections
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Generic, Mapping, Optional, Sequence, TextIO, TypeVar

import sh

from .console import Console
from .errors import CommandError
from .shell import shell_line

# sh logs every command it starts at INFO; users see our echo instead.
logging.getLogger("sh").setLevel(logging.WARNING)

TAIL_LINES = 30

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    argv: tuple
    exit_code: int
    output: str  # stdout (and stderr when merged); empty in a dry run
    seconds: float
    ran: bool = True
    errors: str = ""  # stderr, when it was not merged into output


class Runner:
    def __init__(
        self,
        dry: bool = False,
        echo: bool = True,
        out: Optional[TextIO] = None,
        console: Optional[Console] = None,
    ):
        self.dry = dry
        self.echo = echo
        # ``out`` alone: plain lines to that stream (tests, plan --json).
        self.console = console if console is not None else Console(out)

    def say(self, text: str) -> None:
        """One of ci-load's own lines (quiet hides it)."""
        self.console.line(text)

    def warn(self, text: str) -> None:
        """A warning (shown even when quiet)."""
        self.console.warning(text)

    @property
    def shows_questions(self) -> bool:
        """Whether the quick questions a run asks of docker and compose about
        themselves (versions, whether compose fails when it should) are
        printed like every other command: with --verbose only, since they
        would crowd the few lines before the work."""
        return self.console.verbose

    def show_errors(self, text: str, even_quiet: bool = False) -> None:
        """What a command printed on stderr, shown once it is known to be
        worth showing (a held command's, started with ``show_stderr=False``);
        ``even_quiet``: they are warnings, which --quiet keeps."""
        for line in text.splitlines(keepends=True):
            self.console.error_output(line, even_quiet)

    def show_file(self, path: str, text: str) -> None:
        """A generated file was written (verbose shows it)."""
        self.console.file(path, text)

    def run(self, argv: Sequence[str], *, stream: bool = True, **options: Any) -> Result:
        """Run ``argv`` and wait for it: ``start`` (which says what the
        options mean) with the output streamed live by default."""
        return self.start(argv, stream=stream, **options).wait()

    def start(
        self,
        argv: Sequence[str],
        *,
        changes: bool = True,
        stream: bool = False,
        merge_stderr: bool = True,
        ok_codes: Sequence[int] = (0,),
        on_line: Optional[Callable[[str], None]] = None,
        env: Optional[Mapping[str, str]] = None,
        echo: Optional[bool] = None,
        show_stderr: bool = True,
        hold: bool = False,
    ) -> "Started[Result]":
        """Start ``argv`` and return at once; ``wait()`` on the answer gives
        its Result, or raises CommandError when it fails.

        ``changes=False`` marks a command that only reads (``compose config``):
        it runs in a dry run too, since planning needs its answer. With
        ``merge_stderr=False`` only stdout is kept and stderr streams to ours,
        for commands whose stdout is data (``show_stderr=False`` keeps that
        stderr for the error message only). ``env`` adds variables to ours;
        they are shown in front of the command, as a shell would take them.

        Started alone, it serves questions whose answer is needed only later
        (``compose config`` while compose's version is asked), so their
        start-up times overlap; its output is then not streamed (``stream``),
        since two commands' lines would mix. A started command nobody waits
        for must be ``cancel()``-ed.
        ``hold``: the command line and its stderr are shown when it is waited
        for, not at once (a question asked early is shown only if its answer
        is taken, in the order answers are taken).
        """
        argv = tuple(str(a) for a in argv)
        env = dict(env or {})
        shown = shell_line(argv, env)
        if self.dry and changes:
            self.console.command(f"{shown}  # dry run: not run")
            self.console.command_done()
            return Started.done(Result(argv, 0, "", 0.0, ran=False))
        echoed = self.echo if echo is None else echo
        if echoed and not hold:
            self.console.command(shown)

        tail: Deque[str] = collections.deque(maxlen=TAIL_LINES)
        kept = []
        errors = []

        def keep(line: str) -> None:
            kept.append(line)
            tail.append(line)
            if stream:
                self.console.output(line)
            if on_line:
                on_line(line)

        def pass_stderr(line: str) -> None:
            tail.append(line)
            errors.append(line)
            if show_stderr and not hold:
                self.console.error_output(line)

        def show_held() -> None:
            if not hold:
                return
            if echoed:
                self.console.command(shown)
            if show_stderr:
                for line in errors:
                    self.console.error_output(line)

        command = _program(argv)

        started = time.monotonic()
        # A plain dict: sh's typed overloads know no file-like sink.
        options: Dict[str, Any] = dict(
            _out=_LineSink(keep),
            _ok_code=list(ok_codes),
            _in=None,
            # A pipe, not sh's default pseudo-terminal: docker and compose
            # then print plain lines instead of redrawn progress bars.
            _tty_out=False,
            _env={**os.environ, **env},
            _truncate_exc=False,
            # In the background so that we wait, and an interrupt (SIGINT,
            # or SIGTERM turned into one by the task layer) reaches us and
            # we can stop the child instead of leaving it running.
            _bg=True,
            _bg_exc=False,
        )
        if merge_stderr:
            options["_err_to_out"] = True
        else:
            options["_err"] = _LineSink(pass_stderr)
        try:
            process = command(*argv[1:], **options)
        except sh.ForkException as error:
            self.console.command_done()
            # The program exists but could not be started (bad interpreter,
            # not executable); sh reports the OS error inside its message.
            reason = str(error).strip().splitlines()[-1:] or ["unknown error"]
            raise CommandError(f"cannot start {argv[0]}: {reason[0].strip()}", argv) from None

        def finish() -> Result:
            try:
                try:
                    process.wait()
                except BaseException:
                    if process.is_alive():
                        _stop(process)
                    raise
                finally:
                    show_held()
                    self.console.command_done()
            except sh.ErrorReturnCode as error:
                seconds = time.monotonic() - started
                raise CommandError(
                    f"command failed with exit code {error.exit_code} after {seconds:.1f}s: "
                    f"{shown}",
                    argv,
                    error.exit_code,
                    "".join(tail),
                ) from None
            return Result(
                argv,
                process.exit_code,
                "".join(kept),
                time.monotonic() - started,
                errors="".join(errors),
            )

        def cancel() -> None:
            if process.is_alive():
                _stop(process)

        return Started(finish, cancel)

    def run_all(self, commands: Sequence[Sequence[str]], echo: Optional[bool] = None) -> list:
        """Run read-only ``commands`` at the same time; (exit code, stdout +
        stderr) of each, in order. For quick questions to a registry, where
        waiting for each in turn would add up; a failure is an answer here.
        """
        return self.start_all(commands, echo).wait()

    def start_all(
        self, commands: Sequence[Sequence[str]], echo: Optional[bool] = None
    ) -> "Started[list]":
        """``run_all``, started: ``wait()`` gives its answers."""
        started: list = []

        def cancel() -> None:
            for process in started:
                if process.is_alive():
                    _stop(process)

        try:
            for argv in commands:
                argv = tuple(str(a) for a in argv)
                if self.echo if echo is None else echo:
                    self.console.command(shell_line(argv))
                started.append(
                    _program(argv)(
                        *argv[1:],
                        _err_to_out=True,
                        _ok_code=list(range(256)),
                        _in=None,
                        _tty_out=False,
                        _bg=True,
                        _bg_exc=False,
                        _truncate_exc=False,
                    )
                )
        except BaseException:
            cancel()
            raise

        def finish() -> list:
            try:
                answers = []
                for process in started:
                    process.wait()
                    answers.append((process.exit_code, str(process)))
                self.console.command_done()
                return answers
            except BaseException:
                cancel()
                raise

        return Started(finish, cancel)


def _program(argv: tuple) -> "sh.Command":
    """The program of ``argv``, or a CommandError saying how to point at it."""
    try:
        return sh.Command(argv[0])
    except sh.CommandNotFound:
        raise CommandError(
            f"{argv[0]!r} not found (or not executable): install it or point ci-load at it "
            "(--docker / --compose, ci_load.docker / ci_load.compose)",
            argv,
        ) from None


class Started(Generic[T]):
    """What ``Runner.start`` (a Result) or ``start_all`` (answers) started:
    ``wait()`` for it; ``cancel()`` stops what still runs (harmless after
    ``wait()``)."""

    def __init__(self, finish: Callable[[], T], cancel: Callable[[], None]):
        self._finish = finish
        self._cancel = cancel
        self._result: Optional[T] = None

    @classmethod
    def done(cls, result: T) -> "Started[T]":
        started = cls(lambda: result, lambda: None)
        started._result = result
        return started

    def wait(self) -> T:
        if self._result is None:
            self._result = self._finish()
        return self._result

    def cancel(self) -> None:
        self._cancel()


class _LineSink:
    """Hands each line of a command's output to ``handle``, as text.

    A file-like object, not a plain function: sh rounds the run time of a
    command with a callback up to the next 0.1 s (measured with sh 2.4:
    `true` took 105 ms instead of 4), which adds up over a run's dozen
    commands. sh passes one line per write.
    """

    def __init__(self, handle: Callable[[str], None]):
        self.handle = handle

    def write(self, chunk) -> None:
        if isinstance(chunk, bytes):
            chunk = chunk.decode("utf-8", "replace")
        self.handle(chunk)

    def flush(self) -> None:
        pass


def _stop(process, grace: float = 10.0) -> None:
    """Ask a child to stop (SIGTERM), then make it (SIGKILL) after ``grace`` s."""
    try:
        process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.is_alive():
            process.kill()
    except (ProcessLookupError, OSError):
        pass  # it ended on its own meanwhile
