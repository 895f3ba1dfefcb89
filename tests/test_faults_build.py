"""Faults around a build, injected for real: a failing RUN step, signals, two
runs at once, and a docker setup that is broken.

Every run goes through invoke's command line against the private dockerd and
registry (tests/conftest.py). The signal tests put a small TCP proxy of their
own between dockerd and the registry; holding it stands for a registry that
stopped answering, so a pull or a push is surely running when the signal
comes, and releasing it afterwards would let through anything left running.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_end_to_end import (
    EXAMPLE,
    INLINE_COMPOSE,
    REPO,
    ci_load,
    fresh_runner,
    project_flags,
    read_report,
    stage_table,
)

pytestmark = pytest.mark.docker

BUILDKIT_CLIENT = "/usr/bin/docker"
BUILDERS = {
    "classic": ["--builder", "classic"],
    "buildkit": ["--docker", BUILDKIT_CLIENT, "--builder", "buildkit"],
}

# An echoed command that moves an image to or from a registry.
PULL_LINE = re.compile(r"^\+ .* pull --ignore-pull-failures( |$)")
PUSH_LINE = re.compile(r"^\+ .* push( |$)")
BUILD_LINE = re.compile(r"^\+ .* build ")


def invoke_argv(*args):
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]


def run_merged(env, *args):
    """Run ci-load with stderr merged into stdout, in the order written;
    returns (exit code, lines)."""
    process = subprocess.run(
        invoke_argv(*args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    return process.returncode, process.stdout.splitlines()


def shown(lines, count=80):
    return "\n".join(["--- output (end) ---", *lines[-count:]])


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy)
    return copy


# -- a RUN step failing in a middle stage ---------------------------------------------

FAULT_OUTPUT = "fault injected: the build stage fails here"


def break_build_stage(project: Path) -> None:
    """Make the RUN step of the build stage (the middle of the example) fail."""
    dockerfile = project / "docker" / "app.Dockerfile"
    text = dockerfile.read_text()
    assert text.count("RUN sleep 1 \\\n") == 1
    dockerfile.write_text(
        text.replace("RUN sleep 1 \\\n", f"RUN echo '{FAULT_OUTPUT}' && false \\\n", 1)
    )


# Stages the build stage does not need, and the recipe: pushed by --push-partial.
BEFORE_THE_FAILURE = {
    "app_stage_toolchain",
    "app_stage_hello",
    "app_stage_deps",
    "app_recipe_hello",
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def broken(request, engine, registry, tmp_path_factory):
    """Two runs of the example with a failing build stage, each on a fresh
    runner: with --push, then with --push --push-partial."""
    builder = request.param
    root = tmp_path_factory.mktemp(f"broken-{builder}")
    project = root / "project"
    shutil.copytree(EXAMPLE, project)
    break_build_stage(project)
    path = f"faults/broken-{builder}"
    repo = f"{registry.address}/{path}"
    runs = {"builder": builder, "repo": repo, "path": path}
    for name, extra in (("plain", ["--push"]), ("partial", ["--push", "--push-partial"])):
        fresh_runner(engine)
        report = root / f"{name}.json"
        code, lines = run_merged(
            engine.env(),
            "ci-load.run",
            *project_flags(
                project,
                repo,
                *BUILDERS[builder],
                *extra,
                "--retry-delay",
                "0",
                "--report",
                str(report),
            ),
        )
        runs[name] = {
            "code": code,
            "lines": lines,
            "report": read_report(report),
            "tags": registry.tags(path),
        }
    return runs


@pytest.mark.parametrize("run", ["plain", "partial"])
def test_a_failing_run_step_exits_1_naming_the_stage_below_the_end_of_its_log(broken, run):
    result = broken[run]
    lines = result["lines"]

    assert result["code"] == 1, shown(lines)
    assert not any("Traceback" in line for line in lines), shown(lines)
    last = lines[-1]
    assert last.startswith("ci-load run: building "), shown(lines)
    assert last == f"ci-load run: {result['report']['error']}"
    if run == "plain":
        # Just above: the failed step's own output and docker's verdict.
        above = lines[-40:-1]
        assert any(FAULT_OUTPUT in line for line in above), shown(lines)
        assert any(re.search(r"(non-zero code|exit code): 1", line) for line in above), shown(lines)
    # Under BuildKit the service's build runs the stage: its log names it
    # ("> [build 3/3] RUN …"), and so must the one line.
    assert "stage build" in last, f"the error does not name the failed stage: {last}"


def test_a_failing_run_step_pushes_nothing_without_push_partial(broken):
    result = broken["plain"]

    assert result["tags"] == []
    assert not any(PUSH_LINE.match(line) for line in result["lines"]), shown(result["lines"])
    assert "== ci-load push ==" not in result["lines"]
    assert result["report"]["pushed"] == []
    # The build that failed is the report's last row, and the summary's.
    stages = result["report"]["stages"]
    assert [s["name"] for s in stages if s["failed"]] == [stages[-1]["name"]], stages
    # Under BuildKit too the row is the stage, though app's build ran it.
    assert stages[-1]["name"] == "build" and not stages[-1]["built"]
    assert any(re.match(r"build +FAILED ", line) for line in result["lines"]), shown(
        result["lines"]
    )


def test_push_partial_pushes_the_stages_built_before_the_failure_never_the_final_image(broken):
    result = broken["partial"]

    assert set(result["tags"]) == BEFORE_THE_FAILURE, shown(result["lines"])
    assert sorted(result["report"]["pushed"]) == sorted(
        f"{broken['repo']}:{tag}" for tag in BEFORE_THE_FAILURE
    )
    assert any(
        line.startswith("--push-partial: pushing the cache images of the ")
        for line in result["lines"]
    ), shown(result["lines"])


def test_after_a_partial_push_the_fixed_run_starts_warmer(
    broken, engine, base_image, project, tmp_path
):
    fresh_runner(engine)
    report_path = tmp_path / "fixed.json"

    ci_load(
        engine.env(),
        "ci-load.run",
        *project_flags(
            project,
            broken["repo"],
            *BUILDERS[broken["builder"]],
            "--retry-delay",
            "0",
            "--report",
            str(report_path),
        ),
    )

    report = read_report(report_path)
    cached = {name: hit for name, (hit, _) in stage_table(report).items()}
    assert cached == {
        "toolchain": True,
        "hello": True,
        "deps": True,
        "build": False,
        "test": False,
        "app": False,
    }, cached
    assert [r["cached"] for r in report["recipes"]] == [True]


# -- signals --------------------------------------------------------------------------


class GatedProxy:
    """A TCP proxy on loopback in front of the registry.

    ``hold()`` makes it read what dockerd sends and forward none of it (a
    registry that stopped answering); ``held`` counts the chunks it kept
    back. ``release()`` forwards them and all that follows.
    """

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.open = threading.Event()
        self.open.set()
        self.held = 0
        self.lock = threading.Lock()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self):
        self.open.clear()

    def release(self):
        self.open.set()

    def close(self):
        self.release()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                sock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self.open.is_set():
                    with self.lock:
                        self.held += 1
                    self.open.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


@pytest.fixture
def proxy(registry):
    gate = GatedProxy(registry.address)
    yield gate
    gate.close()


class Running:
    """ci-load started in the background, in a session of its own (a signal
    reaches it alone); its output, stderr merged, read line by line."""

    def __init__(self, env, *args):
        self.process = subprocess.Popen(
            invoke_argv(*args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        self.started = self.ended = None  # when its first and last line came
        self.done = False
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.started = self.started or time.monotonic()
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.ended = time.monotonic()
            self.done = True
            self.changed.notify_all()

    def wait_for_line(self, wanted, timeout=300.0) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((line for line in self.lines if wanted(line)), None)
                if found is not None:
                    return found
                if self.done or time.monotonic() > deadline:
                    pytest.fail(f"ci-load never printed the line waited for\n{shown(self.lines)}")
                self.changed.wait(0.5)

    def finish(self, timeout=120.0) -> int:
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def docker_processes(*markers):
    """(pid, command line) of each docker or compose process whose command
    line names one of ``markers`` (a run's work directory and project)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [
                a.decode(errors="replace")
                for a in (entry / "cmdline").read_bytes().split(b"\0")
                if a
            ]
        except OSError:
            continue
        if (
            argv
            and os.path.basename(argv[0]).startswith("docker")
            and any(marker in arg for arg in argv for marker in markers)
        ):
            found.append((int(entry.name), " ".join(argv)))
    return found


def wait_until(condition, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def running(markers, word):
    return any(word in line for _, line in docker_processes(*markers))


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@pytest.mark.parametrize(
    "phase, signame, builder, keep",
    [
        *(
            pytest.param(phase, name, "classic", False, id=f"{name} during {phase}")
            for phase in ("pull", "build", "push")
            for name in SIGNALS
        ),
        pytest.param("build", "SIGTERM", "buildkit", False, id="SIGTERM during build, BuildKit"),
        pytest.param("push", "SIGINT", "classic", True, id="SIGINT during push, --keep"),
    ],
)
def test_a_signal_stops_the_docker_command_cleans_up_and_pushes_nothing_after_it(
    phase, signame, builder, keep, engine, base_image, registry, proxy, project, tmp_path
):
    signum = SIGNALS[signame]
    path = f"faults/signal-{phase}-{signame.lower()}-{builder}{'-keep' if keep else ''}"
    repo = f"{proxy.address}/{path}"
    report = tmp_path / "report.json"
    if phase == "pull":
        proxy.hold()  # the registry stops answering: the pull hangs on it
    if phase == "build":
        # A fresh runner: with an earlier test's build cache every build
        # could be over before the signal is sent.
        fresh_runner(engine)
    run = Running(
        engine.env(),
        "ci-load.run",
        *project_flags(
            project,
            repo,
            *BUILDERS[builder],
            "--push",
            "--retry-delay",
            "0",
            "--report",
            str(report),
            *(["--keep"] if keep else []),
        ),
    )
    try:
        workdir = run.wait_for_line(lambda line: line.startswith("work directory: ")).split(
            ": ", 1
        )[1]
        markers = (workdir, str(project))
        if phase == "pull":
            run.wait_for_line(PULL_LINE.match)
            wait_until(lambda: proxy.held and running(markers, " pull "), "a held pull")
        elif phase == "build":
            run.wait_for_line(lambda line: line == "== ci-load build ==")
            wait_until(lambda: running(markers, " build "), "a docker build")
            time.sleep(0.5)
        else:
            run.wait_for_line(PUSH_LINE.match)
            proxy.hold()
            wait_until(lambda: proxy.held and running(markers, " push"), "a held push")
        before = docker_processes(*markers)
        tags_at_signal = registry.tags(path)
        seen = len(run.lines)
        run.process.send_signal(signum)
        code = run.finish()
        left_at_exit = docker_processes(*markers)
    finally:
        run.stop()
        proxy.release()  # what is still running may now reach the registry
    time.sleep(3)

    assert before, "no docker command was running when the signal came"
    assert code == 128 + signum, shown(run.lines)
    assert run.lines[-1] == (
        f"ci-load run: interrupted by {signame}; the running command "
        "was stopped and nothing after it ran"
    ), shown(run.lines)
    assert not any("Traceback" in line for line in run.lines), shown(run.lines)
    assert left_at_exit == [], f"still running when ci-load exited: {left_at_exit}"
    assert docker_processes(*markers) == []
    started_after = [line for line in run.lines[seen:] if line.startswith("+ ")]
    assert started_after == [], shown(run.lines)
    # Held from the push's first request on, the registry had nothing yet;
    # released after the exit, it would take whatever was still being sent.
    assert tags_at_signal == []
    assert registry.tags(path) == tags_at_signal
    assert read_report(report)["error"] == f"interrupted by {signame}"
    if keep:
        assert (Path(workdir) / "stages.yml").is_file()
        assert (Path(workdir) / "push_pull.yml").is_file()
        shutil.rmtree(workdir)
    else:
        assert not Path(workdir).exists(), sorted(os.listdir(workdir))


# -- two runs at the same time ----------------------------------------------------------


def start_together(engine, *arg_lists):
    runs = [Running(engine.env(), "ci-load.run", *args) for args in arg_lists]
    try:
        codes = [run.finish(timeout=600) for run in runs]
    finally:
        for run in runs:
            run.stop()
    for run, code in zip(runs, codes):
        assert code == 0, shown(run.lines)
    # Really at the same time: each began before the other ended.
    assert max(run.started for run in runs) < min(run.ended for run in runs)
    return [
        next(line.split(": ", 1)[1] for line in run.lines if line.startswith("work directory: "))
        for run in runs
    ]


KEPT_FILES = {
    "push_pull.yml",
    "recipes.yml",
    "stages.yml",
    "app.pruned-build.Dockerfile",
    "app.pruned-deps.Dockerfile",
    "app.pruned-hello.Dockerfile",
    "app.pruned-5.Dockerfile",
    "app.pruned-test.Dockerfile",
}


def test_the_same_project_twice_at_once_never_shares_generated_files(
    engine, base_image, registry, project, tmp_path
):
    repo = f"{registry.address}/faults/twice"
    versions = ["run-one", "run-two"]

    workdirs = start_together(
        engine,
        *(
            project_flags(
                project,
                repo,
                "--builder",
                "classic",
                "--cache-version",
                version,
                "--push",
                "--keep",
                "--retry-delay",
                "0",
            )
            for version in versions
        ),
    )

    try:
        assert workdirs[0] != workdirs[1]
        for workdir, own, other in zip(workdirs, versions, reversed(versions)):
            files = {p.name: p.read_text() for p in Path(workdir).iterdir()}
            assert set(files) == KEPT_FILES
            for name in ("push_pull.yml", "stages.yml", "recipes.yml"):
                assert f"{own}_app_" in files[name], (workdir, name)
            for name, text in files.items():
                assert other not in text, (workdir, name)
        tags = set(registry.tags("faults/twice"))
        assert {f"{v}_app_final" for v in versions} <= tags
    finally:
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def test_two_projects_at_once_never_share_generated_files(
    engine, base_image, registry, project, tmp_path
):
    other = tmp_path / "inline"
    other.mkdir()
    (other / "docker-compose.yml").write_text(INLINE_COMPOSE)

    workdirs = start_together(
        engine,
        project_flags(
            project,
            f"{registry.address}/faults/example",
            "--builder",
            "classic",
            "--push",
            "--keep",
            "--retry-delay",
            "0",
        ),
        [
            "--compose-file",
            str(other / "docker-compose.yml"),
            "--service",
            "tool",
            "--cache-repo",
            f"{registry.address}/faults/inline",
            "--builder",
            "classic",
            "--push",
            "--keep",
            "--retry-delay",
            "0",
        ],
    )

    try:
        assert workdirs[0] != workdirs[1]
        example = {p.name: p.read_text() for p in Path(workdirs[0]).iterdir()}
        inline = {p.name: p.read_text() for p in Path(workdirs[1]).iterdir()}
        assert set(example) == KEPT_FILES
        assert set(inline) == {"push_pull.yml", "stages.yml", "tool.inline.Dockerfile"}
        assert not any(
            "faults/inline" in text or "inline/tool" in text for text in example.values()
        )
        assert not any(
            "faults/example" in text or "example/app" in text for text in inline.values()
        )
        assert "app_final" in registry.tags("faults/example")
        assert "tool_final" in registry.tags("faults/inline")
    finally:
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


# -- a broken docker setup ------------------------------------------------------------


def old_compose(tmp_path):
    script = tmp_path / "docker-compose"
    script.write_text(
        '#!/bin/sh\nif [ "$1" = version ]; then echo 1.25.0; exit 0; fi\n'
        'echo "No such command: $1" >&2\nexit 1\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    "fault",
    [
        "docker not installed",
        "docker not on PATH",
        "daemon not running",
        "compose missing",
        "compose too old",
    ],
)
def test_a_broken_docker_setup_is_one_clear_line(fault, engine, registry, project, tmp_path):
    env = engine.env()
    extra = []
    if fault == "docker not installed":
        extra = ["--docker", "/nonexistent/docker"]
        expected = (
            "ci-load run: '/nonexistent/docker' not found (or not executable): "
            "install it or point ci-load at it (--docker / --compose, "
            "ci_load.docker / ci_load.compose)"
        )
    elif fault == "docker not on PATH":
        empty = tmp_path / "bin"
        empty.mkdir()
        env["PATH"] = str(empty)
        expected = (
            "ci-load run: 'docker' not found (or not executable): install it or "
            "point ci-load at it (--docker / --compose, ci_load.docker / "
            "ci_load.compose)"
        )
    elif fault == "daemon not running":
        env["DOCKER_HOST"] = f"unix://{tmp_path}/nobody-serves-this.sock"
        expected = re.compile(
            r"ci-load run: no docker daemon answered \(.*Cannot connect to the Docker "
            r"daemon at unix://.*nobody-serves-this\.sock.*\): start dockerd, or point "
            r"DOCKER_HOST \(or --docker\) at a running one"
        )
    elif fault == "compose missing":
        config = tmp_path / "docker-config"
        config.mkdir()
        env["DOCKER_CONFIG"] = str(config)
        expected = re.compile(
            r"ci-load run: 'docker compose version' failed \(.*unknown command.*\): install "
            r"Compose v2 as a docker plugin \(docker-compose-plugin\), or point --compose "
            r"/ ci_load.compose at it"
        )
    else:
        compose = old_compose(tmp_path)
        extra = ["--compose", str(compose)]
        expected = (
            f"ci-load run: {compose} is Compose 1.25.0; ci-load needs Compose v2 "
            "(`docker compose`) or docker-compose 1.29: install docker-compose-plugin, "
            "or point --compose / ci_load.compose at a v2 binary"
        )
    path = "faults/setup"

    process = subprocess.run(
        invoke_argv(
            "ci-load.run", *project_flags(project, f"{registry.address}/{path}", "--push", *extra)
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = f"--- stdout ---\n{process.stdout}\n--- stderr ---\n{process.stderr}"
    assert process.returncode == 1, output
    assert "Traceback" not in process.stdout + process.stderr, output
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, output
    if isinstance(expected, str):
        assert lines[0] == expected
    else:
        assert expected.fullmatch(lines[0]), lines[0]
    if fault == "compose missing":
        reason = lines[0].split("failed (", 1)[1].split("): install", 1)[0]
        assert "compose" in reason, f"docker's reason is not the one shown: {lines[0]}"
    assert not any(
        BUILD_LINE.match(line) or PULL_LINE.match(line) or PUSH_LINE.match(line)
        for line in process.stdout.splitlines()
    ), output
    assert registry.tags(path) == []
