"""Development tooling for ci-load: a private Docker engine and registry.

Nothing in here is part of the product. It exists so that the tests and the
demo can run the real ``docker`` against a daemon and a registry that they own,
without touching any image of the developer's own Docker.
"""

from devkit.engine import (
    BASE_IMAGE,
    DevkitError,
    Engine,
    Registry,
    build_base_image,
    compose_binary,
    run,
)

__all__ = [
    "BASE_IMAGE",
    "DevkitError",
    "Engine",
    "Registry",
    "build_base_image",
    "compose_binary",
    "run",
]
