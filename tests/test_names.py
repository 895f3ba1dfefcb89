"""Cache image names: ``names.CacheLocation`` and ``names.cache_images``."""

import re

import pytest

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.names import (
    MAX_TAG_LENGTH,
    CacheImages,
    CacheLocation,
    cache_images,
    fit_tag,
)

# What every bad path component's error ends with: what to do.
FIX = "; use lower-case letters, digits and single '.', '_' or '-' between them"


def names_for(location, service="app", version=None, stages=(), recipes=()):
    location = CacheLocation.parse(location)
    return cache_images(location, service, version, stages, recipes)


# -- the names of the ancestor ci_load.py ---------------------------------------


@pytest.mark.parametrize(
    "location, version, final, stage, recipe",
    [
        pytest.param(
            "team/cache",
            None,
            "team/cache:app_final",
            "team/cache:app_stage_deps",
            "team/cache:app_recipe_hello",
            id="a repository gives REPO:SERVICE_kind",
        ),
        pytest.param(
            "team/cache",
            "v2",
            "team/cache:v2_app_final",
            "team/cache:v2_app_stage_deps",
            "team/cache:v2_app_recipe_hello",
            id="a cache version comes first in the tag",
        ),
        pytest.param(
            "team/cache:pr-17",
            None,
            "team/cache:pr-17_final",
            "team/cache:pr-17_stage_deps",
            "team/cache:pr-17_recipe_hello",
            id="a tag prefix replaces the service",
        ),
        pytest.param(
            "team/cache:pr-17",
            "v2",
            "team/cache:pr-17_final",
            "team/cache:pr-17_stage_deps",
            "team/cache:pr-17_recipe_hello",
            id="a tag prefix replaces the version too",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache",
            None,
            "127.0.0.1:5000/team/cache:app_final",
            "127.0.0.1:5000/team/cache:app_stage_deps",
            "127.0.0.1:5000/team/cache:app_recipe_hello",
            id="a registry port is not a tag",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache",
            "v2",
            "127.0.0.1:5000/team/cache:v2_app_final",
            "127.0.0.1:5000/team/cache:v2_app_stage_deps",
            "127.0.0.1:5000/team/cache:v2_app_recipe_hello",
            id="a registry port with a cache version",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache:pr-17",
            None,
            "127.0.0.1:5000/team/cache:pr-17_final",
            "127.0.0.1:5000/team/cache:pr-17_stage_deps",
            "127.0.0.1:5000/team/cache:pr-17_recipe_hello",
            id="a registry port with a tag prefix",
        ),
        pytest.param(
            "localhost:5000/cache",
            None,
            "localhost:5000/cache:app_final",
            "localhost:5000/cache:app_stage_deps",
            "localhost:5000/cache:app_recipe_hello",
            id="localhost with a port",
        ),
        pytest.param(
            "[::1]:5000/cache:main",
            None,
            "[::1]:5000/cache:main_final",
            "[::1]:5000/cache:main_stage_deps",
            "[::1]:5000/cache:main_recipe_hello",
            id="an IPv6 registry with a port and a tag prefix",
        ),
    ],
)
def test_cache_images_are_named_like_the_ancestor_ci_load(location, version, final, stage, recipe):
    images = names_for(location, version=version, stages=["deps"], recipes=["hello"])

    assert images == CacheImages(final, {"deps": stage}, {"hello": recipe})


def test_stages_and_recipes_keep_the_order_they_are_given_in():
    images = names_for("cache", stages=["toolchain", "deps", "build"], recipes=["b", "a"])

    assert list(images.stages) == ["toolchain", "deps", "build"]
    assert list(images.recipes) == ["b", "a"]
    assert images.all() == [
        "cache:app_final",
        "cache:app_stage_toolchain",
        "cache:app_stage_deps",
        "cache:app_stage_build",
        "cache:app_recipe_b",
        "cache:app_recipe_a",
    ]


def test_cache_images_as_a_dict_hold_final_stages_and_recipes():
    images = names_for("cache", stages=["deps"], recipes=["hello"])

    assert images.as_dict() == {
        "final": "cache:app_final",
        "stages": {"deps": "cache:app_stage_deps"},
        "recipes": {"hello": "cache:app_recipe_hello"},
    }


def test_a_cache_version_with_characters_docker_refuses_becomes_a_valid_tag():
    images = names_for("cache", version="feature/login+sso", stages=["deps"])

    assert images.final == "cache:feature_login_sso_app_final"
    assert images.stages == {"deps": "cache:feature_login_sso_app_stage_deps"}


# -- parsing a location ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, repo, prefix",
    [
        pytest.param("cache", "cache", None, id="a bare repository"),
        pytest.param("team/cache:main", "team/cache", "main", id="a repository and a tag"),
        pytest.param(
            "registry.example.com/team/cache",
            "registry.example.com/team/cache",
            None,
            id="a registry host",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache",
            "127.0.0.1:5000/team/cache",
            None,
            id="a registry with a port",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache:P",
            "127.0.0.1:5000/team/cache",
            "P",
            id="a registry with a port and a tag",
        ),
        pytest.param("  team/cache:main  ", "team/cache", "main", id="white space around"),
        pytest.param(
            "Registry.Example.com/cache",
            "Registry.Example.com/cache",
            None,
            id="a registry host in upper case",
        ),
    ],
)
def test_a_colon_is_a_tag_separator_only_after_the_last_slash(text, repo, prefix):
    location = CacheLocation.parse(text)

    assert (location.repo, location.prefix) == (repo, prefix)


@pytest.mark.parametrize(
    "text",
    ["team/cache", "team/cache:main", "127.0.0.1:5000/team/cache:P"],
)
def test_a_location_prints_as_it_was_given(text):
    assert str(CacheLocation.parse(text)) == text


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param(
            "team/cache:",
            "cache location 'team/cache:' ends with ':': drop it or add a tag prefix",
            id="an empty tag",
        ),
        pytest.param(
            "127.0.0.1:5000/team/cache:",
            "cache location '127.0.0.1:5000/team/cache:' ends with ':': drop it or add "
            "a tag prefix",
            id="an empty tag after a registry port",
        ),
        pytest.param(
            "team/cache@sha256:" + "0" * 64,
            f"cache location 'team/cache@sha256:{'0' * 64}' has a digest: give a "
            "repository, optionally with a tag prefix (REPO or REPO:PREFIX)",
            id="a digest",
        ),
        pytest.param(
            "Team/cache",
            "cache location 'Team/cache': 'Team' is not a valid repository path "
            "component (repository names must be lower case)" + FIX,
            id="an upper-case repository",
        ),
        pytest.param(
            "127.0.0.1:5000/team/Cache:P",
            "cache location '127.0.0.1:5000/team/Cache:P': 'Cache' is not a valid "
            "repository path component (repository names must be lower case)" + FIX,
            id="an upper-case repository behind a registry",
        ),
        pytest.param(
            "team//cache",
            "cache location 'team//cache': '' is not a valid repository path component" + FIX,
            id="an empty path component",
        ),
        pytest.param(
            ":main",
            "cache location ':main' has no repository name",
            id="only a tag",
        ),
        pytest.param(
            "",
            "cache location '' has no repository name",
            id="nothing at all",
        ),
        pytest.param(
            "team/cache:-main",
            "cache location 'team/cache:-main': tag prefix '-main' may hold only "
            "letters, digits, '_', '.' and '-' and must not start with '.' or '-'",
            id="a tag starting with a dash",
        ),
        pytest.param(
            "reg_istry.example.com:5000/cache",
            "cache location 'reg_istry.example.com:5000/cache': "
            "'reg_istry.example.com:5000' is not a valid registry host",
            id="an invalid registry host",
        ),
        pytest.param(
            "127.0.0.1:99999/team/cache",
            "cache location '127.0.0.1:99999/team/cache': registry port 99999 is out of "
            "range; use 1 to 65535",
            id="a port no socket can have",
        ),
        pytest.param(
            "[::1]:0/team/cache",
            "cache location '[::1]:0/team/cache': registry port 0 is out of range; use 1 to 65535",
            id="port 0 of an IPv6 host",
        ),
    ],
)
def test_an_invalid_location_is_a_config_error_naming_it(text, message):
    with pytest.raises(ConfigError) as error:
        CacheLocation.parse(text)

    assert str(error.value) == message


def test_a_tag_prefix_of_129_characters_is_refused():
    with pytest.raises(ConfigError, match=r"tag prefix 'p{129}' may hold only"):
        CacheLocation.parse("cache:" + "p" * 129)


# -- long tags ----------------------------------------------------------------------


def test_a_tag_of_128_characters_is_kept_as_it_is():
    tag = "a" * 128

    assert fit_tag(tag) == tag


def test_a_tag_over_128_characters_keeps_a_readable_head_and_ends_in_a_hash():
    tag = "v" * 40 + "_app_stage_" + "s" * 100

    fitted = fit_tag(tag)

    assert len(fitted) == MAX_TAG_LENGTH == 128
    head, digest = fitted.rsplit("-", 1)
    assert tag.startswith(head) and len(head) == 115
    assert re.fullmatch(r"[0-9a-f]{12}", digest)


def test_shortening_a_tag_gives_the_same_result_every_time():
    tag = "x" * 300

    assert fit_tag(tag) == fit_tag("x" * 300)
    assert fit_tag(tag) == "x" * 115 + "-" + fit_tag(tag)[-12:]


def test_two_long_tags_that_share_their_head_still_differ():
    first = fit_tag("s" * 200 + "_stage_one")
    second = fit_tag("s" * 200 + "_stage_two")

    assert first != second
    assert first[:115] == second[:115]


def test_a_long_stage_name_gives_a_valid_shortened_tag_in_the_image_name():
    stage = "stage-" + "x" * 150
    images = names_for("127.0.0.1:5000/team/cache", version="v2", stages=[stage])

    repo, tag = images.stages[stage].rsplit(":", 1)
    assert repo == "127.0.0.1:5000/team/cache"
    assert len(tag) == 128 and tag.startswith("v2_app_stage_stage-xxx")
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag)


@pytest.mark.parametrize(
    "tag, fitted",
    [
        pytest.param("a/b c", "a_b_c", id="slash and space become underscores"),
        pytest.param(".hidden", "_hidden", id="a leading dot becomes an underscore"),
        pytest.param("-dash", "_dash", id="a leading dash becomes an underscore"),
        pytest.param("Main_1.2-rc", "Main_1.2-rc", id="a valid tag is kept"),
    ],
)
def test_characters_docker_refuses_in_a_tag_become_underscores(tag, fitted):
    assert fit_tag(tag) == fitted


@pytest.mark.parametrize("text", ["127.0.0.1:5000", "registry.example.com:443", "localhost:5000"])
def test_a_registry_host_and_port_without_a_repository_is_an_error(text):
    with pytest.raises(ConfigError) as error:
        CacheLocation.parse(text)

    assert str(error.value) == (
        f"cache location {text!r} looks like a registry HOST:PORT without a "
        f"repository; add one, e.g. {text}/team/cache"
    )


def test_a_plain_repository_with_a_numeric_tag_prefix_is_still_a_tag_prefix():
    assert CacheLocation.parse("cache:2024") == CacheLocation("cache", "2024")
