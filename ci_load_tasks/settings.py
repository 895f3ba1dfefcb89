"""One frozen value holding every ci-load setting.

Built once at the task edge from invoke's config (the ``ci_load`` namespace)
and the task's flags: a flag beats config, config beats the default. Nothing
below the task layer reads invoke's config again.
"""

import os
import shlex
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Tuple

from .builder import CHOICES as BUILDERS
from .errors import ConfigError

#: Every configuration key with its default, declared once. List-valued keys
#: default to strings because invoke cannot set a list from an ``INVOKE_*``
#: environment variable; a string is split (see ``_as_list``).
DEFAULTS = {
    "compose_files": None,  # None: the files compose finds by itself
    "env_files": "",
    "project_dir": None,
    # One name, or several (a list, or one string with commas or spaces):
    # each is a main service. See ``Settings.services``.
    "service": None,
    # Every service of the compose files that has a build section is a main
    # service. None, not False: see ``keep``.
    "all": None,
    "other_services": "",
    "cache_repo": None,
    "other_repos": "",
    "cache_version": None,
    "recipe_repo": None,
    "recipe_compose": None,
    "docker": "docker",
    "compose": None,  # the docker command's compose plugin: "docker compose"
    "builder": "auto",  # auto, classic or buildkit (see builder.py)
    # A registry may fail a request now and then: each pull, registry check
    # and push is tried again this many times, after retry_delay seconds,
    # doubled for each further retry.
    "retries": "2",
    "retry_delay": "1",
    "workdir": None,
    # None, not False: invoke reads an environment value for a bool default as
    # true unless it is "0" or "", so INVOKE_CI_LOAD_KEEP=false would keep.
    "keep": None,
    # How much a run shows (console.py); None for the same reason as keep.
    "quiet": None,  # only warnings, the summary and what explains a failure
    "verbose": None,  # also each generated file's contents, and the questions
}


@dataclass(frozen=True)
class Settings:
    compose_files: Tuple[str, ...]
    env_files: Tuple[str, ...]
    project_dir: str
    services: Tuple[str, ...]  # the main services, in the order given
    all: bool  # every service with a build section is a main service
    other_services: Tuple[str, ...]
    cache_repo: Optional[str]
    other_repos: Tuple[str, ...]
    cache_version: Optional[str]
    recipe_repo: Optional[str]
    recipe_compose: Optional[str]
    docker: Tuple[str, ...]
    compose: Tuple[str, ...]
    builder: str
    retries: int
    retry_delay: float
    workdir: Optional[str]
    keep: bool
    quiet: bool = False
    verbose: bool = False

    @classmethod
    def resolve(cls, config: Mapping[str, Any], flags: Mapping[str, Any]) -> "Settings":
        """Merge ``flags`` over ``config`` over ``DEFAULTS``.

        A flag counts as given when it is not None and not an empty list
        (invoke hands repeatable flags over as ``[]`` when absent); a boolean
        flag can only switch its setting on.
        """
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ConfigError(
                "unknown ci_load config key(s): "
                + ", ".join(sorted(unknown))
                + "; known keys are "
                + ", ".join(DEFAULTS)
            )
        merged = dict(DEFAULTS)
        merged.update({k: v for k, v in config.items() if v is not None})
        for key, value in flags.items():
            if key not in DEFAULTS:
                raise KeyError(key)  # a programming error in a task signature
            if value is None or value == [] or value is False:
                continue
            merged[key] = value

        _check_types(merged)
        # No compose file named: compose finds them itself, as for the user
        # ($COMPOSE_FILE, also from .env; compose.yaml and its override file).
        compose_files = tuple(
            os.path.abspath(f) for f in _as_list(merged["compose_files"], os.pathsep)
        )
        project_dir = merged["project_dir"] or (
            os.path.dirname(compose_files[0]) if compose_files else os.getcwd()
        )
        docker = _as_command(merged["docker"], "docker")
        services, everything = _main_services(config, flags, merged)
        quiet, verbose = _as_bool(merged["quiet"]), _as_bool(merged["verbose"])
        if quiet and verbose:
            raise ConfigError(
                "quiet and verbose are both on (--quiet/--verbose, ci_load.quiet/"
                "ci_load.verbose or INVOKE_CI_LOAD_QUIET/VERBOSE): choose one"
            )
        return cls(
            compose_files=compose_files,
            env_files=tuple(os.path.abspath(f) for f in _as_list(merged["env_files"], os.pathsep)),
            project_dir=os.path.abspath(project_dir),
            services=services,
            all=everything,
            other_services=_as_list(merged["other_services"]),
            cache_repo=merged["cache_repo"] or None,
            other_repos=_as_list(merged["other_repos"]),
            cache_version=merged["cache_version"] or None,
            recipe_repo=merged["recipe_repo"] or None,
            recipe_compose=_abspath_or_none(merged["recipe_compose"]),
            docker=docker,
            compose=_as_command(merged["compose"], "compose")
            if merged["compose"]
            else (*docker, "compose"),
            builder=_as_builder(merged["builder"]),
            retries=int(_as_number(merged["retries"], "retries", whole=True)),
            retry_delay=_as_number(merged["retry_delay"], "retry_delay"),
            workdir=_abspath_or_none(merged["workdir"]),
            keep=_as_bool(merged["keep"]),
            quiet=quiet,
            verbose=verbose,
        )

    @property
    def service(self) -> Optional[str]:
        """The first main service (None with --all, or with none given)."""
        return self.services[0] if self.services else None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _main_services(config, flags, merged) -> Tuple[Tuple[str, ...], bool]:
    """The main services named, and whether --all asks for every one.

    ``--all`` and ``--service`` exclude each other. Given at different
    levels, the flag wins (an invoke.yaml naming the service does not stop a
    CI job from passing --all); given at the same level, it is an error.
    """
    services = _as_list(merged["service"])
    everything = _as_bool(merged["all"])
    if services and everything:
        service_flag = bool(flags.get("service"))
        all_flag = bool(flags.get("all"))
        if service_flag and not all_flag:
            everything = False
        elif all_flag and not service_flag:
            services = ()
        else:
            where = "flags" if service_flag else "ci_load config"
            raise ConfigError(
                f"--all and --service are both given ({where}): --all takes every "
                "service with a build section, --service names them; give one of them"
            )
    return services, everything


_LIST_KEYS = {"compose_files", "env_files", "service", "other_services", "other_repos"}
_COMMAND_KEYS = {"docker", "compose"}
_NUMBER_KEYS = {"retries", "retry_delay"}
_BOOLEAN_KEYS = {"keep", "all", "quiet", "verbose"}


def _check_types(merged: Mapping[str, Any]) -> None:
    """Refuse values of the wrong shape, e.g. from a hand-written invoke.yaml."""
    for key, value in merged.items():
        if value is None:
            continue
        if key in _BOOLEAN_KEYS:
            ok = isinstance(value, bool) or (
                isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS
            )
            expected = "true or false"
        elif key in _NUMBER_KEYS:
            ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            expected = "a number"
        elif key in _LIST_KEYS or key in _COMMAND_KEYS:
            ok = isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            )
            expected = "a string or a list of strings"
        else:
            ok = isinstance(value, str)
            expected = "a string"
        if not ok:
            raise ConfigError(f"ci_load.{key} must be {expected}, not {value!r}")


_BOOLEAN_WORDS = {"", "0", "1", "true", "false", "yes", "no", "on", "off"}


def _as_list(value, separator=None) -> Tuple[str, ...]:
    """Accept a list (flags, YAML config) or one string (environment).

    A string is split on ``separator`` (compose files use ``os.pathsep``, as
    ``COMPOSE_FILE`` does) or else on commas and white space.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        if separator:
            parts = value.split(separator)
        else:
            parts = value.replace(",", " ").split()
    else:
        parts = [str(v) for v in value]
    return tuple(p.strip() for p in parts if p.strip())


def _as_command(value, key: str) -> Tuple[str, ...]:
    argv = tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)
    if not argv:
        raise ConfigError(f"ci_load.{key} is empty: set it to the {key} command to run")
    return argv


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def _as_number(value, key: str, whole: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or number != number or (whole and number != int(number)) or number > 3600:
        kind = "a whole number" if whole else "a number of seconds"
        raise ConfigError(
            f"ci_load.{key} {value!r} is not {kind} from 0 to 3600: set --{key.replace('_', '-')} "
            f"or ci_load.{key} to one"
        )
    return number


def _as_builder(value: Optional[str]) -> str:
    builder = (value or "auto").strip().lower()
    if builder not in BUILDERS:
        raise ConfigError(
            f"ci_load.builder {value!r} is not one of {', '.join(BUILDERS)}: "
            "set --builder or ci_load.builder to one of them"
        )
    return builder


def _abspath_or_none(value) -> Optional[str]:
    return os.path.abspath(value) if value else None
