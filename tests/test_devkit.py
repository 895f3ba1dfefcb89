"""The dev kit itself: private dockerd, registry, base image, compose plugin."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devkit import engine as engine_module
from devkit.engine import (
    BASE_IMAGE,
    DevkitError,
    Engine,
    _own_processes,
    _wait_for,
    compose_binary,
    run,
)

docker = pytest.mark.docker


# -- no daemon needed ---------------------------------------------------------


def test_a_failing_command_raises_an_error_naming_the_command_and_its_output():
    with pytest.raises(DevkitError) as err:
        run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    text = str(err.value)
    assert "exit code 3" in text and "sh -c" in text
    assert "to-out" in text and "to-err" in text


def test_a_command_that_hangs_is_stopped_at_its_timeout_with_a_clear_error():
    with pytest.raises(DevkitError, match=r"timed out after 0.5s: sleep 30"):
        run(["sleep", "30"], timeout=0.5)


def test_no_dockerd_is_started_beside_another_docker_s_bridge(tmp_path: Path, monkeypatch):
    # A dockerd with --bridge=none deletes docker0: the engine must refuse
    # before it starts one. The interface list is a stand-in directory here.
    interfaces = tmp_path / "net"
    (interfaces / "docker0").mkdir(parents=True)
    monkeypatch.setattr(engine_module, "NET_INTERFACES", interfaces)

    with pytest.raises(DevkitError, match=r"^a docker0 network interface exists"):
        Engine.start(tmp_path / "engine")

    assert not (tmp_path / "engine" / "dockerd.pid").exists()
    assert not (tmp_path / "engine" / "data").exists()


def test_without_a_docker_bridge_the_check_passes(tmp_path: Path, monkeypatch):
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    monkeypatch.setattr(engine_module, "NET_INTERFACES", tmp_path / "net")

    engine_module.refuse_beside_a_docker_bridge()  # no error


def test_a_daemon_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path):
    log = tmp_path / "d.log"
    log.write_text("line 1\nfatal: cannot start, reason here\n")
    proc = subprocess.Popen(["sh", "-c", "exit 7"])
    with pytest.raises(DevkitError) as err:
        _wait_for(lambda: False, what="fakedaemon", timeout=30, proc=proc, log=log)
    assert "fakedaemon exited with code 7" in str(err.value)
    assert "reason here" in str(err.value)


def test_the_compose_binary_is_the_real_one_not_the_always_zero_wrapper():
    binary = compose_binary()
    assert binary.name == "docker-compose" and os.access(binary, os.X_OK)
    # The real binary reports a failure; the console-script wrapper would not.
    bad = subprocess.run([binary, "no-such-subcommand"], capture_output=True)
    assert bad.returncode != 0


# -- against a private daemon --------------------------------------------------


@docker
def test_the_engine_is_a_dockerd_of_its_own_under_its_root(engine: Engine):
    info = json.loads(engine.docker("info", "--format", "{{json .}}").stdout)
    assert info["DockerRootDir"] == str(engine.data_root)
    assert info["Driver"] == "overlay2"
    assert engine.host == f"unix://{engine.socket}"
    assert len(str(engine.socket)) < 100


@docker
def test_engine_env_points_docker_at_the_engine_and_drops_the_users_settings(
    engine: Engine,
):
    env = engine.env(
        {"PATH": "/usr/bin", "DOCKER_BUILDKIT": "1", "DOCKER_CONTEXT": "prod",
         "DOCKER_HOST": "tcp://elsewhere:2375", "KEEP": "me"}
    )  # fmt: skip
    assert env["DOCKER_HOST"] == engine.host
    assert env["DOCKER_CONFIG"] == str(engine.config_dir)
    assert "DOCKER_BUILDKIT" not in env and "DOCKER_CONTEXT" not in env
    assert env["KEEP"] == "me"


@docker
def test_containers_from_the_base_image_run_busybox(engine: Engine, base_image: str):
    assert base_image == BASE_IMAGE
    out = engine.docker("run", "--rm", "--network", "none", base_image, "busybox", "echo", "hi")
    assert out.stdout == "hi\n"


@docker
def test_shell_steps_build_on_the_base_image(engine: Engine, base_image: str, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image} AS first\nRUN echo hi > /x\n"
        'FROM first\nRUN cat /x > /y\nCMD ["cat", "/y"]\n'
    )
    engine.docker("build", "-t", "devkit-test/shell:1", tmp_path)
    out = engine.docker("run", "--rm", "--network", "none", "devkit-test/shell:1")
    assert out.stdout == "hi\n"


@docker
@pytest.mark.skipif(not Path("/usr/bin/docker").exists(), reason="Debian's docker client absent")
def test_buildkit_builds_on_the_base_image_with_network_none(
    engine: Engine, base_image: str, engine_env: dict, tmp_path: Path
):
    # BuildKit's RUN needs a network; the engine has no bridge, so only
    # `--network none` works (without it: "network bridge not found").
    (tmp_path / "Dockerfile").write_text(
        f'FROM {base_image}\nRUN echo bk > /x\nCMD ["cat", "/x"]\n'
    )
    run(
        [
            "/usr/bin/docker",
            "build",
            "--network",
            "none",
            "-t",
            "devkit-test/bk:1",
            tmp_path,
        ],
        env={**engine_env, "DOCKER_BUILDKIT": "1"},
    )
    out = engine.docker("run", "--rm", "--network", "none", "devkit-test/bk:1")
    assert out.stdout == "bk\n"


@docker
def test_images_pushed_to_the_registry_can_be_pulled_back(
    engine: Engine, registry, base_image: str
):
    ref = f"{registry.address}/devkit-test/pushpull:one"
    engine.docker("tag", base_image, ref)
    engine.docker("push", ref)
    assert registry.tags("devkit-test/pushpull") == ["one"]
    assert "devkit-test/pushpull" in registry.catalog()
    engine.docker("rmi", ref)
    engine.docker("pull", ref)
    out = engine.docker("run", "--rm", "--network", "none", ref, "echo", "pulled")
    assert out.stdout == "pulled\n"


@docker
def test_a_repository_never_pushed_has_no_tags(registry):
    assert registry.tags("devkit-test/never-pushed") == []


@docker
def test_docker_compose_version_works_through_the_engine_env(engine_env: dict):
    out = run(["docker", "compose", "version"], env=engine_env)
    assert "v2." in out.stdout


@docker
def test_docker_compose_builds_a_stage_target_through_the_engine_env(
    engine: Engine, engine_env: dict, base_image: str, tmp_path: Path
):
    # Compose 2.40 builds with the daemon's BuildKit (no buildx needed), so
    # RUN steps need `network: none` on this bridgeless daemon.
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image} AS deps\nRUN echo deps > /d\n"
        'FROM deps AS app\nRUN echo app > /a\nCMD ["cat", "/d", "/a"]\n'
    )
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: devkit-test/compose:1\n"
        "    build:\n      context: .\n      target: app\n      network: none\n"
    )
    run(["docker", "compose", "build"], env=engine_env, cwd=tmp_path)
    out = engine.docker("run", "--rm", "--network", "none", "devkit-test/compose:1")
    assert out.stdout == "deps\napp\n"


@docker
def test_wipe_leaves_no_images_containers_or_build_cache(engine: Engine, base_image: str):
    before = engine.docker("image", "inspect", "--format", "{{.Id}}", base_image).stdout
    engine.docker("create", "--name", "devkit-leftover", base_image, "true")
    engine.wipe()
    assert engine.docker("images", "--all", "--quiet").stdout == ""
    assert engine.docker("ps", "--all", "--quiet").stdout == ""
    df = engine.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert all(line.endswith(" 0") for line in df.splitlines()), df
    # The base image comes back identical, as a CI runner would pull it.
    from devkit.engine import build_base_image

    build_base_image(engine)
    after = engine.docker("image", "inspect", "--format", "{{.Id}}", base_image).stdout
    assert after == before


@docker
def test_stop_leaves_no_dockerd_containerd_or_shim_behind(tmp_path: Path):
    own = Engine.start(tmp_path / "own")
    marker = str(own.exec_root)
    try:
        from devkit.engine import build_base_image

        build_base_image(own)
        # A running container adds a containerd shim to clean up.
        # (PID 1 ignores SIGTERM unless it traps it; this one stops at once.)
        own.docker("run", "-d", "--network", "none", BASE_IMAGE,
                   "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")  # fmt: skip
        running = _own_processes(marker)
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in running}
        assert {"dockerd", "containerd"} <= names and any(
            n.startswith("containerd-shim") for n in names
        )
    finally:
        own.stop()
    assert _own_processes(marker) == []
    assert not Path(marker).exists()
    own.stop()  # idempotent
    with pytest.raises(DevkitError, match="was stopped"):
        own.wipe()


@docker
def test_a_root_in_use_by_a_running_engine_is_refused(engine: Engine):
    with pytest.raises(DevkitError, match="in use by dockerd"):
        Engine.start(engine.root)


@docker
def test_the_sandbox_s_exports_reach_its_daemon_and_registry_and_ctrl_c_removes_all():
    repo = Path(__file__).resolve().parent.parent
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "devkit.sandbox"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = []
        assert sandbox.stdout is not None
        for line in sandbox.stdout:  # ends early only if the sandbox failed
            printed.append(line)
            if "Ctrl-C here stops both" in line:
                break
        exports = {}
        for line in printed:
            if line.strip().startswith("export "):
                words = shlex.split(line, comments=True)
                exports.update(word.split("=", 1) for word in words[1:])
        assert set(exports) == {"DOCKER_HOST", "DOCKER_CONFIG", "R"}, printed

        env = {**os.environ, **exports}
        image = run(["docker", "image", "inspect", BASE_IMAGE], env=env, timeout=60)
        assert json.loads(image.stdout)[0]["RepoTags"] == [BASE_IMAGE]
        with urllib.request.urlopen(f"http://{exports['R']}/v2/", timeout=10) as answer:
            assert answer.status == 200
        work = re.search(r"removes (\S+)\.$", printed[-1].strip())
        assert work, printed

        sandbox.send_signal(signal.SIGINT)
        assert sandbox.wait(timeout=60) == 0
        assert not Path(work.group(1)).exists()
    finally:
        if sandbox.poll() is None:
            # SIGTERM, so that it stops its daemons: killed, it would leave them.
            sandbox.terminate()
            try:
                sandbox.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sandbox.kill()
                sandbox.wait()
