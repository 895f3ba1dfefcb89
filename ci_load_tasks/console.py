"""What people see of a run: the one place ci-load writes for them.

The runner and the steps hand everything here: ci-load's own lines, the
commands it runs, docker's output, the pipeline steps, generated files, the
summary. Two modes:

- plain: line by line, for logs; when stdout is not a terminal or ``CI`` is
  set. Under GitHub Actions (``GITHUB_ACTIONS=true``) each pipeline step is
  a ``::group::``; under GitLab (``CI_JOB_ID`` set) a collapsed section.
- live (a terminal): the same lines, with a status line at the bottom (the
  step, its time, the running command) drawn by ``rich``; it is gone before
  anything else (an error line, a shell prompt) is printed.

``quiet`` keeps only warnings, the summary and what explains a failure;
``verbose`` adds each generated file's contents when it is written.
"""

import os
import re
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, TextIO

from .errors import CommandError
from .report import Report

if TYPE_CHECKING:
    from rich.console import Console as RichConsole
    from rich.live import Live

# rich is imported only by a live console (a terminal): in CI, where every
# run starts, its import (about 0.03 s here) would be start-up time for nothing.

PLAIN = "plain"
LIVE = "live"


def choose_mode(is_terminal: bool, env: Mapping[str, str], quiet: bool = False) -> str:
    """Live on a terminal, plain in logs: when stdout is no terminal, ``CI``
    is set (to anything), the terminal is ``dumb``, or only the summary is
    wanted anyway (``quiet``)."""
    if quiet or not is_terminal or env.get("CI") or env.get("TERM") == "dumb":
        return PLAIN
    return LIVE


def section_name(step: str) -> str:
    """A GitLab section name for a step: GitLab takes letters, digits, ``_``,
    ``.`` and ``-`` only."""
    return "ci_load_" + re.sub(r"[^A-Za-z0-9_.-]", "_", step)


def gitlab_section_start(name: str, header: str, when: int) -> str:
    """GitLab's marker opening a collapsed section (its docs: "Custom
    collapsible sections"); ``header`` is the line shown when collapsed."""
    return f"\x1b[0Ksection_start:{when}:{name}[collapsed=true]\r\x1b[0K{header}"


def gitlab_section_end(name: str, when: int) -> str:
    return f"\x1b[0Ksection_end:{when}:{name}\r\x1b[0K"


def github_group_start(title: str) -> str:
    return f"::group::{title}"


GITHUB_GROUP_END = "::endgroup::"


class Console:
    def __init__(
        self,
        out: Optional[TextIO] = None,
        *,
        mode: str = PLAIN,
        quiet: bool = False,
        verbose: bool = False,
        env: Optional[Mapping[str, str]] = None,
    ):
        self.out = out if out is not None else sys.stdout
        self.env = os.environ if env is None else env
        self.mode = mode
        self.quiet = quiet
        self.verbose = verbose
        # Each pipeline step in a foldable block of the CI's log viewer.
        self.github = self.env.get("GITHUB_ACTIONS") == "true"
        self.gitlab = bool(self.env.get("CI_JOB_ID")) and not self.github
        self._rich: "Optional[RichConsole]" = None
        self._live: "Optional[Live]" = None
        self._status = _Status()
        self._shown_tail: Optional[str] = None

    @classmethod
    def for_stream(
        cls,
        out: Optional[TextIO] = None,
        *,
        quiet: bool = False,
        verbose: bool = False,
        env: Optional[Mapping[str, str]] = None,
    ) -> "Console":
        """The console that suits ``out`` (default stdout) and the environment."""
        out = out if out is not None else sys.stdout
        env = os.environ if env is None else env
        try:
            is_terminal = out.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            is_terminal = False
        mode = choose_mode(is_terminal, env, quiet)
        return cls(out, mode=mode, quiet=quiet, verbose=verbose, env=env)

    # -- what the runner and the steps hand over --------------------------------

    def line(self, text: str) -> None:
        """One of ci-load's own lines: notes on what it does."""
        if not self.quiet:
            self._write(text)

    def warning(self, text: str) -> None:
        """Shown even when quiet: a warning changes what the run means."""
        self._write(f"warning: {text}", style="yellow")

    def command(self, shown: str) -> None:
        """A command about to run, as it would be typed (``+ …``)."""
        self._status.command = shown
        if not self.quiet:
            self._write(f"+ {shown}", style="dim")

    def command_done(self) -> None:
        self._status.command = None

    def output(self, chunk: str) -> None:
        """A line of a command's output (stdout, or both streams merged)."""
        if self.quiet:
            return
        if self._live is not None and self._rich is not None:
            from rich.text import Text

            self._rich.print(Text(chunk.rstrip("\n")), soft_wrap=True)
        else:
            self.out.write(chunk)
            self.out.flush()

    def error_output(self, chunk: str, even_quiet: bool = False) -> None:
        """A line of a command's stderr, kept apart from its stdout (data);
        ``even_quiet``: it is a warning (compose's about the user's file).

        NOTE: on a terminal it is drawn above the status line, so it goes to
        stdout there; in plain mode it stays on stderr.
        """
        if self.quiet and not even_quiet:
            return
        if self._live is not None and self._rich is not None:
            from rich.text import Text

            self._rich.print(Text(chunk.rstrip("\n")), soft_wrap=True)
        else:
            sys.stderr.write(chunk)
            sys.stderr.flush()

    def file(self, path: str, text: str) -> None:
        """A generated file just written: its contents, when verbose."""
        if self.verbose:
            self._write(f"--- generated {path} ---\n{text.rstrip()}\n--- end of {path} ---")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A pipeline step: a header, its output, and how long it took."""
        # Steps never nest (push-partial runs after the failed build's step
        # has ended): GitHub cannot nest groups.
        marked = not self.quiet and (self.github or self.gitlab)
        section = section_name(name)
        if not self.quiet:
            self._write("")
            if self.github:
                self._write(github_group_start(f"ci-load {name}"))
            elif self.gitlab:
                self._write(
                    gitlab_section_start(section, f"== ci-load {name} ==", int(time.time()))
                )
            else:
                self._write(f"== ci-load {name} ==", style="bold")
        started = time.monotonic()
        self._start_live(name, started)
        outcome = "done in"
        failure: Optional[BaseException] = None
        try:
            yield
        except BaseException as error:
            failure = error
            outcome = (
                "interrupted after" if isinstance(error, KeyboardInterrupt) else "failed after"
            )
            raise
        finally:
            seconds = time.monotonic() - started
            self._stop_live()
            # Close the fold first: what explains a failure must not be folded away.
            if marked:
                self._write(
                    GITHUB_GROUP_END
                    if self.github
                    else gitlab_section_end(section, int(time.time()))
                )
            if not self.quiet:
                self._write(f"== {name} {outcome} {seconds:.1f}s ==", style="bold")
            if isinstance(failure, CommandError) and (self.quiet or marked):
                self.explain(failure)

    def explain(self, error: BaseException) -> None:
        """Show the end of a failed command's output if it was not to be seen:
        hidden by ``quiet`` or folded into a CI section. Once per output."""
        if not isinstance(error, CommandError) or error.exit_code is None or not error.tail:
            return
        if not (self.quiet or self.github or self.gitlab) or error.tail == self._shown_tail:
            return
        self._shown_tail = error.tail
        self._write("the end of the failed command's output:", style="bold red")
        self._write(error.tail.rstrip("\n"))

    def summary(self, report: Report, cache_images: Mapping[str, str], closing: str) -> None:
        """The table of the recipe and stage builds, then ``closing``; even when quiet."""
        table = report.summary(cache_images)
        if table:
            if not self.quiet:  # under --quiet the table comes first: no gap above it
                self._write("")
            self._write(table)
        self._write(closing)

    def write_step_summary(
        self, report: Report, cache_images: Mapping[str, str], title: str
    ) -> Optional[str]:
        """Append the summary as Markdown to GitHub's job summary, when there is one.

        Returns a warning to show when the file cannot be written, else None.
        """
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path:
            return None
        try:
            with open(path, "a", encoding="utf-8") as file:
                file.write(report.markdown(cache_images, title) + "\n")
        except OSError as error:
            return f"could not add the summary to GITHUB_STEP_SUMMARY {path}: {error.strerror}"
        return None

    def close(self) -> None:
        """Take the live display away (safe to call at any time, and twice)."""
        self._stop_live()

    # -- the drawing ------------------------------------------------------------

    def _write(self, text: str, style: Optional[str] = None) -> None:
        if self.mode == LIVE:
            from rich.text import Text

            self._terminal().print(Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, file=self.out, flush=True)

    def _terminal(self) -> "RichConsole":
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.out, highlight=False)
        return self._rich

    def _start_live(self, step: str, started: float) -> None:
        self._status.step, self._status.started = step, started
        if self.mode != LIVE:
            return
        from rich.live import Live

        # transient: the status line is erased when the step ends, so what
        # comes after it (the summary, an error line) is never drawn over.
        self._live = Live(
            self._status,
            console=self._terminal(),
            transient=True,
            refresh_per_second=8,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()


class _Status:
    """The live status line: a spinner, the step, its time, the running command."""

    def __init__(self) -> None:
        self.step = ""
        self.started = time.monotonic()
        self.command: Optional[str] = None
        self._spinner: Any = None  # made when first drawn: rich is imported late

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        if self._spinner is None:
            self._spinner = Spinner("dots", style="cyan")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        elapsed = time.monotonic() - self.started
        command = Text(f"+ {self.command}" if self.command else "", style="dim")
        grid.add_row(
            self._spinner,
            Text.assemble(("ci-load ", "bold"), (self.step, "bold cyan"), f" {elapsed:.1f}s"),
            command,
        )
        return Group(grid)
