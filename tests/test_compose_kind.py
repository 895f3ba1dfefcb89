"""What changes with the compose ci-load talks to (v1 or v2): pure logic.

That the project name worked out for v1 is the one v1 itself uses is checked
for real in tests/test_end_to_end_compose_v1.py (v1 runs the image ci-load
tagged) and in tests/test_corpus.py (a project named in its .env).
"""

import pytest

from ci_load_tasks.compose_kind import (
    ComposeKind,
    check_env_files,
    too_old,
    v1_project_name,
    version_in,
)
from ci_load_tasks.errors import ConfigError


@pytest.mark.parametrize(
    "answer, version",
    [
        ("Docker Compose version v2.40.3\n", "2.40.3"),
        (
            "docker-compose version 1.29.2, build unknown\ndocker-py version: 5.0.3\n"
            "CPython version: 3.11.2\n",
            "1.29.2",
        ),
        ("1.25.0\n", "1.25.0"),
        ("no version here\n", None),
    ],
    ids=["v2", "v1 with its library versions after", "a bare number", "nothing"],
)
def test_the_version_is_read_from_either_version_output(answer, version):
    assert version_in(answer) == version


def test_v1_before_1_29_is_too_old_and_1_29_and_v2_are_not():
    assert too_old("1.28.6")
    assert not too_old("1.29.2")
    assert not too_old("2.40.3")


@pytest.mark.parametrize(
    "kind, config, image",
    [
        (ComposeKind("2.40.3"), {"name": "shop"}, "shop-app"),
        (ComposeKind("1.29.2", "shop"), {}, "shop_app"),
        (ComposeKind("2.40.3"), {}, None),
    ],
    ids=["v2 joins with a dash", "v1 with an underscore", "no project name: no image"],
)
def test_the_default_image_name_follows_the_compose_in_use(kind, config, image):
    assert kind.default_image(config, "app") == image


def test_v1_with_two_env_files_is_one_line_naming_them():
    with pytest.raises(ConfigError) as error:
        check_env_files(ComposeKind("1.29.2"), ["/p/a.env", "/p/b.env"])

    assert str(error.value) == (
        "Compose v1 reads one --env-file only, and 2 are given (/p/a.env, /p/b.env); "
        "merge them into one, or use Compose v2"
    )
    check_env_files(ComposeKind("2.40.3"), ["/p/a.env", "/p/b.env"])


def test_v1_project_name_is_the_project_directory_lowercased_with_odd_characters_dropped(
    tmp_path,
):
    project = tmp_path / "My.Shop 2"
    project.mkdir()

    name = v1_project_name([str(project / "x.yml")], str(project), [], {}, str(tmp_path))

    assert name == "myshop2"


def test_v1_project_name_comes_from_the_env_file_before_the_directory(tmp_path):
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=Shop\n")
    (tmp_path / "ci.env").write_text("COMPOSE_PROJECT_NAME=ci_shop\n")
    files = [str(tmp_path / "compose.yaml")]

    assert v1_project_name(files, str(tmp_path), [], {}, "/") == "shop"
    # An --env-file replaces .env, as in v1.
    assert v1_project_name(files, str(tmp_path), [str(tmp_path / "ci.env")], {}, "/") == "ci_shop"
    # The environment beats both.
    env = {"COMPOSE_PROJECT_NAME": "from-env"}
    assert v1_project_name(files, str(tmp_path), [], env, "/") == "from-env"


def test_v1_project_name_without_compose_files_is_that_of_the_file_v1_finds_above(tmp_path):
    project = tmp_path / "project"
    below = project / "src" / "deep"
    below.mkdir(parents=True)
    (project / "docker-compose.yml").write_text("services: {}\n")

    assert v1_project_name([], str(below), [], {}, str(below)) == "project"
    # COMPOSE_FILE, from the environment or the working directory's .env, first.
    (below / ".env").write_text("COMPOSE_FILE=../other/compose.yaml\n")
    assert v1_project_name([], str(below), [], {}, str(below)) == "other"
