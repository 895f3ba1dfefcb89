"""Read what a plan is made from: the rendered compose files and the Dockerfile.

This is the only reading ci-load does before planning: one ``compose config``
per compose project (the recipe compose file is a project of its own) and the
Dockerfile from disk.
"""

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import yaml

from .compose_config import read_service
from .errors import CommandError, ConfigError
from .plan import Plan, make_plan
from .runner import Runner
from .settings import Settings


@dataclass(frozen=True)
class Inputs:
    config: dict
    dockerfile_text: str
    recipe_config: Optional[dict]


def render_compose(runner: Runner, compose: Sequence[str], files: Sequence[str],
                   project_dir: str) -> dict:
    """Run ``compose config`` and parse its stdout (warnings go to stderr)."""
    for path in files:
        if not os.path.isfile(path):
            raise ConfigError(f"compose file {path} does not exist: pass --compose-file FILE")
    argv = [*compose]
    for path in files:
        argv += ["-f", path]
    argv += ["--project-directory", project_dir, "config"]
    try:
        result = runner.run(argv, changes=False, stream=False, merge_stderr=False)
    except CommandError as error:
        last = error.tail.strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(
            f"compose could not read {', '.join(files)}: {last[0]}"
        ) from None
    try:
        config = yaml.safe_load(result.output)
    except yaml.YAMLError as error:
        raise ConfigError(f"compose config of {', '.join(files)} is not YAML: {error}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"compose config of {', '.join(files)} printed no services")
    return config


def read_inputs(settings: Settings, runner: Runner) -> Inputs:
    if not settings.service:
        raise ConfigError("no main service: pass --service NAME or set ci_load.service")
    config = render_compose(runner, settings.compose, settings.compose_files,
                            settings.project_dir)
    build = read_service(config, settings.service, settings.compose_files)
    try:
        with open(build.dockerfile, encoding="utf-8") as file:
            dockerfile_text = file.read()
    except FileNotFoundError:
        raise ConfigError(
            f"service {settings.service!r}: Dockerfile {build.dockerfile} does not exist; "
            "check build.context and build.dockerfile"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read Dockerfile {build.dockerfile}: {error}") from None
    if not dockerfile_text.strip():
        raise ConfigError(f"Dockerfile {build.dockerfile} is empty")

    recipe_config = None
    if settings.recipe_repo and settings.recipe_compose:
        recipe_config = render_compose(
            runner, settings.compose, [settings.recipe_compose],
            os.path.dirname(settings.recipe_compose),
        )
    return Inputs(config, dockerfile_text, recipe_config)


def plan_for(settings: Settings, runner: Runner, workdir: str) -> Plan:
    inputs = read_inputs(settings, runner)
    return make_plan(settings, inputs.config, inputs.dockerfile_text, workdir,
                     inputs.recipe_config)
