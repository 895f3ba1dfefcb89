"""ci-load: keep every stage of a multi-stage Docker build cached in a registry.

``from ci_load_tasks import ns`` gives the invoke collection named ``ci-load``.
"""

from .collection import ns

__all__ = ["ns"]
