"""Carry out a plan: pull, rebuild recipes, build stages, push.

Each step does only what the plan says, through the runner, and records what
happened in the report. Argv and names all come from the plan.
"""

import json
import os
import re
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .build_log import BuildLog, parse_build_output
from .errors import CommandError, ConfigError
from .plan import (
    GENERATED_MARK,
    PUSH_PULL_FILE,
    Build,
    Plan,
    push_services,
)
from .report import Report, StageResult, step_entry
from .runner import Runner
from .shell import shell_line


def write_files(
    plan: Plan, names: Iterable[str], show: Optional[Callable[[str, str], None]] = None
) -> None:
    """Write generated compose files into the work directory, readable by us only.

    A file of the same name that ci-load did not write is never overwritten:
    the work directory may be one the user named. ``show(path, text)`` is
    told of each file written (``runner.show_file``: shown when verbose).
    """
    for name in names:
        path = plan.path(name)
        if os.path.exists(path) and not written_by_us(path):
            raise ConfigError(
                f"{path} exists and was not written by ci-load; choose another "
                "--workdir or move that file"
            )
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w", encoding="utf-8") as file:
                file.write(plan.files[name])
        except OSError as error:
            raise ConfigError(f"cannot write {path}: {error.strerror}") from None
        if show is not None:
            show(path, plan.files[name])


def written_by_us(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(lines) and (lines[0].startswith(GENERATED_MARK) or lines[-1] == GENERATED_MARK)


@contextmanager
def timed(report: Report, step: str, runner: Runner):
    """One pipeline step: the console shows its header, output and time."""
    started = time.monotonic()
    with runner.console.step(step):
        try:
            yield
        finally:
            # Also for a step that fails: the report shows where the time went.
            report.step_seconds[step] = round(time.monotonic() - started, 3)


def pull(plan: Plan, runner: Runner, report: Report) -> None:
    """Pull every cache image that exists; a missing one only means a colder build.

    Under BuildKit nothing is pulled: the builds read the cache from the
    registry, only what they use. The registry is asked which images it has,
    to report a missing cache or a registry in trouble, and to skip building
    a stage whose cache image is current; the answer is taken once that is
    needed (``finish_registry_check``).
    """
    _require_cache_repo(plan, "pull")
    if plan.pull is None:
        _check_registry(plan, runner, report)
        return
    write_files(plan, [PUSH_PULL_FILE], runner.show_file)
    for delay in (*retry_delays(plan), None):
        output = ""
        try:
            output = runner.run(plan.pull).output
        except CommandError as error:
            if error.exit_code is None:
                raise
            # Compose fails the whole pull for some errors even with
            # --ignore-pull-failures; a cache is an optimisation, so go on.
            output = error.tail
        if runner.dry:
            return
        trouble = registry_trouble(output)
        if not trouble or delay is None:
            break
        # Images pulled already are skipped by the next try.
        _note_retry(runner, report, "pull", trouble, delay)
    if trouble:
        runner.warn(
            f"the registry did not answer as a missing cache would ({trouble}); "
            "building without that cache. Check --cache-repo and `docker login`"
        )
    missing_note = "see the warning above" if trouble else "a colder build, normal on a first run"
    local = _local_images(plan, runner)
    # Every cache image of every location (of every group, in a run of
    # several: their pull is one).
    wanted = list(plan.registry_checks)
    report.pulled = [image for image in wanted if image in local]
    report.missing = [image for image in wanted if image not in local]
    runner.say(f"cache images available: {len(report.pulled)} of {len(wanted)}")
    for image in report.missing:
        runner.say(f"  not found ({missing_note}): {image}")


def _check_registry(plan: Plan, runner: Runner, report: Report) -> None:
    """Ask the registry which cache images it holds; the answer is taken by
    ``finish_registry_check``, which the build calls once it needs it (after
    its first build, which it does not delay) and a run calls otherwise."""
    nothing = (
        f"builder {plan.builder}: the builds read the cache from the registry; nothing to pull"
    )
    if runner.dry:
        runner.say(
            f"{nothing} (a run asks the registry which cache images it holds: docker manifest "
            "inspect, one per image)"
        )
        return
    runner.say(f"{nothing}. Asking the registry which cache images it holds, beside the build")
    report.pending[REGISTRY_CHECK] = runner.start_all(list(plan.registry_checks.values()))


REGISTRY_CHECK = "registry check"


def finish_registry_check(plan: Plan, runner: Runner, report: Report) -> None:
    """Take the answer of the registry check the pull step started, if any:
    say what the registry lacks, and warn when it could not be asked."""
    started = report.pending.pop(REGISTRY_CHECK, None)
    if started is None:
        return
    # Every group's plan holds the run's registry checks, in the order asked.
    held = registry_ids(plan, runner, list(plan.registry_checks), report, started)
    trouble = next((why for why in held.values() if why.startswith("trouble:")), None)
    if trouble:
        runner.warn(
            f"the registry did not answer as a missing cache would "
            f"({trouble[len('trouble: ') :]}); building without that cache. Check "
            "--cache-repo and `docker login`"
        )
    report.missing = [image for image, answer in held.items() if not answer.startswith("sha256:")]
    report.registry_checked = True
    found = len(held) - len(report.missing)
    runner.say(f"cache images in the registry: {found} of {len(held)}")
    for image in report.missing:
        why = "see the warning above" if trouble else "a colder build, normal on a first run"
        runner.say(f"  not found ({why}): {image}")


def cancel_pending(report: Report) -> None:
    """Stop what a step started and no later step waited for (after an error)."""
    for started in report.pending.values():
        started.cancel()
    report.pending.clear()


def registry_ids(plan: Plan, runner: Runner, images, report: Report, started=None) -> dict:
    """image -> the id (config digest) of the image the registry holds under
    that name, ``missing``, or ``trouble: <why>`` when the registry could not
    be asked; the registry is asked for all images at once (``started``: the
    first asking, begun already), and again for those it failed to answer,
    as often as ``plan.retries`` allows."""
    found = {}
    todo = list(images)
    for delay in (*retry_delays(plan), None):
        if started is not None:
            answers, started = started.wait(), None
        else:
            answers = runner.run_all([plan.registry_checks[image] for image in todo])
        for image, (code, output) in zip(todo, answers):
            found[image] = _registry_answer(code, output)
        todo = [image for image in todo if found[image].startswith("trouble:")]
        if not todo or delay is None:
            break
        _note_retry(runner, report, "registry check", found[todo[0]][len("trouble: ") :], delay)
    return found


def _registry_answer(code: int, output: str) -> str:
    if code == 0:
        try:
            return json.loads(output)["config"]["digest"]
        except (ValueError, KeyError, TypeError):
            return "missing"  # a manifest list or something else: no id to compare
    lowered = output.lower()
    # Only these say the image is not there; any other failure (a reset, a
    # 503 that docker then reports as "unsupported manifest format", a login
    # refused) says nothing about the image, and is tried again.
    if any(word in lowered for word in ("no such manifest", "manifest unknown")):
        return "missing"
    last = (output.strip().splitlines() or [f"exit code {code}"])[-1].strip()
    return f"trouble: {registry_trouble(output) or last}"


def retry_delays(plan: Plan) -> list:
    """Seconds to wait before each retry: retry_delay, doubled each time."""
    return [plan.retry_delay * 2**i for i in range(plan.retries)]


def _note_retry(runner: Runner, report: Report, what: str, why: str, delay: float) -> None:
    report.retries[what] = report.retries.get(what, 0) + 1
    runner.warn(f"{what} failed ({why}); trying again in {delay:g}s")
    time.sleep(delay)


# What compose prints when a registry could not be asked at all, as opposed
# to "manifest unknown" / "not found", which only mean no cache yet.
# NOTE: matched in docker's English messages; a new wording slips through as
# an ordinary missing cache, which is the safe side.
_TROUBLE = (
    "connection refused",
    "connection reset",
    "no such host",
    "i/o timeout",
    "timeout exceeded",
    "unexpected eof",
    ": eof",
    "broken pipe",
    "unauthorized",
    "denied",
    "no basic auth credentials",
    "authentication required",
    "x509:",
    "tls:",
    "server gave http response to https client",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway",
    "received unexpected http status: 5",
    "toomanyrequests",
    # Not the registry, but no missing cache either: the daemon refuses the
    # name (an IPv6 registry address, on a daemon that predates them).
    "invalid reference format",
)


def registry_trouble(output: str) -> Optional[str]:
    """The first line of compose's pull output that says the registry failed."""
    for line in output.splitlines():
        lowered = line.lower()
        # Docker Hub says "pull access denied … does not exist" for a
        # repository not pushed yet: a first run, not trouble.
        if "does not exist" in lowered:
            continue
        if any(word in lowered for word in _TROUBLE):
            return line.strip()
    return None


def restore_recipes(plan: Plan, runner: Runner, report: Report) -> None:
    """Rebuild the recipe images with their cache, tagged also to their cache names."""
    if not plan.recipe_builds:
        runner.say("no recipe images used: nothing to do")
        return
    write_files(plan, [plan.recipes_file], runner.show_file)
    for item in plan.recipe_builds:
        what = f"recipe {item.name}" + _of_group(plan)
        _build_one(plan, runner, item, what, report, report.recipes)
        if not runner.dry:
            report.tagged.extend(item.images)


def build(plan: Plan, runner: Runner, report: Report) -> None:
    """Build what the plan lists, in its order (classic: the stages, then the
    service; BuildKit: the service and target stages first, then each other
    stage only if it changed or the registry lacks it); tag the other services."""
    check_buildable(plan)
    write_files(plan, [plan.stages_file, *plan.dockerfiles], runner.show_file)
    if plan.recipe_builds and not runner.dry:
        local = _local_images(plan, runner)
        for item in plan.recipe_builds:
            if item.images[0] not in local:
                raise ConfigError(
                    f"recipe image {item.images[0]} is not built; run ci-load.recipes "
                    "first (ci-load.run does both)"
                )
    logs: List[Optional[BuildLog]] = []
    first = len(report.stages)
    # One build after another, on purpose. Tried on dockerd 20.10 (bench
    # project, cold): the stage builds after the service's, started together,
    # took 1.3 s each instead of 0.8 + 0.2 + 0.2 s in turn (each exported the
    # shared parent layers anew); and a stage build started as soon as the
    # service's log showed that stage done ran its RUN step again.
    for item in plan.builds:
        if item.only_if_changed:
            finish_registry_check(plan, runner, report)
        if item.only_if_changed and _in_registry(item, report) and not _ran_steps(item.name, logs):
            runner.say(
                f"-- stage {item.name}{_of_group(plan)}: not built; the builds before took "
                "all of it from the cache and the registry holds its cache image, still right"
            )
            report.stages.append(StageResult(item.name, True, 0.0, built=False, group=plan.group))
            continue
        logs.append(
            _build_one(plan, runner, item, _describe(plan, item.name), report, report.stages)
        )
        if not runner.dry:
            report.tagged.extend(item.images)
    finish_registry_check(plan, runner, report)  # a plan with no stage to build after
    if plan.builder == "buildkit":
        _credit_stages(report.stages[first:], logs, plan.service)
    for tag in plan.tags:
        if runner.run(tag.argv).ran:
            report.tagged.append(tag.target)


def check_buildable(plan: Plan) -> None:
    """Stop before any build when the builder cannot build what the plan needs."""
    if plan.buildkit_only:
        raise ConfigError(
            f"{plan.dockerfile} uses syntax only BuildKit builds, first at "
            f"{plan.buildkit_only[0]}, and the builder is classic ({plan.builder_reason}); "
            "use --builder buildkit"
        )
    if plan.build_contexts and not plan.build_contexts_supported:
        raise ConfigError(
            f"service {plan.service!r} uses additional_contexts "
            f"({', '.join(plan.build_contexts)}), which only a docker client with the "
            f"buildx plugin passes to the build (builder: {plan.builder}, "
            f"{plan.builder_reason}); point --docker at a 23+ client with buildx"
        )


def _credit_stages(results, logs, service: str) -> None:
    """Give each stage the hits and misses of its own steps, wherever they ran.

    BuildKit builds a stage inside the first build that needs it (the
    service's, under ci-load's BuildKit order), so a stage's own build later
    finds all of it in the local cache; its steps, named with the stage in
    BuildKit's log, tell whether the stage really came from the cache.
    """
    # stage -> instruction -> (cached in every build, seconds it ran)
    own_steps: Dict[str, Dict[str, Tuple[bool, Optional[float]]]] = {}
    for log in logs:
        for step in log.steps if log else ():
            if step.stage:
                steps = own_steps.setdefault(step.stage.lower(), {})
                cached, seconds = steps.get(step.instruction, (True, None))
                steps[step.instruction] = (
                    cached and step.cached,
                    seconds if seconds is not None else step.seconds,
                )
    other_rows = {result.name for result in results} - {service}
    for result in results:
        if result.name == service:
            if logs and logs[0] is not None:
                # The service's build comes first (BuildKit order) and runs
                # the steps of every stage it needs; its row keeps those no
                # other row shows (its final stage's, an unnamed stage's), so
                # the table counts each step once.
                result.steps = [
                    step_entry(step)
                    for step in logs[0].steps
                    if step.stage is None or step.stage.lower() not in other_rows
                ]
                result.cached = all(step["cached"] for step in result.steps)
            continue
        seen = own_steps.get(result.name)
        if seen is None:
            continue
        result.steps = [
            {"instruction": i, "cached": c, "seconds": None if c else s}
            for i, (c, s) in seen.items()
        ]
        result.cached = all(c for c, _ in seen.values())


def _ran_steps(stage: str, logs) -> bool:
    """Whether an earlier build ran a step of ``stage`` (or a step BuildKit
    named with no stage, which could be one of its)."""
    return any(
        not step.cached and (step.stage is None or step.stage.lower() == stage)
        for log in logs
        if log
        for step in log.steps
    )


def _in_registry(item: Build, report: Report) -> bool:
    return report.registry_checked and not any(i in report.missing for i in item.images)


def _build_one(plan: Plan, runner: Runner, item: Build, what: str, report: Report, rows: list):
    """Build ``item``; its row goes to ``rows`` (a failed build's too, so the
    summary shows where the run stopped)."""
    runner.say(f"-- building {what}")
    began = time.monotonic()
    try:
        # BuildKit fetches cache layers from the registry during the build:
        # a build that failed on the cache registry's account is tried again.
        result = _with_retries(
            runner,
            lambda: runner.run(item.argv, env=plan.build_env),
            "build",
            report,
            retry_delays(plan),
            give_up=lambda error: not _registry_failed(plan, error),
        )
    except CommandError as error:
        if error.exit_code is None:
            raise  # docker did not even start: the runner's message says why
        failed = _failed_stage(error.tail) if plan.builder == "buildkit" else None
        if failed and failed != item.name:
            # BuildKit built that stage inside this build: name where it broke.
            what = f"{what}, in its stage {failed}"
        seconds = round(time.monotonic() - began, 3)
        # The row is the stage that failed: under BuildKit often one the
        # service's build ran, not the service's own steps.
        rows.append(
            StageResult(
                failed or item.name, False, seconds, built=False, group=plan.group, failed=True
            )
        )
        raise CommandError(
            f"building {what} failed with exit code {error.exit_code}; its output "
            f"ends above. The command was: {shell_line(item.argv, plan.build_env)}",
            error.argv,
            error.exit_code,
            error.tail,
        ) from None
    log = parse_build_output(result.output)
    if not result.ran:
        return None
    # Under BuildKit a build also runs the steps of the stages it needs that
    # no build before ran: "in this build"; the summary credits each stage
    # with its own steps, wherever they ran.
    where = " in this build" if plan.builder == "buildkit" else ""
    runner.say(
        f"-- {what}: {'all from cache' if log.cached else 'rebuilt'}, "
        f"{len(log.executed)} of {len(log.steps)} steps run{where}, {result.seconds:.1f}s"
    )
    rows.append(StageResult.from_log(item.name, log, result.seconds, plan.group))
    return log


def push(plan: Plan, runner: Runner, report: Report, images=None) -> None:
    """Push the cache images of the main cache location (or just ``images``),
    all or nothing.

    An image the registry already holds (same image id) is not pushed again.
    """
    _push([plan], runner, report, plan.pushed if images is None else images)


def push_all(plans: Sequence[Plan], runner: Runner, report: Report) -> None:
    """Push the cache images of every group of a run, all or nothing, with
    one compose call: each group plan holds the run's push_pull file."""
    _push(plans, runner, report, [image for plan in plans for image in plan.pushed])


def _push(plans: Sequence[Plan], runner: Runner, report: Report, images) -> None:
    plan = plans[0]  # what the groups share: the push_pull file, registry checks
    _require_cache_repo(plan, "push")
    write_files(plan, [PUSH_PULL_FILE], runner.show_file)
    wanted = list(images)
    to_push = wanted
    if not runner.dry:
        local = _local_images(plan, runner)
        held = registry_ids(plan, runner, wanted, report)
        # Not built here but in the registry: a BuildKit build found it current.
        missing = [i for i in wanted if i not in local and not held[i].startswith("sha256:")]
        if missing:
            raise ConfigError(
                f"nothing pushed: {len(missing)} cache image(s) are not built yet, "
                f"first {missing[0]}; run ci-load.build (and ci-load.recipes) first"
            )
        current = set().union(*(_current_in_registry(p, report) for p in plans))
        report.push_skipped = [
            i
            for i in wanted
            if i not in local
            or held[i] == local[i]
            or (i in current and i in held and held[i].startswith("sha256:"))
        ]
        to_push = [image for image in wanted if image not in report.push_skipped]
        for image in report.push_skipped:
            runner.say(f"  already in the registry, not pushed: {image}")
        if not to_push:
            runner.say("every cache image is in the registry already: nothing to push")
            return
    argv = push_services(plan, to_push)
    host = registry_host(plan.cache_repo or "")
    try:
        # A registry may fail a push now and then (docker-registry 2.8 does
        # with parallel pushes of one layer); the retry finds the layers
        # stored and pushes the rest. A refused login is not retried.
        result = _with_retries(
            runner,
            lambda: runner.run(argv, env=plan.push_env),
            "push",
            report,
            retry_delays(plan),
            give_up=_needs_login,
        )
    except CommandError as error:
        if error.exit_code is None:
            raise
        image = _failed_image(error.tail, to_push)
        if _needs_login(error):
            raise CommandError(
                f"pushing {image} failed: the registry {host} refused the push without "
                f"valid credentials; run `docker login {host}` (with the docker config "
                "this job uses) and try again",
                error.argv,
                error.exit_code,
                error.tail,
            ) from None
        why = registry_trouble(error.tail) or error.last_line
        tries = 1 + report.retries.get("push", 0)
        raise CommandError(
            f"pushing {image} to the registry {host} failed ({why}; {tries} "
            f"{'try' if tries == 1 else 'tries'}); the built images are still tagged here. "
            "Check that the registry is reachable from this machine",
            error.argv,
            error.exit_code,
            error.tail,
        ) from None
    if result.ran:
        report.pushed.extend(to_push)


def _registry_failed(plan: Plan, error: CommandError) -> bool:
    """Whether a failed build's output blames the cache registry."""
    if not plan.cache_repo:
        return False
    host = registry_host(plan.cache_repo)
    return any(host in line and registry_trouble(line) for line in error.tail.splitlines())


def push_partial(plan: Plan, runner: Runner, report: Report, error: CommandError) -> None:
    """After a failed build, push the cache images of the stages that were
    built, so the next attempt starts warmer; never the final image's.

    Only what this run built is pushed: a stage image left on the runner by
    an earlier run is not this run's, and may not match its sources. Under
    BuildKit the service is built first, so its stages have no images yet:
    those that do not need the stage that failed are built now, from what
    the failed build left in BuildKit's cache.
    """
    if plan.builder == "buildkit":
        failed = _failed_stage(error.tail)
        built = {r.name for r in report.stages if r.group == plan.group}
        for item in plan.builds:
            if (
                item.only_if_changed
                and item.name not in built
                and failed
                and failed != item.name
                and failed not in plan.stage_needs.get(item.name, ())
            ):
                _build_one(plan, runner, item, _describe(plan, item.name), report, report.stages)
                if not runner.dry:
                    report.tagged.extend(item.images)
    done = {r.name for r in report.stages if r.built and r.group == plan.group}
    images = [image for stage, image in plan.cache_images.stages.items() if stage in done]
    recipes = {r.name for r in report.recipes if r.built and r.group == plan.group}
    images += [image for recipe, image in plan.cache_images.recipes.items() if recipe in recipes]
    if not images:
        runner.say("--push-partial: no stage was built before the failure: nothing to push")
        return
    runner.say(
        f"--push-partial: pushing the cache images of the {len(images)} stage(s) "
        "built before the failure (never the final image)"
    )
    push(plan, runner, report, images)


# BuildKit names the failed step: " > [build 2/2] RUN false:" (its stage first).
_FAILED_STEP = re.compile(r"^\s*> \[(?:\S+ )?(\S+) \d+/\d+\] ")


def _failed_stage(tail: str) -> Optional[str]:
    for line in reversed(tail.splitlines()):
        found = _FAILED_STEP.match(line)
        if found:
            return found.group(1).lower()
    return None


def registry_host(image: str) -> str:
    """The registry part of an image or repository name (docker.io if none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _needs_login(error: CommandError) -> bool:
    tail = error.tail.lower()
    return any(
        word in tail
        for word in (
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "denied",
        )
    )


def _failed_image(tail: str, images) -> str:
    """The image compose's output names in its last lines, else the first one."""
    for line in reversed(tail.splitlines()):
        for image in images:
            if image in line or image.rsplit(":", 1)[-1] in line:
                return image
    return images[0] if images else "the cache"


def _current_in_registry(plan: Plan, report: Report) -> set:
    """Images of this run's BuildKit builds that took every step from the cache.

    Their cache image in the registry is still right, so it is not pushed
    again. Pushing it would even do harm: dockerd 20.10's BuildKit writes
    incomplete inline cache metadata into an image built from imported
    cache (moby/buildkit#1992), and the next run misses (seen here: the
    final stage's COPY --from steps rebuilt on every second run).
    NOTE: known from this process's builds only; ``ci-load.push`` run on its
    own pushes every image whose id differs from the registry's.
    """
    if plan.builder != "buildkit":
        return set()
    cached = {
        r.name for r in (*report.stages, *report.recipes) if r.cached and r.group == plan.group
    }
    current = {
        image
        for item in (*plan.builds, *plan.recipe_builds)
        if item.name in cached
        for image in item.images
    }
    # Another main service's final cache image is its target's image, retagged.
    return current | {tag.target for tag in plan.tags if tag.source in current}


def _with_retries(
    runner: Runner, attempt, what: str, report: Report, delays, give_up=lambda error: False
):
    """``attempt()``, tried again after each of ``delays`` while it fails with
    a command error that ``give_up`` does not call final."""
    for delay in delays:
        try:
            return attempt()
        except CommandError as error:
            if error.exit_code is None or give_up(error):
                raise
            _note_retry(runner, report, what, f"exit code {error.exit_code}", delay)
    return attempt()


def _describe(plan: Plan, name: str) -> str:
    if name == plan.service:
        return f"service {name} (target {plan.target or 'the last stage'})"
    return f"stage {name}{_of_group(plan)}"


def _of_group(plan: Plan) -> str:
    """Which group a stage or recipe build is of, in a run of several."""
    return f" of {', '.join(plan.services)}" if plan.services else ""


def run_step(step, plans: Sequence[Plan], runner: Runner, report: Report) -> None:
    """Run one step for the plans of a run: pull and push once for every
    group (they share one push_pull file), recipes and builds group by group.

    Every group is checked before the first build, so a group the builder
    cannot build stops the run before any work.
    """
    if len(plans) == 1:
        step(plans[0], runner, report)
    elif step is pull:
        pull(plans[0], runner, report)
    elif step is push:
        push_all(plans, runner, report)
    else:
        if step is build:
            for plan in plans:
                check_buildable(plan)
        for plan in plans:
            step(plan, runner, report)


def push_partial_groups(
    plans: Sequence[Plan], runner: Runner, report: Report, error: CommandError
) -> None:
    """``push_partial`` for the group whose build failed: the first one
    that has not recorded every one of its builds.

    NOTE: groups built completely before it are not pushed; their images
    stay tagged here and the next run rebuilds them from the cache it has.
    """
    for plan in plans:
        done = {r.name for r in report.stages if r.group == plan.group}
        if not all(item.name in done for item in plan.builds):
            push_partial(plan, runner, report, error)
            return


def _require_cache_repo(plan: Plan, step: str) -> None:
    if not plan.cache_repo:
        raise ConfigError(
            f"{step} needs a cache repository: pass --cache-repo REPO or set ci_load.cache_repo"
        )


def _local_images(plan: Plan, runner: Runner) -> dict:
    """Local image name -> image id."""
    result = runner.run(plan.list_images, changes=False, stream=False, merge_stderr=False)
    found = {}
    for line in result.output.splitlines():
        name, _, image_id = line.strip().partition(" ")
        found[name] = image_id.strip()
    return found
