"""Which compose ci-load talks to, and the little that changes with it.

ci-load runs Compose v2 (``docker compose``) or Compose v1 (``docker-compose``
1.29, Python, deprecated upstream but still what some CI images carry). The
commands and flags ci-load uses are the same for both; what differs, as seen
with 1.29.2 beside 2.40:

- ``config`` of v1 prints no ``name:``, so the project name, which names the
  image of a service without ``image:``, is worked out here as v1 does it;
- that default image name is ``<project>_<service>`` in v1, ``<project>-<service>``
  in v2;
- v1 reads one ``--env-file`` only (a second one is a usage error).

Everything else ci-load reads from ``config`` (absolute context, ``$$`` for a
literal ``$``, every service whatever its profiles) is the same, and v1 exits
non-zero when a pull, push or config fails, as v2 does.
"""

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .builder import version_tuple
from .errors import ConfigError

#: The oldest Compose v1 ci-load runs on: the one it is tested with
#: (``--profile`` came with 1.28; older ones are long out of support).
OLDEST_V1 = (1, 29)


@dataclass(frozen=True)
class ComposeKind:
    # As ``compose version`` prints it ("1.29.2"), when it was asked; v2 is
    # asked only if its config names no project, and is "2" otherwise.
    version: str = "2"
    # The project name compose uses; None: the ``name:`` of the rendered
    # config says it (v2 always prints it).
    project: Optional[str] = None

    @property
    def v1(self) -> bool:
        return version_tuple(self.version)[0] < 2

    def default_image(self, config: Mapping, service: str) -> Optional[str]:
        """The image compose gives a service without ``image:``."""
        project = config.get("name") or self.project
        if not project:
            return None
        return f"{project}{'_' if self.v1 else '-'}{service}".lower()


def version_in(answer: str) -> Optional[str]:
    """The version in ``compose version`` output: v2's "Docker Compose version
    v2.40.3", v1's "docker-compose version 1.29.2, build unknown" (then more
    lines), or a bare "1.29.2"."""
    found = re.search(r"(\d+\.\d+(?:\.\d+)?)", answer)
    return found.group(1) if found else None


def too_old(version: str) -> bool:
    return version_tuple(version) < OLDEST_V1


def check_env_files(kind: ComposeKind, env_files: Sequence[str]) -> None:
    if kind.v1 and len(env_files) > 1:
        raise ConfigError(
            f"Compose v1 reads one --env-file only, and {len(env_files)} are given "
            f"({', '.join(env_files)}); merge them into one, or use Compose v2"
        )


def v1_project_name(
    compose_files: Sequence[str],
    project_dir: str,
    env_files: Sequence[str],
    environ: Mapping[str, str],
    cwd: str,
) -> str:
    """The project name Compose v1 uses, worked out as 1.29's
    ``get_project_name`` does, since its ``config`` does not print it.

    ``COMPOSE_PROJECT_NAME`` from the environment, else from the env file v1
    reads (the ``--env-file``, else ``.env`` of the project directory, which
    is the working directory when no compose file is named), else the name of
    the directory of the project: ``project_dir`` when compose files are named
    (ci-load passes ``--project-directory``), else that of the first file of
    ``COMPOSE_FILE`` or the compose file found in ``cwd`` or above. Lowercase,
    only ``a-z0-9_-`` kept.

    NOTE: a copy of v1's rule (compose/cli/command.py), not an answer from v1;
    ``-p`` in a COMPOSE_* variable ci-load does not know of would slip through.
    v1 is frozen upstream, so the copy cannot go stale.
    """
    from dotenv import dotenv_values  # for v1 only: not imported by every run

    env_dir = project_dir if compose_files else cwd
    file_env = {}
    env_file = env_files[0] if env_files else os.path.join(env_dir, ".env")
    if os.path.isfile(env_file):
        file_env = {k: v for k, v in dotenv_values(env_file, encoding="utf-8-sig").items() if v}
    env = {**file_env, **environ}

    name = env.get("COMPOSE_PROJECT_NAME")
    if not name:
        name = os.path.basename(_working_dir(compose_files, project_dir, env, cwd))
    return re.sub(r"[^-_a-z0-9]", "", name.lower()) or "default"


# What v1 looks for when no file is named, in its order (1.29's
# SUPPORTED_FILENAMES; not v2's, which puts compose.yaml first).
_V1_DEFAULT_NAMES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")


def _working_dir(compose_files, project_dir: str, env: Mapping[str, str], cwd: str) -> str:
    if compose_files:
        return project_dir
    listed = env.get("COMPOSE_FILE")
    if listed:
        first = listed.split(env.get("COMPOSE_PATH_SEPARATOR", os.pathsep))[0]
        return os.path.dirname(os.path.join(cwd, first))
    directory = cwd
    while True:
        if any(os.path.exists(os.path.join(directory, n)) for n in _V1_DEFAULT_NAMES):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return cwd  # no file found: v1 fails on its own before this matters
        directory = parent
