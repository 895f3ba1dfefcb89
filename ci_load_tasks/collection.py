"""The ``ci-load`` task collection: one task per pipeline step, plus ``run``.

Add it to a project's ``tasks.py`` as ``ns.add_collection(ci_load_tasks.ns)``;
its name there is ``ci-load``, so ``inv ci-load.build --service app`` works.

Every task reads the same settings from invoke config under ``ci_load`` (an
``invoke.yaml`` key, or ``INVOKE_CI_LOAD_<KEY>`` in the environment) and from
its flags; a flag beats config, config beats the default. Repeatable flags
(``--compose-file``, ``--service``, ``--other-service``, ``--other-repo``)
replace the configured list rather than add to it, and from the environment a
list is one string: compose files separated by ``:`` (as in
``COMPOSE_FILE``), services and repos by commas or spaces. ``keep``, ``all``,
``quiet`` and ``verbose`` can be switched on by a flag but not off, since
invoke flags have no "unset" value.

What a run shows (plain lines or a live status line, CI log folds, GitHub's
job summary) is decided in console.py.

invoke's ``--dry`` prints every docker and compose command without running
it; commands that only read (``compose config``) still run, because the
plan depends on their answer.
"""

import inspect
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from json import dumps  # the plan task has a flag named json

from invoke import Collection, Exit, Task, task

from . import steps
from .console import Console
from .errors import CiLoadError, CommandError, ConfigError
from .plan import Plan, plans_as_json, run_commands
from .project import plans_for
from .report import Report
from .runner import Runner
from .settings import DEFAULTS, Settings

# Shared flags: task parameter -> (config key, help). The parameter names are
# the CLI: ``compose_file`` is ``--compose-file``.
SHARED_FLAGS = {
    "compose_file": (
        "compose_files",
        "compose file; repeat for several, in order (default: the files compose finds "
        "itself: $COMPOSE_FILE, compose.yaml, docker-compose.yml … and their override files)",
    ),
    "env_file": (
        "env_files",
        "compose --env-file for the compose files; repeatable (default: compose's .env)",
    ),
    "project_dir": (
        "project_dir",
        "compose project directory (default: the first compose file's directory)",
    ),
    "service": (
        "service",
        "a main service: one whose Dockerfile stages are cached; repeatable (this or --all "
        "is required)",
    ),
    "all": (
        "all",
        "every service with a build section is a main service (not with --service)",
    ),
    "other_service": (
        "other_services",
        "another service to tag from its target stage or the final image; repeatable",
    ),
    "cache_repo": (
        "cache_repo",
        "repository that holds the cache images, optionally REPO:TAG_PREFIX "
        "(needed to pull and push)",
    ),
    "other_repo": (
        "other_repos",
        "another cache location to pull and take cache from, never pushed; repeatable",
    ),
    "cache_version": ("cache_version", "version prefix of the cache tags, e.g. a branch name"),
    "recipe_repo": ("recipe_repo", "repository of the ONBUILD recipe images (default: no recipes)"),
    "recipe_compose": ("recipe_compose", "compose file that builds the recipe images"),
    "docker": ("docker", "docker command (default: docker)"),
    "compose": (
        "compose",
        "compose command (default: the docker command's plugin, 'docker compose')",
    ),
    "builder": (
        "builder",
        "image builder: auto (BuildKit when the docker client can drive it, unless "
        "DOCKER_BUILDKIT=0), classic or buildkit",
    ),
    "retries": (
        "retries",
        "how often a failed pull, registry check or push is tried again (default 2)",
    ),
    "retry_delay": (
        "retry_delay",
        "seconds before the first retry, doubled for each further one (default 1)",
    ),
    "workdir": (
        "workdir",
        "directory for the generated compose files (default: a fresh temporary one)",
    ),
    "keep": ("keep", "keep the generated files after the run"),
    "quiet": (
        "quiet",
        "show only warnings, the summary and errors (a failed command's last lines too)",
    ),
    "verbose": (
        "verbose",
        "also show each generated file's contents when it is written, and the questions "
        "asked of docker and compose about themselves",
    ),
}
REPEATABLE = ["compose_file", "env_file", "service", "other_service", "other_repo"]
# Switches: they can be turned on by a flag, not off (see Settings.resolve).
SWITCHES = ("keep", "all", "quiet", "verbose")


def pipeline_task(**own_help):
    """Make ``body(c, settings, runner, **own_flags)`` an invoke task.

    The task gets every shared flag besides its own, so each step can be run
    alone with the same settings. Expected failures become one line and exit
    code 1; anything else is a bug and keeps its traceback.
    """

    def decorate(body):
        own = list(inspect.signature(body).parameters.values())[3:]
        shared = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=False if name in SWITCHES else None,
            )
            for name in SHARED_FLAGS
        ]
        context = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)

        def wrapper(c, **kwargs):
            flags = {SHARED_FLAGS[name][0]: kwargs.pop(name, None) for name in SHARED_FLAGS}
            console = None
            try:
                with signals_interrupt():
                    settings = Settings.resolve(_ci_load_config(c), flags)
                    console = Console.for_stream(quiet=settings.quiet, verbose=settings.verbose)
                    runner = Runner(dry=bool(c.config.run.dry), console=console)
                    try:
                        return body(c, settings, runner, **kwargs)
                    finally:
                        # The live display goes before invoke prints the error line.
                        console.close()
            except CiLoadError as error:
                if console is not None:
                    console.explain(error)
                raise Exit(f"ci-load {body.__name__}: {error}", code=1) from None
            except KeyboardInterrupt as error:
                signum = getattr(error, "signum", signal.SIGINT)
                raise Exit(
                    f"ci-load {body.__name__}: interrupted by {signal.Signals(signum).name}; "
                    "the running command was stopped and nothing after it ran",
                    code=128 + signum,
                ) from None

        wrapper.__signature__ = inspect.Signature([context, *shared, *own])
        wrapper.__name__ = body.__name__
        wrapper.__doc__ = body.__doc__
        wrapper.__module__ = body.__module__
        help_texts = {
            name: f"{text} [config ci_load.{key}, env INVOKE_CI_LOAD_{key.upper()}]"
            for name, (key, text) in SHARED_FLAGS.items()
        }
        help_texts.update(own_help)
        return task(
            wrapper, help=help_texts, iterable=REPEATABLE, auto_shortflags=False, klass=_Task
        )

    return decorate


class _Task(Task):
    """A task whose ``--compose-file`` is also ``-f``, as for compose itself."""

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        if name == "compose_file" and "f" not in taken_names:
            opts["names"].append("f")
        return opts


class Interrupted(KeyboardInterrupt):
    """A signal that asks ci-load to stop, raised where the task is."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_interrupt():
    """Turn SIGTERM (and SIGINT) into an exception while a task runs.

    Python dies at once on SIGTERM, which a CI runner sends to cancel a job;
    as an exception, the running docker command is stopped, the work
    directory removed and the report written, and nothing after it runs. Only
    the first signal counts, so the cleanup is not cut short. A SIGINT that
    the parent told us to ignore (a background job) stays ignored.
    """
    previous = {}

    def interrupt(signum, frame):
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ci_load_config(c) -> dict:
    if c.config.get("ci-load") is not None:
        # The collection is named ci-load, but invoke config keys cannot hold
        # a dash as env variables can; a common slip.
        raise ConfigError(
            "config key 'ci-load' found: ci-load reads its settings "
            "from 'ci_load' (with an underscore)"
        )
    return dict(c.config.get("ci_load") or {})


@contextmanager
def workspace(settings: Settings, runner: Runner):
    """The work directory for generated files; removed afterwards unless kept.

    A directory the user named is kept; only the files ci-load wrote in it go.
    """
    try:
        if settings.workdir:
            created = not os.path.isdir(settings.workdir)
            os.makedirs(settings.workdir, exist_ok=True)
            path = settings.workdir
        else:
            path, created = tempfile.mkdtemp(prefix="ci-load-"), True
    except OSError as error:
        raise ConfigError(
            f"cannot use {settings.workdir} as work directory: {error.strerror}; "
            "give --workdir a directory ci-load may create or write to"
        ) from None
    runner.say(f"work directory: {path}")
    before = set(os.listdir(path))
    started = time.time()
    failed = False
    try:
        yield path
    except CommandError as error:
        # The error quotes the failed command; a file of the work directory
        # it reads (-f …) is about to go.
        failed = error.exit_code is not None and any(path in arg for arg in error.argv)
        raise
    finally:
        if settings.keep:
            runner.say(f"work directory kept (--keep): {path}")
        else:
            if not settings.workdir:
                shutil.rmtree(path, ignore_errors=True)
            else:
                _remove_written_files(path, before, started, remove_dir=created)
            if failed:
                where = (
                    f"a file ci-load wrote in {path}"
                    if settings.workdir
                    else f"a file of the work directory {path}"
                )
                runner.say(
                    f"the failed command reads {where}, which is removed now; to run "
                    "that command by hand, run ci-load again with --keep"
                )


def _remove_written_files(path: str, before: set, started: float, remove_dir: bool) -> None:
    """Remove what this run wrote into a work directory the user named: files
    it added, and its own generated files it wrote again (from an earlier
    run with --keep). Anything else stays.

    NOTE: two runs sharing one --workdir at the same time may remove each
    other's files; give each job its own (the default temporary one is).
    """
    try:
        for name in os.listdir(path):
            file = os.path.join(path, name)
            rewritten = os.path.getmtime(file) >= started and steps.written_by_us(file)
            if name not in before or rewritten:
                os.remove(file)
        if remove_dir:
            os.rmdir(path)
    except OSError:
        pass  # gone already, or not empty: leave it


@pipeline_task(json="print the plan as one JSON object instead of text")
def plan(c, settings, runner, json=False):
    """Print what a run would do: stages, cache images, generated files, commands.

    Runs `compose config` to render the compose files and reads the
    Dockerfile; changes nothing. With --keep it also writes the generated
    files into the work directory, to read or to run compose on.
    """
    if json:
        # Keep stdout for the JSON alone: commands and notes go to stderr.
        console = Console.for_stream(sys.stderr, quiet=settings.quiet, verbose=settings.verbose)
        runner = Runner(dry=runner.dry, console=console)
    try:
        with workspace(settings, runner) as workdir:
            plans = plans_for(settings, runner, workdir)
            if settings.keep:
                for the_plan in plans:
                    steps.write_files(the_plan, the_plan.files, runner.show_file)
        print(dumps(plans_as_json(plans), indent=2) if json else describe_all(plans))
    except BrokenPipeError:
        # `inv ci-load.plan | head`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@pipeline_task()
def pull(c, settings, runner):
    """Pull the cache images that exist; a missing one is reported, not fatal."""
    _run_steps(settings, runner, [steps.pull], None, "pull")


@pipeline_task()
def recipes(c, settings, runner):
    """Rebuild the recipe images with their cache, and tag them to their cache names."""
    _run_steps(settings, runner, [steps.restore_recipes], None, "recipes")


@pipeline_task(report="write a JSON report of the stage builds to this file")
def build(c, settings, runner, report=None):
    """Build every needed stage in order, then the service; tag the other services."""
    _run_steps(settings, runner, [steps.build], report, "build")


@pipeline_task()
def push(c, settings, runner):
    """Push the cache images to the cache repository."""
    _run_steps(settings, runner, [steps.push], None, "push")


@pipeline_task(
    pull="pull the cache first (default on; --no-pull skips it)",
    build="rebuild recipes and build the stages (default on; --no-build skips it)",
    push="push the cache images at the end (default off)",
    push_partial=(
        "when a build fails, push the cache images of the stages built before it "
        "(never the final image), so the next run starts warmer"
    ),
    report="write a JSON report of the run to this file",
)
def run(c, settings, runner, pull=True, build=True, push=False, push_partial=False, report=None):
    """Run the whole pipeline: pull, recipes, build, then push if asked."""
    if (push or push_partial) and not settings.cache_repo:
        raise ConfigError(
            f"--{'push' if push else 'push-partial'} needs a cache repository: "
            "pass --cache-repo REPO"
        )
    chosen = []
    if pull and settings.cache_repo:
        chosen.append(steps.pull)
    elif pull:
        runner.say("no cache repository set: not pulling (pass --cache-repo to use a cache)")
    if build:
        chosen += [steps.restore_recipes, steps.build]
    if push:
        chosen.append(steps.push)
    if push_partial and not build:
        raise ConfigError(
            "--push-partial pushes what a failed build left, so it does nothing with "
            "--no-build: drop one of them"
        )
    if not chosen:
        not_pulled = "--no-pull" if not pull else "no --cache-repo to pull from"
        raise ConfigError(
            f"nothing to do: --no-build, {not_pulled}, and no --push; drop --no-build or add --push"
        )
    _run_steps(settings, runner, chosen, report, "run", push_partial=push_partial and build)


STEP_NAMES = {
    steps.pull: "pull",
    steps.restore_recipes: "recipes",
    steps.build: "build",
    steps.push: "push",
}


def _run_steps(
    settings: Settings,
    runner: Runner,
    chosen,
    report_path,
    task: str,
    push_partial: bool = False,
) -> None:
    _check_report_path(report_path)
    report = Report(dry=runner.dry)
    cache_images: dict = {}
    started = time.monotonic()
    try:
        with workspace(settings, runner) as workdir:
            plans = plans_for(
                settings,
                runner,
                workdir,
                need_daemon=not runner.dry,
                pulls=not runner.dry and steps.pull in chosen,
                pushes=not runner.dry and (push_partial or steps.push in chosen),
            )
            report.builder = plans[0].builder
            cache_images = _summary_images(plans)
            for warning in dict.fromkeys(w for the_plan in plans for w in the_plan.warnings):
                runner.warn(warning)
            for warning in _inside_a_context(plans, workdir, report_path):
                runner.warn(warning)
            for step in chosen:
                try:
                    with steps.timed(report, STEP_NAMES[step], runner):
                        steps.run_step(step, plans, runner, report)
                        if step is steps.pull and steps.build not in chosen:
                            # No build to overlap the registry's answer with.
                            steps.finish_registry_check(plans[0], runner, report)
                except CommandError as error:
                    if push_partial and step is steps.build and error.exit_code is not None:
                        with steps.timed(report, "push", runner):
                            steps.push_partial_groups(plans, runner, report, error)
                    raise
    except CiLoadError as error:
        report.error = str(error)
        raise
    except KeyboardInterrupt as error:
        report.error = f"interrupted by {error}"
        raise
    finally:
        steps.cancel_pending(report)
        try:
            report.write(report_path)
        except OSError as error:
            # Never hide the run's own failure behind this one.
            runner.warn(f"could not write the report {report_path}: {error}")
        seconds = time.monotonic() - started
        # Also after a failure: the table says which stages were done.
        runner.console.summary(
            report,
            cache_images,
            f"ci-load {'stopped after' if report.error else 'finished in'} {seconds:.1f}s",
        )
        if task in ("build", "run"):
            outcome = f"failed after {seconds:.1f}s" if report.error else f"done in {seconds:.1f}s"
            trouble = runner.console.write_step_summary(
                report, cache_images, f"ci-load {task} {settings.service or ''}: {outcome}"
            )
            if trouble:
                runner.warn(trouble)


def _inside_a_context(plans, workdir: str, report_path) -> list:
    """Warnings for a work directory or report inside a build context.

    Docker sends the whole context to every build, and a `COPY . .` would see
    files that change on every run, so its step (and all after it) would miss
    the cache each time. NOTE: .dockerignore is not read here; a path it
    leaves out is warned about all the same.
    """
    warnings = []
    for what, path in (("--workdir", workdir), ("--report", report_path)):
        if not path:
            continue
        path = os.path.realpath(path)
        for the_plan in plans:
            context = os.path.realpath(the_plan.context)
            if os.path.commonpath([path, context]) == context:
                warnings.append(
                    f"{what} {path} is inside the build context of service "
                    f"{the_plan.service!r} ({context}): docker sends it with every build, and "
                    "a `COPY .` would miss the cache on every run unless .dockerignore leaves "
                    "it out; use a path outside the context"
                )
                break
    return warnings


def _summary_images(plans) -> dict:
    """The summary's row names (stage, service, ``recipe <name>``, each after
    ``<group>: `` in a run of several groups) -> cache image.

    NOTE: a stage named like a service shares its row name; the row then
    tells of the final image's cache image, not the stage's.
    """
    found = {}
    for the_plan in plans:
        prefix = f"{the_plan.group}: " if the_plan.group else ""
        images = the_plan.cache_images
        found.update({prefix + stage: image for stage, image in images.stages.items()})
        for service in the_plan.services or (the_plan.service,):
            found[prefix + service] = the_plan.finals.get(service, images.final)
        found.update({f"recipe {prefix}{name}": image for name, image in images.recipes.items()})
    return found


def _check_report_path(path) -> None:
    """Fail before any work, not after it, on a report that cannot be written."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path) or not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ConfigError(
            f"--report {path}: cannot write a file there; give a file path in an "
            "existing, writable directory"
        )


def describe_all(plans) -> str:
    """The plans of a run as text: one as always; several group by group,
    then the commands of the whole run."""
    if not plans[0].services:
        return describe(plans[0])
    lines = [f"main services: {', '.join(s for p in plans for s in p.services)}"]
    lines.append(f"groups (services that build alike share their stage builds): {len(plans)}")
    for the_plan in plans:
        lines += ["", f"=== group {', '.join(the_plan.services)} ==="]
        lines.append(describe(the_plan, with_commands=False))
    lines += ["", "commands of a whole run:"]
    lines += [f"+ {line}" for line in run_commands(plans)]
    return "\n".join(lines)


def describe(the_plan: Plan, with_commands: bool = True) -> str:
    """The plan as text for people."""
    images = the_plan.cache_images
    lines = [
        f"service:     {the_plan.service}",
        f"dockerfile:  {the_plan.dockerfile}",
        f"context:     {the_plan.context}",
        f"target:      {the_plan.target or '(the last stage)'}",
        f"stages found: {', '.join(the_plan.stages_found)}  (#N: an unnamed stage)",
        f"stages to build, in order: {', '.join(the_plan.stages) or '(none)'}",
        f"skipped stages (not needed): {', '.join(the_plan.skipped_stages) or '(none)'}",
        f"recipes:     {', '.join(the_plan.recipes) or '(none)'}",
        f"cache repo:  {the_plan.cache_repo or '(none: nothing is pulled or pushed)'}",
        "cache images:",
        f"  final: {images.final}",
        *(f"  stage {s}: {i}" for s, i in images.stages.items()),
        *(f"  recipe {r}: {i}" for r, i in images.recipes.items()),
    ]
    for name, image in list(the_plan.finals.items())[1:]:
        lines.append(f"  final of {name}: {image}")
    for other in the_plan.other_cache_images:
        lines.append(f"  also read from: {other.final} and its stages")
    for warning in the_plan.warnings:
        lines.append(f"warning: {warning}")
    for name, text in the_plan.files.items():
        lines += ["", f"--- generated {name} ---", text.rstrip("\n")]
    if with_commands:
        lines += ["", "commands of a whole run:"]
        lines += [f"+ {line}" for line in the_plan.commands()]
    return "\n".join(lines)


ns = Collection("ci-load", plan, pull, recipes, build, push, run)
ns.configure({"ci_load": dict(DEFAULTS)})
