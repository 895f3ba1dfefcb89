"""``compose_config``: what a rendered compose config says about a service's build.

The inputs are real ``docker compose config`` outputs stored under
tests/data/unit/rendered/ (see the README there); the first test renders them
again to prove they still are what compose prints.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from ci_load_tasks.compose_config import (
    ServiceBuild,
    read_service,
    service_image,
    services,
    unescape,
)
from ci_load_tasks.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
RENDERED = REPO / "tests" / "data" / "unit" / "rendered"
SHOP_FILES = ["/srv/shop/docker-compose.yml"]
EDGE_FILES = ["/srv/edge/docker-compose.yml"]


def rendered(name):
    return yaml.safe_load((RENDERED / name).read_text())


@pytest.fixture
def compose_env(_shield_env, docker_config):
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    env.pop("BASE_IMAGE", None)
    return env


# -- the samples are real compose output ----------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "shop.yml",
        "shop_collide.yml",
        "layers.yml",
        "recipes.yml",
        "recipes_no_hello.yml",
        "edge.yml",
    ],
)
def test_the_stored_rendered_configs_are_what_compose_renders_today(name, compose_env):
    first_line = (RENDERED / name).read_text().splitlines()[0]
    prefix = "# Rendered by: "
    assert first_line.startswith(prefix)

    result = subprocess.run(
        shlex.split(first_line[len(prefix) :]),
        check=False,
        cwd=REPO,
        env=compose_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["services"] == rendered(name)["services"]


# -- reading a service ----------------------------------------------------------


def test_the_main_service_of_the_sample_project_is_read_with_absolute_paths():
    build = read_service(rendered("shop.yml"), "shop", SHOP_FILES)

    assert build == ServiceBuild(
        service="shop",
        image="example/shop:1.0",
        context="/srv/shop",
        dockerfile="/srv/shop/docker/shop.Dockerfile",
        args={"BASE_IMAGE": "busybox:1.36", "GREETING": "costs $5"},
        target=None,
        cache_from=(),
        network=None,
        section={},
    )
    assert build.section == {
        "context": "/srv/shop",
        "dockerfile": "docker/shop.Dockerfile",
        "args": {"BASE_IMAGE": "busybox:1.36", "GREETING": "costs $$5"},
    }
    assert build.ignored_keys == ()


def test_a_services_target_is_read():
    build = read_service(rendered("shop.yml"), "shop-build", SHOP_FILES)

    assert build.target == "build"


@pytest.mark.parametrize(
    "name, service, arg, value",
    [
        pytest.param("shop.yml", "shop", "GREETING", "costs $5", id="one escaped dollar"),
        pytest.param(
            "edge.yml", "extra", "DOLLARS", "$HOME and ${USER}", id="escaped variables stay literal"
        ),
    ],
)
def test_an_escaped_dollar_in_a_rendered_arg_reaches_docker_as_one_dollar(
    name, service, arg, value
):
    build = read_service(rendered(name), service, ["docker-compose.yml"])

    assert build.args[arg] == value
    assert build.section["args"][arg] == value.replace("$", "$$")


def test_build_keys_are_read_and_those_ci_load_does_not_pass_on_are_listed():
    build = read_service(rendered("edge.yml"), "extra", EDGE_FILES)

    assert (build.image, build.context, build.dockerfile) == (
        "example/extra:1.0",
        "/srv/edge/extra",
        "/srv/edge/extra/extra.Dockerfile",
    )
    assert build.args == {"DOLLARS": "$HOME and ${USER}", "EMPTY": "", "PLAIN": "1"}
    assert (build.target, build.network, build.cache_from) == (
        "runtime",
        "host",
        ("example/extra:cache",),
    )
    assert build.ignored_keys == ("labels", "shm_size")


def test_a_short_build_is_rendered_with_the_default_dockerfile():
    build = read_service(rendered("edge.yml"), "short", EDGE_FILES)

    assert (build.image, build.context, build.dockerfile, build.args) == (
        None,
        "/srv/edge/short",
        "/srv/edge/short/Dockerfile",
        {},
    )


def test_args_given_as_a_list_are_read_like_a_map():
    build = read_service(rendered("legacy_forms.yml"), "listed", ["legacy.yml"])

    assert build.args == {
        "PLAIN": "1",
        "FROM_ENV": None,
        "EQUATION": "a=b",
        "PRICE": "costs $5",
    }


def test_an_absolute_dockerfile_path_is_kept():
    build = read_service(rendered("legacy_forms.yml"), "listed", ["legacy.yml"])

    assert build.dockerfile == "/srv/legacy/docker/listed.Dockerfile"


def test_a_build_given_as_a_string_is_its_context():
    build = read_service(rendered("legacy_forms.yml"), "short", ["legacy.yml"])

    assert (build.context, build.dockerfile, build.section) == (
        "/srv/legacy/short",
        "/srv/legacy/short/Dockerfile",
        {"context": "/srv/legacy/short"},
    )


def test_a_dollar_in_the_project_path_is_unescaped_in_context_and_dockerfile(tmp_path, compose_env):
    project = tmp_path / "costs $5"
    project.mkdir()
    compose_file = project / "docker-compose.yml"
    compose_file.write_text("services:\n  app:\n    build: .\n")
    result = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config"],
        check=False,
        cwd=project,
        env=compose_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["services"]["app"]["build"]["context"] == f"{tmp_path}/costs $$5"

    build = read_service(config, "app", [str(compose_file)])

    assert (build.context, build.dockerfile) == (
        str(project),
        str(project / "Dockerfile"),
    )
    assert build.section["context"] == f"{tmp_path}/costs $$5"


# -- what ci-load cannot build --------------------------------------------------


def test_an_undefined_service_is_an_error_naming_it_the_files_and_the_services():
    files = ["/srv/shop/docker-compose.yml", "/srv/shop/ci.yml"]

    with pytest.raises(ConfigError) as error:
        read_service(rendered("shop.yml"), "shpo", files)

    assert str(error.value) == (
        "service 'shpo' is not defined in /srv/shop/docker-compose.yml, "
        "/srv/shop/ci.yml (services there: db, shop, shop-build, shop-latest, "
        "worker); pass --service with one of them"
    )


def test_a_config_without_services_says_there_are_none():
    with pytest.raises(ConfigError, match=r"\(services there: none\)"):
        read_service({"name": "empty"}, "shop", SHOP_FILES)


def test_a_service_without_a_build_is_an_error_naming_it_and_the_files():
    with pytest.raises(ConfigError) as error:
        read_service(rendered("shop.yml"), "db", SHOP_FILES)

    assert str(error.value) == (
        "service 'db' in /srv/shop/docker-compose.yml has no build section: ci-load "
        "caches images it builds; give the service a build: or choose another service"
    )


def test_a_remote_build_context_is_an_error():
    with pytest.raises(ConfigError) as error:
        read_service(rendered("edge.yml"), "remote", EDGE_FILES)

    assert str(error.value) == (
        "service 'remote' builds from the remote context "
        "'https://github.com/example/remote.git#main'; ci-load needs a local directory "
        "as build context"
    )


def test_an_inline_dockerfile_is_read_from_compose_and_never_from_the_context():
    build = read_service(rendered("edge.yml"), "inline", EDGE_FILES)

    assert build.dockerfile_inline == "FROM busybox:1.36\n"
    assert build.dockerfile == "(dockerfile_inline of service inline)"
    assert build.ignored_keys == ()


def test_args_that_are_neither_a_map_nor_a_list_are_an_error():
    config = {"services": {"odd": {"build": {"context": "/srv", "args": "A=1"}}}}

    with pytest.raises(ConfigError) as error:
        read_service(config, "odd", SHOP_FILES)

    assert str(error.value) == "service 'odd': build args must be a map or a list"


# -- other services -------------------------------------------------------------


def test_the_image_of_another_service_is_read():
    assert service_image(rendered("shop.yml"), "shop-build", SHOP_FILES) == (
        "example/shop-build:1.0"
    )


def test_another_service_that_is_not_defined_is_an_error_naming_it_and_the_files():
    with pytest.raises(ConfigError) as error:
        service_image(rendered("shop.yml"), "tset", SHOP_FILES)

    assert str(error.value) == (
        "other service 'tset' is not defined in /srv/shop/docker-compose.yml "
        "(services there: db, shop, shop-build, shop-latest, worker); check --other-service"
    )


def test_another_service_without_an_image_is_an_error():
    with pytest.raises(ConfigError) as error:
        service_image(rendered("edge.yml"), "short", EDGE_FILES)

    assert str(error.value) == (
        "other service 'short' has no image: name, so ci-load cannot tag it; add an "
        "image: to the service"
    )


# -- helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [None, [], {"services": None}, {"services": ["a"]}, {}],
    ids=["nothing", "a list", "null services", "services as a list", "no services"],
)
def test_services_of_a_config_without_a_services_map_are_none(config):
    assert services(config) == {}


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("costs $$5", "costs $5", id="an escaped dollar"),
        pytest.param("$${HOME}", "${HOME}", id="an escaped variable"),
        pytest.param("$$$$", "$$", id="two escaped dollars"),
        pytest.param("no dollar", "no dollar", id="text without a dollar"),
    ],
)
def test_unescape_undoes_composes_dollar_escaping(text, expected):
    assert unescape(text) == expected
