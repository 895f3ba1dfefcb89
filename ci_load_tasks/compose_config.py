"""What a rendered compose config says about the services ci-load builds.

The input is the output of ``docker compose config`` parsed as YAML: variables
substituted, anchors and ``extends`` resolved, paths made absolute. Compose
escapes a literal ``$`` as ``$$`` in that output; values handed to docker are
unescaped here, values written back into compose files stay escaped.
"""

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import yaml

from .errors import ConfigError

# libyaml's loader when PyYAML was built with it: the same YAML read several
# times faster (a run parses compose's config and each file it generates).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """``yaml.safe_load``, with libyaml when there is one."""
    return yaml.load(text, Loader=_YAML_LOADER)


# Build keys ci-load passes on to ``docker build``. Others are kept in the
# generated compose files but not on the command line; see ``ignored_keys``.
_HANDLED_BUILD_KEYS = {
    "context",
    "dockerfile",
    "dockerfile_inline",
    "args",
    "target",
    "cache_from",
    "network",
    "additional_contexts",
}


@dataclass(frozen=True)
class ServiceBuild:
    service: str
    image: Optional[str]
    context: str
    dockerfile: str  # absolute path
    args: Dict[str, Optional[str]]  # as docker must receive them
    target: Optional[str]
    cache_from: Tuple[str, ...]
    network: Optional[str]
    section: dict = field(compare=False)  # the rendered build section, as compose wrote it
    dockerfile_inline: Optional[str] = None  # the Dockerfile's text, when compose holds it
    contexts: Dict[str, str] = field(default_factory=dict)  # additional_contexts

    @property
    def ignored_keys(self) -> Tuple[str, ...]:
        return tuple(sorted(set(self.section) - _HANDLED_BUILD_KEYS))


def services(config: Mapping) -> dict:
    found = config.get("services") if isinstance(config, dict) else None
    return found if isinstance(found, dict) else {}


def read_service(config: Mapping, name: str, files: Sequence[str]) -> ServiceBuild:
    """The build of service ``name``, or a ``ConfigError`` saying what is wrong."""
    where = describe_files(files)
    all_services = services(config)
    if name not in all_services:
        known = ", ".join(sorted(all_services)) or "none"
        raise ConfigError(
            f"service {name!r} is not defined in {where} (services there: {known}); "
            "pass --service with one of them"
        )
    service = all_services[name] or {}
    build = service.get("build")
    if build is None:
        raise ConfigError(
            f"service {name!r} in {where} has no build section: ci-load caches "
            "images it builds; give the service a build: or choose another service"
        )
    if isinstance(build, str):
        build = {"context": build}
    context = build.get("context", ".")
    if "://" in context or context.startswith("git@"):
        raise ConfigError(
            f"service {name!r} builds from the remote context {context!r}; ci-load "
            "needs a local directory as build context"
        )
    context = os.path.normpath(unescape(context))
    inline = build.get("dockerfile_inline")
    if inline is not None:
        # Never a Dockerfile that happens to lie in the context: the plan
        # writes the inline text into the work directory and builds from it.
        dockerfile = f"(dockerfile_inline of service {name})"
        inline = unescape(str(inline))
    else:
        dockerfile = unescape(build.get("dockerfile") or "Dockerfile")
        dockerfile = os.path.normpath(os.path.join(context, dockerfile))
    return ServiceBuild(
        service=name,
        image=service.get("image"),
        context=context,
        dockerfile=dockerfile,
        args=_read_args(build.get("args"), name),
        target=build.get("target"),
        cache_from=tuple(build.get("cache_from") or ()),
        network=build.get("network"),
        section=dict(build),
        dockerfile_inline=inline,
        contexts={
            str(k): unescape(str(v)) for k, v in (build.get("additional_contexts") or {}).items()
        },
    )


def service_image(config: Mapping, name: str, files: Sequence[str]) -> str:
    """The ``image:`` of an extra service, which ci-load tags for the user."""
    all_services = services(config)
    if name not in all_services:
        known = ", ".join(sorted(all_services)) or "none"
        raise ConfigError(
            f"other service {name!r} is not defined in {describe_files(files)} "
            f"(services there: {known}); check --other-service"
        )
    image = (all_services[name] or {}).get("image")
    if not image:
        raise ConfigError(
            f"other service {name!r} has no image: name, so ci-load cannot tag it; "
            "add an image: to the service"
        )
    return image


# What compose looks for when no file is named, in its order.
_DEFAULT_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def describe_files(files: Sequence[str]) -> str:
    """The compose files for a message.

    When none was named compose chose them; name the one it most likely read
    (only for the message: compose itself also reads overrides and .env).
    """
    if files:
        return ", ".join(files)
    if os.environ.get("COMPOSE_FILE"):
        return f"$COMPOSE_FILE ({os.environ['COMPOSE_FILE']})"
    for name in _DEFAULT_NAMES:
        if os.path.isfile(name):
            return os.path.abspath(name)
    return f"the compose files of {os.getcwd()}"


def unescape(value: str) -> str:
    """Undo compose's ``$$`` escaping of a literal ``$``."""
    return value.replace("$$", "$")


def _read_args(args, service) -> Dict[str, Optional[str]]:
    if not args:
        return {}
    pairs: Iterable[Tuple[str, Optional[str]]]
    if isinstance(args, dict):
        pairs = args.items()
    elif isinstance(args, list):
        pairs = [(a.partition("=")[0], a.partition("=")[2] if "=" in a else None) for a in args]
    else:
        raise ConfigError(f"service {service!r}: build args must be a map or a list")
    return {str(k): (None if v is None else unescape(str(v))) for k, v in pairs}
