"""Faults of the cache registry, injected for real (issue 5, "Faults").

Each test runs ci-load through invoke's command line against the private
dockerd, with a registry that is really stopped, really refuses, really needs
a login, or sits behind devkit.flaky_proxy, which fails chosen requests
(always the same ones: the first K of a method and path) so the test itself
cannot be flaky. The project is a small three-stage build with no sleeps, so
a cold run takes about two seconds.
"""

import base64
import json
import os
import secrets
import stat
import urllib.request
from pathlib import Path

import pytest
from test_end_to_end import ci_load, closed_loopback_port, fresh_runner, read_report, stage_table

from devkit.engine import Registry
from devkit.flaky_proxy import Fault, FlakyProxy

pytestmark = pytest.mark.docker

BUILDKIT_CLIENT = "/usr/bin/docker"
BUILDERS = {
    "classic": ["--builder", "classic"],
    "buildkit": ["--builder", "buildkit", "--docker", BUILDKIT_CLIENT],
}
# The step that asks the registry first: a pull (classic) or a registry check
# (BuildKit, which pulls nothing).
FIRST_ASK = {"classic": "pull", "buildkit": "registry check"}
STAGES = ["base", "build", "app"]
TAGS = ["app_final", "app_stage_base", "app_stage_build"]

COMPOSE = """\
services:
  app:
    image: faults/app:latest
    build:
      context: .
      network: none
"""

DOCKERFILE = """\
FROM cilocal/busybox:latest AS base
RUN head -c 524288 /dev/urandom > /blob
FROM base AS build
COPY src.txt /src.txt
RUN cp /src.txt /out
FROM cilocal/busybox:latest
COPY --from=build /out /out
CMD ["cat", "/out"]
"""


def make_project(path: Path, source: str = "v1\n") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "docker-compose.yml").write_text(COMPOSE)
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "src.txt").write_text(source)
    return path


def flags(project: Path, cache_repo: str, builder: str = "classic", *extra):
    return [
        "--compose-file",
        str(project / "docker-compose.yml"),
        "--service",
        "app",
        "--cache-repo",
        cache_repo,
        *BUILDERS[builder],
        *extra,
    ]


def last_stderr_line(process) -> str:
    lines = process.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def warnings_of(process) -> list:
    return [line for line in process.stdout.splitlines() if line.startswith("warning: ")]


def image_id(engine, image: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def registry_image_id(registry: Registry, repo: str, tag: str) -> str:
    """The image id (config digest) the registry holds under repo:tag."""
    request = urllib.request.Request(
        f"http://{registry.address}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.load(response)["config"]["digest"]


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory):
    """A registry of this module's own, which its tests may stop and restart
    or put a proxy in front of."""
    registry = Registry.start(tmp_path_factory.mktemp("faults-registry"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def cold(engine, own_registry, tmp_path_factory):
    """One cold classic run with push: the cache the flaky registry serves."""
    fresh_runner(engine)
    project = make_project(tmp_path_factory.mktemp("cold") / "project")
    repo = f"{own_registry.address}/faults/cache"
    report = project.parent / "cold.json"
    ci_load(
        engine.env(),
        "ci-load.run",
        *flags(project, repo, "classic", "--push", "--report", str(report)),
    )
    assert sorted(own_registry.tags("faults/cache")) == TAGS
    return {"repo": repo, "report": read_report(report)}


# -- 1. registry unreachable while pulling -------------------------------------


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
def test_pull_from_a_stopped_registry_warns_naming_it_and_the_cold_build_succeeds(
    builder, cold, engine, base_image, own_registry, project, tmp_path
):
    fresh_runner(engine)  # a new CI runner: only the registry could make it warm
    report_path = tmp_path / "run.json"
    own_registry.stop()
    try:
        process = ci_load(
            engine.env(),
            "ci-load.run",
            *flags(
                project,
                cold["repo"],
                builder,
                "--retries",
                "2",
                "--retry-delay",
                "0.05",
                "--report",
                str(report_path),
            ),
        )
    finally:
        own_registry.restart()

    report = read_report(report_path)
    host = own_registry.address
    final = [
        w for w in warnings_of(process) if w.startswith("warning: the registry did not answer")
    ]
    assert len(final) == 1, process.stdout
    assert host in final[0] and "connection refused" in final[0], final[0]
    assert final[0].endswith("building without that cache. Check --cache-repo and `docker login`")
    # Tried again, as often as --retries says, before giving up on the cache.
    assert report["retries"] == {FIRST_ASK[builder]: 2}
    assert sorted(report["missing"]) == [f"{cold['repo']}:{tag}" for tag in TAGS]
    # A cold build: every stage ran its steps, and the image works.
    table = stage_table(report)
    assert set(table) == set(STAGES)
    assert not any(cached for cached, _ in table.values()), table
    assert report["error"] is None
    run = engine.docker("run", "--rm", "--network", "none", "faults/app:latest")
    assert run.stdout == "v1\n"


# -- 2. registry unreachable or refusing while pushing -------------------------


def assert_push_failed_in_one_line(process, report_path, repo: str, host: str, engine):
    assert process.returncode == 1
    last = last_stderr_line(process)
    assert last.startswith(f"ci-load run: pushing {repo}:app_"), last
    assert f"to the registry {host} failed (" in last, last
    assert "Traceback" not in process.stderr
    report = read_report(report_path)
    assert report["error"] and last.endswith(report["error"])
    assert report["pushed"] == []
    # Everything the run built is still tagged here, ready for the next try.
    wanted = {f"{repo}:{tag}" for tag in TAGS} | {"faults/app:latest"}
    assert set(report["tagged"]) == wanted
    for image in wanted:
        assert image_id(engine, image).startswith("sha256:"), image
    return last, report


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
def test_push_to_an_unreachable_registry_fails_in_one_line_and_keeps_the_images_tagged(
    builder, engine, base_image, project, tmp_path
):
    host = f"127.0.0.1:{closed_loopback_port()}"
    repo = f"{host}/faults/nowhere"
    report_path = tmp_path / "run.json"

    process = ci_load(
        engine.env(),
        "ci-load.run",
        *flags(
            project,
            repo,
            builder,
            "--push",
            "--retries",
            "1",
            "--retry-delay",
            "0",
            "--report",
            str(report_path),
        ),
        check=False,
    )

    last, report = assert_push_failed_in_one_line(process, report_path, repo, host, engine)
    assert "connection refused" in last
    assert report["retries"]["push"] == 1


def test_push_refused_by_a_read_only_registry_fails_in_one_line_and_keeps_the_images(
    engine, base_image, project, tmp_path
):
    registry = Registry.start(tmp_path / "read-only", readonly=True)
    try:
        repo = f"{registry.address}/faults/refused"
        report_path = tmp_path / "run.json"
        process = ci_load(
            engine.env(),
            "ci-load.run",
            *flags(
                project,
                repo,
                "classic",
                "--push",
                "--retries",
                "1",
                "--retry-delay",
                "0",
                "--report",
                str(report_path),
            ),
            check=False,
        )
        catalog = registry.catalog()
    finally:
        registry.stop()

    last, report = assert_push_failed_in_one_line(
        process, report_path, repo, registry.address, engine
    )
    assert "405" in last, last  # what distribution answers a push in read-only mode
    assert report["retries"] == {"push": 1}
    assert catalog == []


# -- 3. a flaky registry ---------------------------------------------------------


def test_a_flaky_registry_is_retried_with_backoff_and_the_run_succeeds(
    cold, engine, base_image, own_registry, tmp_path
):
    # The cache of `cold` is in the registry; a changed source file makes
    # the build stage and the final image new, so there is something to push.
    project = make_project(tmp_path / "project", source="v2\n")
    fresh_runner(engine)
    report_path = tmp_path / "run.json"
    faults = [
        # The pull: the first manifest fetched (by digest, after the tag is
        # resolved) gets a 503; compose reports it and ci-load pulls again.
        Fault("GET", r"/manifests/sha256:", times=1, status=503),
        # The push: the final image's manifest upload is cut by a connection
        # reset, twice; its layers are stored, the third push finishes.
        Fault("PUT", r"/manifests/app_final$", times=2, status=0),
    ]
    with FlakyProxy(own_registry.port, faults) as proxy:
        repo = f"{proxy.address}/faults/cache"
        process = ci_load(
            engine.env(),
            "ci-load.run",
            *flags(
                project,
                repo,
                "classic",
                "--push",
                "--retries",
                "3",
                "--retry-delay",
                "0.5",
                "--report",
                str(report_path),
            ),
        )
        injected = proxy.injected

    report = read_report(report_path)
    assert [(method, outcome) for method, _, outcome in injected] == [
        ("GET", "503"),
        ("PUT", "reset"),
        ("PUT", "reset"),
    ]
    assert report["retries"] == {"pull": 1, "push": 2}
    retried = [w for w in warnings_of(process) if "trying again" in w]
    assert len(retried) == 3, retried
    assert retried[0].startswith("warning: pull failed (") and "503" in retried[0]
    # Backoff: --retry-delay, doubled for each further retry.
    assert retried[0].endswith("trying again in 0.5s")
    assert retried[1].startswith("warning: push failed (") and retried[1].endswith("in 0.5s")
    assert retried[2].startswith("warning: push failed (") and retried[2].endswith("in 1s")
    assert report["step_seconds"]["push"] >= 1.5
    # The pull got every cache image through the flaky registry ...
    assert sorted(report["pulled"]) == [f"{repo}:{tag}" for tag in TAGS]
    assert {name: cached for name, (cached, _) in stage_table(report).items()} == {
        "base": True,
        "build": False,
        "app": False,
    }
    # ... and the push stored exactly the new images, as built here.
    assert sorted(report["pushed"]) == [f"{repo}:app_final", f"{repo}:app_stage_build"]
    assert report["push_skipped"] == [f"{repo}:app_stage_base"]
    for tag in ("app_final", "app_stage_build"):
        assert registry_image_id(own_registry, "faults/cache", tag) == image_id(
            engine, f"{repo}:{tag}"
        )
    assert report["error"] is None


@pytest.fixture(scope="module")
def cold_buildkit(engine, own_registry, tmp_path_factory):
    """One cold BuildKit run with push (inline cache), into its own repo."""
    project = make_project(tmp_path_factory.mktemp("cold-buildkit") / "project")
    repo = f"{own_registry.address}/faults/bk"
    ci_load(engine.env(), "ci-load.run", *flags(project, repo, "buildkit", "--push"))
    assert sorted(own_registry.tags("faults/bk")) == TAGS
    return {"repo": repo}


def test_a_flaky_registry_under_buildkit_retries_the_registry_check_and_the_push(
    cold_buildkit, engine, base_image, own_registry, tmp_path
):
    project = make_project(tmp_path / "project", source="v2\n")
    fresh_runner(engine)
    report_path = tmp_path / "run.json"
    faults = [
        # The first question about the base stage's cache image (the registry
        # check, `docker manifest inspect`) gets a 503.
        Fault("GET", r"/manifests/app_stage_base$", times=1, status=503),
        Fault("PUT", r"/manifests/app_final$", times=1, status=0),
    ]
    with FlakyProxy(own_registry.port, faults) as proxy:
        repo = f"{proxy.address}/faults/bk"
        process = ci_load(
            engine.env(),
            "ci-load.run",
            *flags(
                project,
                repo,
                "buildkit",
                "--push",
                "--retries",
                "2",
                "--retry-delay",
                "0.2",
                "--report",
                str(report_path),
            ),
        )
        injected = proxy.injected

    report = read_report(report_path)
    assert [(method, outcome) for method, _, outcome in injected] == [
        ("GET", "503"),
        ("PUT", "reset"),
    ]
    assert report["error"] is None
    assert report["retries"].get("push") == 1
    assert registry_image_id(own_registry, "faults/bk", "app_final") == image_id(
        engine, f"{repo}:app_final"
    )
    # The registry holds the base stage's cache image: a failed answer about
    # it is trouble to retry, not a missing cache.
    said = "\n".join(
        line
        for line in process.stdout.splitlines()
        if "not found" in line or "registry check" in line
    )
    assert f"{repo}:app_stage_base" not in report["missing"], said
    assert report["retries"].get("registry check", 0) >= 1, (report["retries"], said)


# -- 4. a registry that requires a login ----------------------------------------

USER = "ci-bot"


@pytest.fixture(scope="module")
def password():
    return "pw-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory, password):
    """A registry that wants a login (htpasswd, bcrypt)."""
    registry = Registry.start(tmp_path_factory.mktemp("private-registry"), login=(USER, password))
    yield registry
    registry.stop()


class logged_in:
    """`docker login` into the engine's own DOCKER_CONFIG, undone on exit."""

    def __init__(self, engine, registry, password):
        self.engine, self.registry, self.password = engine, registry, password

    def __enter__(self):
        self.engine.docker(
            "login",
            self.registry.address,
            "-u",
            USER,
            "--password-stdin",
            input=self.password + "\n",
        )
        return self

    def __exit__(self, *exc):
        self.engine.docker("logout", self.registry.address, check=False)


def generated_files(workdir: Path) -> list:
    return sorted(p for p in workdir.rglob("*") if p.is_file())


def test_a_registry_that_wants_a_login_says_to_log_in_and_no_credential_leaks(
    engine, base_image, private_registry, password, project, tmp_path
):
    host = private_registry.address
    repo = f"{host}/faults/private"
    secrets_ = [password, base64.b64encode(f"{USER}:{password}".encode()).decode()]

    refused = ci_load(
        engine.env(),
        "ci-load.run",
        *flags(
            project,
            repo,
            "classic",
            "--push",
            "--retries",
            "2",
            "--retry-delay",
            "0",
            "--keep",
            "--workdir",
            str(tmp_path / "refused-files"),
            "--report",
            str(tmp_path / "refused.json"),
        ),
        check=False,
    )

    assert refused.returncode == 1
    last = last_stderr_line(refused)
    assert last.startswith(f"ci-load run: pushing {repo}:app_"), last
    assert f"the registry {host} refused the push without valid credentials" in last
    assert f"run `docker login {host}`" in last
    assert "push" not in read_report(tmp_path / "refused.json")["retries"]  # not retried
    assert private_registry.catalog() == []

    with logged_in(engine, private_registry, password):
        config = (engine.config_dir / "config.json").read_text()
        assert secrets_[1] in config  # the credential is on this machine ...
        pushed = ci_load(
            engine.env(),
            "ci-load.run",
            *flags(
                project,
                repo,
                "classic",
                "--push",
                "--keep",
                "--workdir",
                str(tmp_path / "pushed-files"),
                "--report",
                str(tmp_path / "pushed.json"),
            ),
        )

    report = read_report(tmp_path / "pushed.json")
    assert sorted(report["pushed"]) == [f"{repo}:{tag}" for tag in TAGS]
    assert private_registry.tags("faults/private") == TAGS
    # ... and appears nowhere ci-load wrote.
    texts = {
        "refused stdout": refused.stdout,
        "refused stderr": refused.stderr,
        "pushed stdout": pushed.stdout,
        "pushed stderr": pushed.stderr,
    }
    files = []
    for name in ("refused", "pushed"):
        texts[f"{name}.json"] = (tmp_path / f"{name}.json").read_text()
        kept = generated_files(tmp_path / f"{name}-files")
        assert {"push_pull.yml", "stages.yml"} <= {p.name for p in kept}, kept
        files += kept
    for path in files:
        texts[str(path)] = path.read_text(errors="replace")
    for where, text in texts.items():
        for secret in secrets_:
            assert secret not in text, f"a credential in {where}"
    # Generated files are private to the user.
    modes = {str(path): oct(stat.S_IMODE(os.stat(path).st_mode)) for path in files}
    assert set(modes.values()) == {"0o600"}, modes


@pytest.fixture(scope="module")
def private_cache(engine, private_registry, password, tmp_path_factory):
    """The cache pushed to the private registry, logged in; logged out after."""
    project = make_project(tmp_path_factory.mktemp("private-cache") / "project")
    repo = f"{private_registry.address}/faults/held"
    with logged_in(engine, private_registry, password):
        ci_load(engine.env(), "ci-load.run", *flags(project, repo, "classic", "--push"))
    assert private_registry.tags("faults/held") == TAGS
    return {"repo": repo}


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
def test_a_pull_without_login_warns_instead_of_calling_the_held_cache_missing(
    builder, private_cache, engine, base_image, private_registry, project
):
    # README, "Debugging a run": a pull that cannot reach the registry
    # (refused, unknown host, not logged in) is a warning naming the reason.
    fresh_runner(engine)
    process = ci_load(
        engine.env(),
        "ci-load.pull",
        *flags(project, private_cache["repo"], builder, "--retries", "0"),
    )

    assert not any(
        "a colder build, normal on a first run" in line for line in process.stdout.splitlines()
    ), process.stdout[-2500:]
    final = [
        w for w in warnings_of(process) if w.startswith("warning: the registry did not answer")
    ]
    assert len(final) == 1 and "no basic auth credentials" in final[0], process.stdout[-2500:]
