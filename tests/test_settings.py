"""``settings.Settings.resolve``: a flag beats config, config beats the default.

``config`` is what invoke holds under ``ci_load`` (the collection's defaults,
``invoke.yaml``, ``INVOKE_CI_LOAD_*``); ``flags`` are a task's keyword
arguments, renamed to config keys. See test_collection.py for the same rules
through invoke itself.
"""

import os

import pytest

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.settings import DEFAULTS, Settings

KEYS = [
    "compose_files",
    "env_files",
    "project_dir",
    "service",
    "all",
    "other_services",
    "cache_repo",
    "other_repos",
    "cache_version",
    "recipe_repo",
    "recipe_compose",
    "docker",
    "compose",
    "builder",
    "retries",
    "retry_delay",
    "workdir",
    "keep",
    "quiet",
    "verbose",
]

# What invoke hands over for flags that were not given: None, False for the
# boolean flag and [] for the repeatable ones.
NO_FLAGS = {
    "compose_files": [],
    "env_files": [],
    "project_dir": None,
    "service": None,
    "all": False,
    "other_services": [],
    "cache_repo": None,
    "other_repos": [],
    "cache_version": None,
    "recipe_repo": None,
    "recipe_compose": None,
    "docker": None,
    "compose": None,
    "builder": None,
    "retries": None,
    "retry_delay": None,
    "workdir": None,
    "keep": False,
    "quiet": False,
    "verbose": False,
}


@pytest.fixture(autouse=True)
def in_project(tmp_path, monkeypatch):
    """Run in an empty project directory: relative paths resolve against it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def resolve(config=None, **flags):
    return Settings.resolve(config or {}, {**NO_FLAGS, **flags})


def test_the_config_namespace_declares_exactly_the_documented_keys():
    assert list(DEFAULTS) == KEYS


def test_without_config_and_flags_every_setting_has_its_default(in_project):
    settings = resolve()

    assert settings.as_dict() == {
        "compose_files": (),
        "env_files": (),
        "project_dir": str(in_project),
        "services": (),
        "all": False,
        "other_services": (),
        "cache_repo": None,
        "other_repos": (),
        "cache_version": None,
        "recipe_repo": None,
        "recipe_compose": None,
        "docker": ("docker",),
        "compose": ("docker", "compose"),
        "builder": "auto",
        "retries": 2,
        "retry_delay": 1.0,
        "workdir": None,
        "keep": False,
        "quiet": False,
        "verbose": False,
    }


def test_the_collection_defaults_as_config_resolve_like_no_config_at_all():
    assert resolve(dict(DEFAULTS)) == resolve({})


@pytest.mark.parametrize(
    "key, config_value, flag_value, expected",
    [
        pytest.param("service", "from-config", "from-flag", "from-flag", id="service"),
        pytest.param(
            "cache_repo",
            "reg.example/config",
            "reg.example/flag",
            "reg.example/flag",
            id="cache repo",
        ),
        pytest.param("cache_version", "v1", "v2", "v2", id="cache version"),
        pytest.param(
            "recipe_repo", "config/recipe", "flag/recipe", "flag/recipe", id="recipe repo"
        ),
        pytest.param(
            "other_services",
            ["config-a"],
            ["flag-a", "flag-b"],
            ("flag-a", "flag-b"),
            id="repeated other services replace the configured list",
        ),
        pytest.param(
            "other_repos",
            ["config/cache"],
            ["flag/cache"],
            ("flag/cache",),
            id="repeated other repos replace the configured list",
        ),
        pytest.param(
            "docker",
            "podman",
            "/opt/docker --debug",
            ("/opt/docker", "--debug"),
            id="docker command",
        ),
        pytest.param(
            "compose",
            "docker-compose",
            "docker compose",
            ("docker", "compose"),
            id="compose command",
        ),
        pytest.param("builder", "classic", "buildkit", "buildkit", id="builder"),
    ],
)
def test_a_flag_beats_config(key, config_value, flag_value, expected):
    settings = resolve({key: config_value}, **{key: flag_value})

    assert getattr(settings, key) == expected


@pytest.mark.parametrize(
    "key, config_value, expected",
    [
        pytest.param("service", "from-config", "from-config", id="service"),
        pytest.param("cache_repo", "reg.example/config", "reg.example/config", id="cache repo"),
        pytest.param("cache_version", "v1", "v1", id="cache version"),
        pytest.param("other_services", ["a", "b"], ("a", "b"), id="other services"),
        pytest.param("other_repos", ["config/cache"], ("config/cache",), id="other repos"),
        pytest.param(
            "docker", ["podman", "--remote"], ("podman", "--remote"), id="docker command as a list"
        ),
        pytest.param("keep", True, True, id="keep"),
        pytest.param("quiet", True, True, id="quiet"),
        pytest.param("verbose", "yes", True, id="verbose from a yes"),
        pytest.param("builder", "classic", "classic", id="builder"),
    ],
)
def test_config_beats_the_default_when_no_flag_is_given(key, config_value, expected):
    settings = resolve({key: config_value})

    assert getattr(settings, key) == expected


def test_repeatable_flags_given_as_empty_lists_leave_the_configured_lists():
    settings = resolve(
        {
            "compose_files": ["base.yml", "ci.yml"],
            "other_services": ["test"],
            "other_repos": ["team/other"],
        },
    )

    assert settings.other_services == ("test",)
    assert settings.other_repos == ("team/other",)
    assert [os.path.basename(f) for f in settings.compose_files] == [
        "base.yml",
        "ci.yml",
    ]


def test_a_repeated_compose_file_flag_replaces_the_configured_files(in_project):
    settings = resolve({"compose_files": ["base.yml"]}, compose_files=["a.yml", "b.yml"])

    assert settings.compose_files == (
        str(in_project / "a.yml"),
        str(in_project / "b.yml"),
    )


def test_the_keep_flag_switches_keep_on_but_an_absent_flag_leaves_config_on():
    assert resolve({"keep": False}, keep=True).keep is True
    assert resolve({"keep": True}, keep=False).keep is True


def test_a_config_value_of_none_counts_as_not_configured():
    settings = resolve({"service": None, "docker": None, "compose_files": None})

    assert settings.service is None
    assert settings.docker == ("docker",)
    assert settings.compose_files == ()


# -- strings from the environment ---------------------------------------------------


def test_compose_files_from_one_string_are_split_on_the_path_separator(in_project):
    settings = resolve({"compose_files": os.pathsep.join(["base.yml", "sub/ci.yml"])})

    assert settings.compose_files == (
        str(in_project / "base.yml"),
        str(in_project / "sub" / "ci.yml"),
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("test", ("test",), id="one name"),
        pytest.param("test,docs", ("test", "docs"), id="names split on a comma"),
        pytest.param("test docs", ("test", "docs"), id="names split on a space"),
        pytest.param(" test ,  docs\tlint ", ("test", "docs", "lint"), id="mixed"),
        pytest.param("", (), id="an empty string is no names"),
    ],
)
def test_other_services_from_one_string_are_split_on_commas_and_white_space(text, expected):
    assert resolve({"other_services": text}).other_services == expected


def test_other_repos_from_one_string_keep_registry_ports_and_tags():
    settings = resolve({"other_repos": "127.0.0.1:5000/team/cache:main, team/other"})

    assert settings.other_repos == ("127.0.0.1:5000/team/cache:main", "team/other")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
        ("False", False),
    ],
    ids=lambda value: repr(value),
)
def test_keep_from_a_string_reads_like_a_yes_or_no(text, expected):
    assert resolve({"keep": text}).keep is expected


def test_docker_and_compose_commands_from_strings_are_split_like_a_shell():
    settings = resolve({"docker": "sudo docker", "compose": "'/opt/my compose/bin' -p x"})

    assert settings.docker == ("sudo", "docker")
    assert settings.compose == ("/opt/my compose/bin", "-p", "x")


# -- paths --------------------------------------------------------------------------


def test_the_project_directory_defaults_to_the_first_compose_files_directory(
    in_project,
):
    settings = resolve(compose_files=["deploy/compose.yml", "other/ci.yml"])

    assert settings.project_dir == str(in_project / "deploy")


def test_a_configured_project_directory_wins_over_the_compose_files_directory(
    in_project,
):
    settings = resolve({"project_dir": "src"}, compose_files=["deploy/compose.yml"])

    assert settings.project_dir == str(in_project / "src")


def test_recipe_compose_and_workdir_are_made_absolute(in_project):
    settings = resolve(recipe_compose="recipes/compose.yml", workdir="work")

    assert settings.recipe_compose == str(in_project / "recipes" / "compose.yml")
    assert settings.workdir == str(in_project / "work")


# -- mistakes -----------------------------------------------------------------------


def test_an_unknown_config_key_is_an_error_naming_it_and_the_known_keys():
    with pytest.raises(ConfigError) as error:
        resolve({"servce": "app", "cache-repo": "x", "service": "app"})

    assert str(error.value) == (
        "unknown ci_load config key(s): cache-repo, servce; known keys are " + ", ".join(KEYS)
    )


def test_an_unknown_flag_is_a_programming_error():
    with pytest.raises(KeyError):
        Settings.resolve({}, {"servce": "app"})


@pytest.mark.parametrize("value", ["", " ", os.pathsep, []], ids=repr)
def test_no_compose_file_named_leaves_the_choice_to_compose_in_this_directory(value, in_project):
    settings = resolve({"compose_files": value})

    assert settings.compose_files == ()
    assert settings.project_dir == str(in_project)


def test_env_files_are_absolute_and_repeatable(in_project):
    settings = resolve(env_files=["ci.env", "/etc/x.env"])

    assert settings.env_files == (str(in_project / "ci.env"), "/etc/x.env")


@pytest.mark.parametrize("key", ["docker", "compose"])
def test_an_empty_command_is_an_error_naming_the_setting(key):
    with pytest.raises(ConfigError) as error:
        resolve({key: "  "})

    assert str(error.value) == (f"ci_load.{key} is empty: set it to the {key} command to run")


def test_settings_are_frozen():
    settings = resolve()

    with pytest.raises(AttributeError):
        settings.service = "other"


@pytest.mark.parametrize(
    "key, value, message",
    [
        pytest.param(
            "compose_files",
            5,
            "ci_load.compose_files must be a string or a list of strings, not 5",
            id="compose files as a number",
        ),
        pytest.param(
            "docker",
            7,
            "ci_load.docker must be a string or a list of strings, not 7",
            id="docker as a number",
        ),
        pytest.param(
            "cache_repo",
            5000,
            "ci_load.cache_repo must be a string, not 5000",
            id="cache repo as a number",
        ),
        pytest.param(
            "service",
            5,
            "ci_load.service must be a string or a list of strings, not 5",
            id="service as a number",
        ),
        pytest.param(
            "all", "maybe", "ci_load.all must be true or false, not 'maybe'", id="all as a word"
        ),
        pytest.param(
            "keep",
            "maybe",
            "ci_load.keep must be true or false, not 'maybe'",
            id="keep as a word that is not yes or no",
        ),
        pytest.param(
            "builder", 1, "ci_load.builder must be a string, not 1", id="builder as a number"
        ),
    ],
)
def test_a_config_value_of_the_wrong_type_is_an_error_naming_its_key(key, value, message):
    with pytest.raises(ConfigError) as error:
        resolve({key: value})

    assert str(error.value) == message


@pytest.mark.parametrize("where", ["config", "flag"])
def test_a_builder_that_is_not_auto_classic_or_buildkit_is_an_error(where):
    with pytest.raises(ConfigError) as error:
        if where == "config":
            resolve({"builder": "fast"})
        else:
            resolve(builder="fast")

    assert str(error.value) == (
        "ci_load.builder 'fast' is not one of auto, classic, buildkit: set --builder "
        "or ci_load.builder to one of them"
    )


@pytest.mark.parametrize("value", ["BuildKit", " classic ", "AUTO"])
def test_a_builder_name_is_read_in_any_case_and_without_surrounding_blanks(value):
    assert resolve({"builder": value}).builder == value.strip().lower()


# -- the compose command ------------------------------------------------------------


@pytest.mark.parametrize(
    "docker, compose",
    [
        pytest.param("/x/docker", ("/x/docker", "compose"), id="a docker path"),
        pytest.param(
            "sudo docker", ("sudo", "docker", "compose"), id="a docker command with arguments"
        ),
    ],
)
def test_the_compose_command_defaults_to_the_docker_commands_plugin(docker, compose):
    assert resolve(docker=docker).compose == compose


def test_a_compose_command_given_beats_the_docker_commands_plugin():
    assert resolve(docker="/x/docker", compose="docker-compose").compose == ("docker-compose",)


# -- main services: --service (repeatable) and --all --------------------------------


@pytest.mark.parametrize(
    "config, flags, services",
    [
        pytest.param({"service": "app"}, {}, ("app",), id="one name in config"),
        pytest.param({"service": "app, worker web"}, {}, ("app", "worker", "web"), id="a string"),
        pytest.param({"service": ["app", "web"]}, {}, ("app", "web"), id="a YAML list"),
        pytest.param({"service": "app"}, {"service": ["web", "app"]}, ("web", "app"), id="flags"),
    ],
)
def test_main_services_come_from_one_name_a_list_or_a_separated_string(config, flags, services):
    settings = resolve(config, **flags)

    assert (settings.services, settings.service, settings.all) == (services, services[0], False)


def test_all_takes_no_service_names():
    settings = resolve({}, all=True)

    assert (settings.services, settings.service, settings.all) == ((), None, True)


@pytest.mark.parametrize(
    "config, flags, expected",
    [
        pytest.param(
            {"service": "app"}, {"all": True}, ((), True), id="--all beats a service in config"
        ),
        pytest.param(
            {"all": "true"},
            {"service": ["app"]},
            (("app",), False),
            id="--service beats all in config",
        ),
    ],
)
def test_a_flag_for_all_or_service_beats_the_other_in_config(config, flags, expected):
    settings = resolve(config, **flags)

    assert (settings.services, settings.all) == expected


@pytest.mark.parametrize(
    "config, flags, where",
    [
        pytest.param({}, {"all": True, "service": ["app"]}, "flags", id="both flags"),
        pytest.param({"all": True, "service": "app"}, {}, "ci_load config", id="both in config"),
    ],
)
def test_all_and_service_at_the_same_level_are_an_error(config, flags, where):
    with pytest.raises(ConfigError) as error:
        resolve(config, **flags)

    assert str(error.value) == (
        f"--all and --service are both given ({where}): --all takes every service with "
        "a build section, --service names them; give one of them"
    )


@pytest.mark.parametrize(
    "config, flags",
    [
        pytest.param({}, {"quiet": True, "verbose": True}, id="both flags"),
        pytest.param({"quiet": "true"}, {"verbose": True}, id="quiet config and verbose flag"),
        pytest.param({"quiet": True, "verbose": "1"}, {}, id="both in config"),
    ],
)
def test_quiet_and_verbose_at_once_is_an_error_saying_to_choose_one(config, flags):
    with pytest.raises(ConfigError) as error:
        resolve(config, **flags)

    assert "quiet and verbose are both on" in str(error.value)
    assert str(error.value).endswith("choose one")


def test_quiet_from_config_and_verbose_off_in_config_is_quiet():
    settings = resolve({"quiet": "yes", "verbose": "false"})

    assert (settings.quiet, settings.verbose) == (True, False)
