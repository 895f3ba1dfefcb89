"""Cache image names, compatible with the ancestor ``ci_load.py``.

For cache repo ``R`` and main service ``S`` the final image is ``R:S_final``,
a stage ``X`` is ``R:S_stage_X`` and a recipe ``Y`` is ``R:S_recipe_Y``; a
cache version ``V`` makes them ``R:V_S_final`` and so on. A location given
with a tag, ``R:P``, replaces that ``[V_]S`` prefix with ``P``: ``R:P_final``.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from .errors import ConfigError

# Docker's reference grammar, reduced to what a cache location may hold.
# Docker's reference grammar (distribution/reference); used with fullmatch.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::(?P<port>[0-9]+))?")
# A repository name, host included, may be at most this long.
MAX_NAME_LENGTH = 255

MAX_TAG_LENGTH = 128


@dataclass(frozen=True)
class CacheLocation:
    """Where cache images live: a repository and an optional tag prefix."""

    repo: str
    prefix: Optional[str] = None

    @classmethod
    def parse(cls, text: str, what: str = "cache location") -> "CacheLocation":
        """Split ``text`` into repository and tag prefix.

        A ``:`` is a tag separator only after the last ``/``, so a registry
        port (``127.0.0.1:5000/team/cache``) is never taken for a tag.
        """
        text = text.strip()
        if "@" in text:
            raise ConfigError(
                f"{what} {text!r} has a digest: give a repository, "
                "optionally with a tag prefix (REPO or REPO:PREFIX)"
            )
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            repo, prefix = text[:colon], text[colon + 1 :]
            if slash < 0 and prefix.isdigit() and ("." in repo or repo == "localhost"):
                raise ConfigError(
                    f"{what} {text!r} looks like a registry HOST:PORT without a "
                    f"repository; add one, e.g. {text}/team/cache"
                )
            if not prefix:
                raise ConfigError(f"{what} {text!r} ends with ':': drop it or add a tag prefix")
        else:
            repo, prefix = text, None
        _check_repository(repo, text, what)
        if prefix is not None and not _TAG.fullmatch(prefix):
            raise ConfigError(
                f"{what} {text!r}: tag prefix {prefix!r} may hold only "
                "letters, digits, '_', '.' and '-' and must not start with '.' or '-'"
            )
        return cls(repo, prefix)

    def __str__(self) -> str:
        return f"{self.repo}:{self.prefix}" if self.prefix else self.repo


@dataclass(frozen=True)
class CacheImages:
    """The cache image names of one service in one location."""

    final: str
    stages: Dict[str, str]
    recipes: Dict[str, str]
    # (tag as built, image) for each tag over 128 characters, shortened.
    shortened: Tuple[Tuple[str, str], ...] = ()

    def all(self) -> list:
        return [self.final, *self.stages.values(), *self.recipes.values()]

    def as_dict(self) -> dict:
        return {"final": self.final, "stages": dict(self.stages), "recipes": dict(self.recipes)}


def cache_images(
    location: CacheLocation,
    service: str,
    version: Optional[str],
    stages: Iterable[str],
    recipes: Iterable[str],
    several: bool = False,
) -> CacheImages:
    """The cache image names of ``service`` in ``location``.

    ``several``: the run has several main services, so every tag names its
    service: a location's tag prefix ``P`` stands where the cache version
    would, ``R:P_S_final``, and two services never share a name.
    """
    head: List[Optional[str]]
    if location.prefix:
        head = [location.prefix, service] if several else [location.prefix]
    else:
        head = [version, service]

    shortened = []

    def image(*parts: str) -> str:
        tag = "_".join(p for p in (*head, *parts) if p)
        name = f"{location.repo}:{fit_tag(tag)}"
        if len(tag) > MAX_TAG_LENGTH:
            shortened.append((tag, name))
        return name

    return CacheImages(
        final=image("final"),
        stages={s: image("stage", s) for s in stages},
        recipes={r: image("recipe", r) for r in recipes},
        shortened=tuple(shortened),
    )


def fit_tag(tag: str) -> str:
    """Make ``tag`` a valid Docker tag, the same way every time.

    Characters Docker refuses become ``_``; a tag over 128 characters keeps a
    readable head and ends in a hash of the whole, so two long names that
    share a head still differ.
    """
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", tag) or "_"
    if tag[:1] in (".", "-"):
        tag = "_" + tag[1:]
    if len(tag) <= MAX_TAG_LENGTH:
        return tag
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return f"{tag[: MAX_TAG_LENGTH - len(digest) - 1]}-{digest}"


def _check_repository(repo: str, given: str, what: str) -> None:
    if not repo:
        raise ConfigError(f"{what} {given!r} has no repository name")
    if len(repo) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"{what} {given[:40]!r}… is {len(repo)} characters; docker allows "
            f"{MAX_NAME_LENGTH} for a repository name: use a shorter one"
        )
    parts = repo.split("/")
    # Like docker: the first component is a registry host when it has a '.'
    # or a ':' or is 'localhost'.
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, path = parts[0], parts[1:]
        valid = _HOST.fullmatch(host)
        if not valid:
            raise ConfigError(f"{what} {given!r}: {host!r} is not a valid registry host")
        # NOTE: a bracketed IPv6 host passes, as docker's grammar allows it;
        # dockerd 20.10 refuses it at the first tag ("invalid reference format").
        # Docker's grammar takes any digits for a port; the push would be
        # the first to fail on one no socket can have, after the whole build.
        port = valid.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ConfigError(
                f"{what} {given!r}: registry port {port} is out of range; use 1 to 65535"
            )
    else:
        path = parts
    for component in path:
        if not _PATH_COMPONENT.fullmatch(component):
            hint = (
                " (repository names must be lower case)" if component.lower() != component else ""
            )
            raise ConfigError(
                f"{what} {given!r}: {component!r} is not a valid repository "
                f"path component{hint}; use lower-case letters, digits and single "
                "'.', '_' or '-' between them"
            )
