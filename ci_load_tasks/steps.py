"""Carry out a plan: pull, rebuild recipes, build stages, push.

Each step does only what the plan says, through the runner, and records what
happened in the report. Argv and names all come from the plan.
"""

import os
import time
from contextlib import contextmanager
from typing import Iterable

from .build_log import parse_build_output
from .errors import CommandError, ConfigError
from .plan import PUSH_PULL_FILE, RECIPES_FILE, STAGES_FILE, Build, Plan
from .report import Report, StageResult
from .runner import Runner
from .shell import shell_line


def write_files(plan: Plan, names: Iterable[str]) -> None:
    """Write generated compose files into the work directory, readable by us only."""
    for name in names:
        path = plan.path(name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(plan.files[name])


@contextmanager
def timed(report: Report, step: str, runner: Runner):
    runner.say(f"\n== ci-load {step} ==")
    started = time.monotonic()
    yield
    seconds = time.monotonic() - started
    report.step_seconds[step] = round(seconds, 3)
    runner.say(f"== {step} done in {seconds:.1f}s ==")


def pull(plan: Plan, runner: Runner, report: Report) -> None:
    """Pull every cache image that exists; a missing one only means a colder build."""
    _require_cache_repo(plan, "pull")
    write_files(plan, [PUSH_PULL_FILE])
    try:
        runner.run(plan.pull)
    except CommandError as error:
        # Compose fails the whole pull for some errors even with
        # --ignore-pull-failures; a cache is an optimisation, so go on cold.
        runner.say(f"warning: pulling the cache failed, building without it: {error}")
    if runner.dry:
        return
    local = _local_images(plan, runner)
    wanted = [image for images in (plan.cache_images, *plan.other_cache_images)
              for image in images.all()]
    report.pulled = [image for image in wanted if image in local]
    report.missing = [image for image in wanted if image not in local]
    runner.say(f"cache images available: {len(report.pulled)} of {len(wanted)}")
    for image in report.missing:
        runner.say(f"  not found (a colder build, normal on a first run): {image}")


def restore_recipes(plan: Plan, runner: Runner, report: Report) -> None:
    """Rebuild the recipe images with their cache, tagged also to their cache names."""
    if not plan.recipe_builds:
        runner.say("no recipe images used: nothing to do")
        return
    write_files(plan, [RECIPES_FILE])
    for item in plan.recipe_builds:
        _record(report.recipes, _build_one(plan, runner, item, f"recipe {item.name}"))
        report.tagged.extend(item.images)


def build(plan: Plan, runner: Runner, report: Report) -> None:
    """Build each stage in order, then the service; tag the other services."""
    write_files(plan, [STAGES_FILE])
    if plan.recipe_builds and not runner.dry:
        local = _local_images(plan, runner)
        for item in plan.recipe_builds:
            if item.images[0] not in local:
                raise ConfigError(
                    f"recipe image {item.images[0]} is not built; run ci-load.recipes "
                    "first (ci-load.run does both)"
                )
    for item in plan.builds:
        _record(report.stages, _build_one(plan, runner, item, _describe(plan, item.name)))
        report.tagged.extend(item.images)
    for tag in plan.tags:
        runner.run(tag.argv)
        report.tagged.append(tag.target)


def _record(results: list, result) -> None:
    if result is not None:  # None: a dry run built nothing
        results.append(result)


def _build_one(plan: Plan, runner: Runner, item: Build, what: str):
    runner.say(f"-- building {what}")
    try:
        result = runner.run(item.argv, env=plan.build_env)
    except CommandError as error:
        if error.exit_code is None:
            raise  # docker did not even start: the runner's message says why
        raise CommandError(
            f"building {what} failed with exit code {error.exit_code}; its output "
            f"ends above. The command was: {shell_line(item.argv, plan.build_env)}",
            error.argv, error.exit_code, error.tail,
        ) from None
    log = parse_build_output(result.output)
    if not result.ran:
        return None
    runner.say(
            f"-- {what}: {'all from cache' if log.cached else 'rebuilt'}, "
            f"{len(log.executed)} of {len(log.steps)} steps run, {result.seconds:.1f}s"
        )
    return StageResult.from_log(item.name, log, result.seconds)


def push(plan: Plan, runner: Runner, report: Report) -> None:
    """Push the cache images of the main cache location, all or nothing."""
    _require_cache_repo(plan, "push")
    write_files(plan, [PUSH_PULL_FILE])
    if not runner.dry:
        local = _local_images(plan, runner)
        missing = [image for image in plan.pushed if image not in local]
        if missing:
            raise ConfigError(
                f"nothing pushed: {len(missing)} cache image(s) are not built yet, "
                f"first {missing[0]}; run ci-load.build (and ci-load.recipes) first"
            )
    runner.run(plan.push)
    report.pushed.extend(plan.pushed)


def _describe(plan: Plan, name: str) -> str:
    if name == plan.service:
        return f"service {name} (target {plan.target or 'the last stage'})"
    return f"stage {name}"


def _require_cache_repo(plan: Plan, step: str) -> None:
    if not plan.cache_repo:
        raise ConfigError(f"{step} needs a cache repository: pass --cache-repo REPO "
                          "or set ci_load.cache_repo")


def _local_images(plan: Plan, runner: Runner) -> set:
    result = runner.run(plan.list_images, changes=False, stream=False, merge_stderr=False)
    return set(result.output.split())
