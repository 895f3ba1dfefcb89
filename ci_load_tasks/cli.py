"""The ``ci-load`` command: the same tasks, for a repo without a ``tasks.py``.

``ci-load run -f docker-compose.yml --service app --cache-repo … --push`` is
``inv ci-load.run …`` with the collection as the whole program: same flags,
same ``ci_load`` configuration (``invoke.yaml``, ``INVOKE_CI_LOAD_*``).
"""

from importlib.metadata import PackageNotFoundError, version

from invoke import Program

from .collection import ns


def _version() -> str:
    try:
        return version("ci-load")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


program = Program(namespace=ns, name="ci-load", binary="ci-load", version=_version())


def main() -> None:
    program.run()


if __name__ == "__main__":
    main()
