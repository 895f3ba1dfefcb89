"""Which image builder a run uses: the classic one or BuildKit.

The choice changes what caches: the classic builder reuses layers of pulled
images; BuildKit reads cache metadata stored in the image (inline cache)
straight from the registry, so nothing has to be pulled, and it builds only
the stages a target needs. An image built by one is no cache for the other.

``choose`` is pure: it decides from what ``project.docker_facts`` found out
about the docker client and daemon in use.
"""

import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from .errors import ConfigError

CHOICES = ("auto", "classic", "buildkit")


@dataclass(frozen=True)
class DockerFacts:
    """What the docker client in use can do."""

    client_version: str  # "20.10.24+dfsg1"
    server_version: Optional[str]  # None: no daemon answered (fine for a plan)
    server_os: str = "linux"
    server_arch: str = "amd64"
    has_buildx: bool = False
    env_buildkit: Optional[str] = None  # DOCKER_BUILDKIT as the user set it
    daemon_error: str = ""  # why no daemon answered, when none did

    @property
    def client_major(self) -> int:
        return major_version(self.client_version)


@dataclass(frozen=True)
class Builder:
    name: str  # "classic" or "buildkit"
    reason: str  # why, in words, for the log and the plan
    env: Dict[str, str]  # set on every build
    # ``--build-context`` works: only the buildx client has it.
    build_contexts: bool = False

    @property
    def buildkit(self) -> bool:
        return self.name == "buildkit"


CLASSIC_ENV = {"DOCKER_BUILDKIT": "0"}
BUILDKIT_ENV = {"DOCKER_BUILDKIT": "1"}


def choose(requested: str, facts: DockerFacts) -> Builder:
    """The builder for ``requested`` (auto, classic or buildkit) on this docker.

    ``auto`` takes BuildKit whenever the client can drive it, because only
    BuildKit reads the cache from the registry without pulling it, unless
    the user set ``DOCKER_BUILDKIT=0``.
    """
    if requested not in CHOICES:
        raise ConfigError(
            f"builder {requested!r} is not one of {', '.join(CHOICES)}: set --builder "
            "or ci_load.builder to one of them"
        )
    client = f"docker client {facts.client_version}"
    if requested == "classic":
        return Builder("classic", "asked for with --builder classic", dict(CLASSIC_ENV))
    can, why_not, fix = _buildkit_possible(facts)
    if requested == "buildkit":
        if not can:
            raise ConfigError(f"--builder buildkit: {why_not}; {fix}")
        return _buildkit(facts, "asked for with --builder buildkit")
    if _switched_off(facts.env_buildkit):
        return Builder("classic", f"DOCKER_BUILDKIT={facts.env_buildkit} is set", dict(CLASSIC_ENV))
    if not can:
        return Builder("classic", f"auto: {why_not}", dict(CLASSIC_ENV))
    return _buildkit(facts, f"auto: {client} can build with BuildKit")


def _buildkit(facts: DockerFacts, reason: str) -> Builder:
    # A 23+ client runs `docker build` through buildx, which has --build-context;
    # the built-in BuildKit client of 18.09 to 22 does not.
    return Builder(
        "buildkit",
        reason,
        dict(BUILDKIT_ENV),
        build_contexts=facts.client_major >= 23 and facts.has_buildx,
    )


def _buildkit_possible(facts: DockerFacts) -> Tuple[bool, str, str]:
    """(possible, why not, what to do about it)."""
    client = f"docker client {facts.client_version}"
    if facts.client_major < 18:
        return (
            False,
            f"{client} is too old for BuildKit (18.09 or newer needed)",
            ("point --docker at a newer client, or use --builder classic"),
        )
    if facts.client_major >= 23 and not facts.has_buildx:
        return (
            False,
            (
                f"{client} builds with BuildKit only through the buildx plugin, which "
                "`docker buildx version` did not find"
            ),
            (
                "install it (Debian/Ubuntu: apt-get install docker-buildx; Docker's "
                "packages: docker-buildx-plugin), point --docker at a client that has "
                "it, or use --builder classic"
            ),
        )
    if facts.server_version is not None and _older(facts.server_version, (18, 9)):
        return (
            False,
            (
                f"the docker daemon {facts.server_version} is too old for BuildKit "
                "(18.09 or newer needed)"
            ),
            "use --builder classic",
        )
    return True, "", ""


def _switched_off(value: Optional[str]) -> bool:
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


def platform_of(facts: DockerFacts) -> Mapping[str, str]:
    """The daemon's platform, for BuildKit's automatic platform ARGs."""
    return {"os_name": facts.server_os or "linux", "arch": facts.server_arch or "amd64"}


def version_tuple(version: str) -> Tuple[int, ...]:
    numbers = re.findall(r"\d+", version.split("+", 1)[0].split("-", 1)[0])
    return tuple(int(n) for n in numbers[:3]) or (0,)


def major_version(version: str) -> int:
    """The first number of a docker version ("20.10.24+dfsg1" -> 20; 0 if none)."""
    return version_tuple(version)[0]


def _older(version: str, than: Tuple[int, ...]) -> bool:
    return version_tuple(version) < than
