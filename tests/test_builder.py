"""``builder.choose``: the classic builder or BuildKit, for the docker in use.

``choose`` is pure: the facts about the docker client and daemon are made up
here. ``project.docker_facts`` and ``project.pick_builder``, which ask docker
for them, run stand-in docker scripts written into tmp_path.
"""

import io
import json

import pytest

from ci_load_tasks.builder import DockerFacts, choose, platform_of
from ci_load_tasks.errors import CommandError, ConfigError
from ci_load_tasks.project import docker_facts, pick_builder
from ci_load_tasks.runner import Runner
from ci_load_tasks.settings import Settings

DEBIAN_20 = DockerFacts("20.10.24+dfsg1", "20.10.24+dfsg1")
DOCKER_28 = DockerFacts("28.2.2", "28.2.2")
DOCKER_28_BUILDX = DockerFacts("28.2.2", "28.2.2", has_buildx=True)
NO_BUILDX = (
    "docker client 28.2.2 builds with BuildKit only through the buildx plugin, which "
    "`docker buildx version` did not find"
)


def facts(base, **changes):
    return DockerFacts(**{**base.__dict__, **changes})


# -- auto -------------------------------------------------------------------------


def test_auto_picks_buildkit_on_a_20_10_client_which_has_it_built_in():
    builder = choose("auto", DEBIAN_20)

    assert (builder.name, builder.buildkit, builder.env) == (
        "buildkit",
        True,
        {"DOCKER_BUILDKIT": "1"},
    )
    assert builder.reason == "auto: docker client 20.10.24+dfsg1 can build with BuildKit"
    # Its built-in BuildKit client has no --build-context.
    assert builder.build_contexts is False


def test_auto_picks_classic_on_a_28_client_without_buildx_and_says_why():
    builder = choose("auto", DOCKER_28)

    assert (builder.name, builder.buildkit, builder.env) == (
        "classic",
        False,
        {"DOCKER_BUILDKIT": "0"},
    )
    assert builder.reason == f"auto: {NO_BUILDX}"
    assert builder.build_contexts is False


def test_auto_picks_buildkit_with_build_contexts_on_a_28_client_with_buildx():
    builder = choose("auto", DOCKER_28_BUILDX)

    assert (builder.name, builder.env, builder.build_contexts) == (
        "buildkit",
        {"DOCKER_BUILDKIT": "1"},
        True,
    )
    assert builder.reason == "auto: docker client 28.2.2 can build with BuildKit"


def test_auto_decides_from_the_client_alone_when_no_daemon_answers():
    builder = choose("auto", facts(DEBIAN_20, server_version=None))

    assert builder.name == "buildkit"


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
@pytest.mark.parametrize("docker", [DEBIAN_20, DOCKER_28_BUILDX], ids=["20.10", "28+buildx"])
def test_docker_buildkit_switched_off_makes_auto_pick_classic(value, docker):
    builder = choose("auto", facts(docker, env_buildkit=value))

    assert (builder.name, builder.env) == ("classic", {"DOCKER_BUILDKIT": "0"})
    assert builder.reason == f"DOCKER_BUILDKIT={value} is set"


def test_docker_buildkit_switched_on_cannot_make_auto_pick_what_the_client_lacks():
    builder = choose("auto", facts(DOCKER_28, env_buildkit="1"))

    assert (builder.name, builder.reason) == ("classic", f"auto: {NO_BUILDX}")


def test_docker_buildkit_set_to_1_leaves_auto_on_buildkit():
    assert choose("auto", facts(DEBIAN_20, env_buildkit="1")).name == "buildkit"


@pytest.mark.parametrize(
    "docker, reason",
    [
        pytest.param(
            DockerFacts("17.12.1-ce", None),
            "auto: docker client 17.12.1-ce is too old for BuildKit (18.09 or newer needed)",
            id="an old client",
        ),
        pytest.param(
            DockerFacts("20.10.24", "18.06.3-ce"),
            "auto: the docker daemon 18.06.3-ce is too old for BuildKit (18.09 or newer needed)",
            id="an old daemon",
        ),
    ],
)
def test_auto_picks_classic_on_an_old_client_or_daemon(docker, reason):
    builder = choose("auto", docker)

    assert (builder.name, builder.reason) == ("classic", reason)


def test_a_18_09_client_and_daemon_are_new_enough():
    assert choose("auto", DockerFacts("18.09.9", "18.09.9")).name == "buildkit"


# -- asked for by name ------------------------------------------------------------


@pytest.mark.parametrize(
    "docker",
    [DEBIAN_20, DOCKER_28_BUILDX, facts(DEBIAN_20, env_buildkit="1")],
    ids=["20.10", "28+buildx", "DOCKER_BUILDKIT=1"],
)
def test_classic_is_classic_on_any_docker(docker):
    builder = choose("classic", docker)

    assert (builder.name, builder.reason, builder.env, builder.build_contexts) == (
        "classic",
        "asked for with --builder classic",
        {"DOCKER_BUILDKIT": "0"},
        False,
    )


def test_buildkit_on_a_client_that_can_is_buildkit():
    builder = choose("buildkit", DEBIAN_20)

    assert (builder.name, builder.reason, builder.build_contexts) == (
        "buildkit",
        "asked for with --builder buildkit",
        False,
    )
    assert choose("buildkit", DOCKER_28_BUILDX).build_contexts is True


def test_buildkit_asked_for_by_name_beats_docker_buildkit_switched_off():
    assert choose("buildkit", facts(DEBIAN_20, env_buildkit="0")).name == "buildkit"


def test_buildkit_on_a_28_client_without_buildx_is_an_error_naming_the_fix():
    with pytest.raises(ConfigError) as error:
        choose("buildkit", DOCKER_28)

    assert str(error.value) == (
        f"--builder buildkit: {NO_BUILDX}; install it (Debian/Ubuntu: apt-get install "
        "docker-buildx; Docker's packages: docker-buildx-plugin), point --docker at a "
        "client that has it, or use --builder classic"
    )


@pytest.mark.parametrize(
    "docker, message",
    [
        pytest.param(
            DockerFacts("20.10.24", "17.06.2-ce"),
            "--builder buildkit: the docker daemon 17.06.2-ce is too old for "
            "BuildKit (18.09 or newer needed); use --builder classic",
            id="an old daemon",
        ),
        pytest.param(
            DockerFacts("1.13.1", None),
            "--builder buildkit: docker client 1.13.1 is too old for BuildKit "
            "(18.09 or newer needed); point --docker at a newer client, or use "
            "--builder classic",
            id="an old client",
        ),
    ],
)
def test_buildkit_on_an_old_client_or_daemon_is_an_error_naming_the_fix(docker, message):
    with pytest.raises(ConfigError) as error:
        choose("buildkit", docker)

    assert str(error.value) == message


@pytest.mark.parametrize("name", ["fast", "BuildKit", "", "docker"])
def test_an_unknown_builder_name_is_refused(name):
    with pytest.raises(ConfigError) as error:
        choose(name, DEBIAN_20)

    assert str(error.value) == (
        f"builder {name!r} is not one of auto, classic, buildkit: set --builder or "
        "ci_load.builder to one of them"
    )


def test_the_platform_of_the_daemon_is_what_buildkit_builds_for():
    assert platform_of(facts(DEBIAN_20, server_arch="arm64")) == {
        "os_name": "linux",
        "arch": "arm64",
    }


# -- asking docker ------------------------------------------------------------------


@pytest.fixture
def stand_in_docker(tmp_path):
    """A docker script answering `version` with ``version_json`` (exit
    ``version_code``) and `buildx version` with ``buildx_code``; it records
    every call."""
    calls = tmp_path / "calls.txt"

    def write(version_json, version_code=0, buildx_code=1):
        script = tmp_path / "docker"
        script.write_text(
            "#!/bin/sh\n"
            f'echo "$@" >> "{calls}"\n'
            'if [ "$1" = version ]; then\n'
            f"  cat <<'EOF'\n{version_json}\nEOF\n"
            f"  exit {version_code}\n"
            "fi\n"
            f'if [ "$1" = buildx ]; then exit {buildx_code}; fi\n'
            "exit 99\n"
        )
        script.chmod(0o755)
        return str(script)

    write.calls = calls
    return write


def version_json(client, server=None, os_name="linux", arch="amd64"):
    server_part = {"Version": server, "Os": os_name, "Arch": arch} if server else None
    return json.dumps({"Client": {"Version": client}, "Server": server_part})


def test_docker_facts_read_the_client_and_daemon_from_docker_version(stand_in_docker, monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    docker = stand_in_docker(version_json("20.10.24+dfsg1", "20.10.25", arch="arm64"))

    found = docker_facts(Runner(out=io.StringIO()), [docker])

    assert found == DockerFacts(
        "20.10.24+dfsg1",
        "20.10.25",
        server_os="linux",
        server_arch="arm64",
        has_buildx=False,
        env_buildkit="0",
    )
    # A client before 23 has BuildKit built in: no buildx to look for.
    assert stand_in_docker.calls.read_text() == "version --format {{json .}}\n"


@pytest.mark.parametrize("buildx_code, has_buildx", [(0, True), (1, False)])
def test_docker_facts_look_for_buildx_on_a_23_or_newer_client(
    stand_in_docker, buildx_code, has_buildx
):
    docker = stand_in_docker(version_json("28.2.2", "28.2.2"), buildx_code=buildx_code)

    found = docker_facts(Runner(out=io.StringIO()), [docker])

    assert found.has_buildx is has_buildx
    assert stand_in_docker.calls.read_text().splitlines() == [
        "version --format {{json .}}",
        "buildx version",
    ]


def test_docker_facts_without_a_daemon_are_the_clients_half(stand_in_docker):
    # docker version prints the client's part and exits 1 when no daemon answers.
    docker = stand_in_docker(version_json("20.10.24+dfsg1"), version_code=1)

    found = docker_facts(Runner(out=io.StringIO()), [docker])

    assert (found.client_version, found.server_version) == ("20.10.24+dfsg1", None)
    assert (found.server_os, found.server_arch) == ("linux", "amd64")


@pytest.mark.parametrize(
    "answer, shown",
    [("not json", "not json"), ("", "no output"), ('{"Server": null}', '{"Server": null}')],
)
def test_docker_facts_from_a_docker_that_does_not_say_what_it_is_are_an_error(
    stand_in_docker, answer, shown
):
    docker = stand_in_docker(answer)

    with pytest.raises(CommandError) as error:
        docker_facts(Runner(out=io.StringIO()), [docker])

    assert str(error.value) == (
        f"'{docker} version --format '{{{{json .}}}}'' did not say which docker it is "
        f"({shown}); check --docker"
    )


def settings(**flags):
    return Settings.resolve({}, {"service": "app", **flags})


def test_pick_builder_for_classic_asks_docker_nothing(stand_in_docker):
    docker = stand_in_docker(version_json("20.10.24"))

    builder, found = pick_builder(
        settings(builder="classic", docker=docker), Runner(out=io.StringIO())
    )

    assert (builder.name, found) == ("classic", None)
    assert not stand_in_docker.calls.exists()


def test_pick_builder_on_auto_asks_docker_and_notes_a_missing_daemon(stand_in_docker):
    docker = stand_in_docker(version_json("20.10.24"), version_code=1)
    out = io.StringIO()

    builder, found = pick_builder(settings(docker=docker), Runner(out=out))

    assert builder.name == "buildkit"
    assert found.client_version == "20.10.24"
    assert (
        "note: no docker daemon answered; the builder is chosen from the client alone"
    ) in out.getvalue()


def test_a_client_version_without_a_number_is_treated_as_old_not_a_traceback(stand_in_docker):
    docker = stand_in_docker(version_json("dev", "20.10.24"))

    found = docker_facts(Runner(out=io.StringIO()), [docker])

    assert found.client_major == 0
    with pytest.raises(ConfigError, match="too old for BuildKit"):
        choose("buildkit", found)
