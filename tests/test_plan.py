"""``plan.make_plan``: every cache image, generated file and command of a run.

The inputs are the sample project's rendered compose config and Dockerfile
(tests/data/unit/); the generated files are checked by the real Compose v2.
The shop project's final image needs every stage; the layers project has
stages that only some services need (which stages are built is tested there).
Without a builder, ``make_plan`` plans for the classic builder; the BuildKit
plans are made with ``builder.choose`` for a docker client that can drive it.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from ci_load_tasks.builder import DockerFacts, choose
from ci_load_tasks.errors import ConfigError
from ci_load_tasks.plan import (
    GENERATED_MARK,
    Build,
    Tag,
    make_plan,
    make_plans,
    plans_as_json,
    push_services,
    run_commands,
)
from ci_load_tasks.settings import Settings

DATA = Path(__file__).resolve().parent / "data" / "unit"
RENDERED = DATA / "rendered"
SHOP_DOCKERFILE = (DATA / "compose" / "shop" / "docker" / "shop.Dockerfile").read_text()
LAYERS_DOCKERFILE = (DATA / "compose" / "layers" / "Dockerfile").read_text()
RECIPE_COMPOSE = DATA / "compose" / "recipes" / "docker-compose.yml"

R = "127.0.0.1:5000/team/cache"
DOCKERFILE = "/srv/shop/docker/shop.Dockerfile"
CONTEXT = "/srv/shop"
WORKDIR = "/tmp/ci-load-work"
ARGS = ("--build-arg", "BASE_IMAGE=busybox:1.36", "--build-arg", "GREETING=costs $5")
# The cache images of the main service alone, in the order of --cache-from.
CACHE_FROM = (
    "example/shop:1.0",
    f"{R}:shop_final",
    f"{R}:shop_stage_base",
    f"{R}:shop_stage_hello",
    f"{R}:shop_stage_deps",
    f"{R}:shop_stage_assets",
    f"{R}:shop_stage_build",
    f"{R}:shop_recipe_hello",
    "cilocal/recipe:hello",
)
STAGES = ("base", "hello", "deps", "assets", "build")
# The classic builder builds every stage in front of its target: these stages
# have one they do not need in front of them, so each is built from a copy of
# the Dockerfile without it (the final image needs every stage).
PRUNED = {s: f"{WORKDIR}/shop.pruned-{s}.Dockerfile" for s in ("hello", "deps", "assets", "build")}


def rendered(name):
    return yaml.safe_load((RENDERED / name).read_text())


def settings(**flags):
    flags = {
        "compose_files": ["/srv/shop/docker-compose.yml"],
        "service": "shop",
        **flags,
    }
    return Settings.resolve({}, flags)


def shop_plan(dockerfile=SHOP_DOCKERFILE, config="shop.yml", workdir=WORKDIR, **flags):
    flags = {
        "cache_repo": R,
        "recipe_repo": "cilocal/recipe",
        "recipe_compose": "/srv/recipes/docker-compose.yml",
        **flags,
    }
    return make_plan(
        settings(**flags), rendered(config), dockerfile, str(workdir), rendered("recipes.yml")
    )


def cache_from(images):
    return tuple(arg for image in images for arg in ("--cache-from", image))


def stage_build(stage, images=CACHE_FROM):
    return (
        "docker",
        "build",
        "-f",
        PRUNED.get(stage, DOCKERFILE),
        "--force-rm",
        "--target",
        stage,
        *ARGS,
        *cache_from(images),
        "-t",
        f"{R}:shop_stage_{stage}",
        CONTEXT,
    )


# -- the builds -----------------------------------------------------------------


def test_each_needed_stage_is_built_in_file_order_then_the_service():
    plan = shop_plan()

    assert plan.stages == STAGES
    assert plan.builds == (
        Build("base", "shop_stage_base", (f"{R}:shop_stage_base",), stage_build("base")),
        Build("hello", "shop_stage_hello", (f"{R}:shop_stage_hello",), stage_build("hello")),
        Build("deps", "shop_stage_deps", (f"{R}:shop_stage_deps",), stage_build("deps")),
        Build("assets", "shop_stage_assets", (f"{R}:shop_stage_assets",), stage_build("assets")),
        Build("build", "shop_stage_build", (f"{R}:shop_stage_build",), stage_build("build")),
        Build(
            "shop",
            "shop",
            ("example/shop:1.0", f"{R}:shop_final"),
            (
                "docker",
                "build",
                "-f",
                DOCKERFILE,
                "--force-rm",
                *ARGS,
                *cache_from(CACHE_FROM),
                "-t",
                "example/shop:1.0",
                "-t",
                f"{R}:shop_final",
                CONTEXT,
            ),
        ),
    )


def test_a_stage_build_is_exactly_the_docker_build_of_that_target():
    assert shop_plan().builds[0].argv == (
        "docker",
        "build",
        "-f",
        "/srv/shop/docker/shop.Dockerfile",
        "--force-rm",
        "--target",
        "base",
        "--build-arg",
        "BASE_IMAGE=busybox:1.36",
        "--build-arg",
        "GREETING=costs $5",
        "--cache-from",
        "example/shop:1.0",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_final",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_stage_base",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_stage_hello",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_stage_deps",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_stage_assets",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_stage_build",
        "--cache-from",
        "127.0.0.1:5000/team/cache:shop_recipe_hello",
        "--cache-from",
        "cilocal/recipe:hello",
        "-t",
        "127.0.0.1:5000/team/cache:shop_stage_base",
        "/srv/shop",
    )


def test_the_docker_command_setting_starts_every_docker_command():
    plan = shop_plan(docker="sudo /opt/docker")

    docker_commands = [b.argv for b in (*plan.recipe_builds, *plan.builds)]
    assert {argv[:2] for argv in docker_commands} == {("sudo", "/opt/docker")}
    assert plan.list_images[:2] == ("sudo", "/opt/docker")


def test_the_plan_names_what_it_read():
    plan = shop_plan()

    assert (plan.service, plan.compose_files, plan.project_dir) == (
        "shop",
        ("/srv/shop/docker-compose.yml",),
        "/srv/shop",
    )
    assert (plan.dockerfile, plan.context, plan.target) == (DOCKERFILE, CONTEXT, None)
    assert plan.stages_found == ("base", "hello", "deps", "assets", "build", "#5")
    assert (plan.builder, plan.builder_reason) == (
        "classic",
        "asked for with --builder classic",
    )
    assert plan.buildkit_only == ("line 21: RUN --mount",)
    assert plan.warnings == (
        "/srv/shop/docker/shop.Dockerfile uses syntax only BuildKit builds (line 21: "
        "RUN --mount) and the builder is classic (asked for with --builder classic), "
        "so building it will stop; use --builder buildkit",
    )


def layers_plan(service="app", other_services=()):
    return make_plan(
        settings(
            compose_files=["/srv/layers/docker-compose.yml"],
            service=service,
            cache_repo=R,
            other_services=list(other_services),
        ),
        rendered("layers.yml"),
        LAYERS_DOCKERFILE,
        WORKDIR,
    )


@pytest.mark.parametrize(
    "other_services, stages, skipped",
    [
        pytest.param([], ("base", "build"), ("test", "docs"), id="for the final image alone"),
        pytest.param(
            ["app-test"], ("base", "build", "test"), ("docs",), id="with the test service"
        ),
        pytest.param(
            ["app-docs"], ("base", "build", "docs"), ("test",), id="with the docs service"
        ),
    ],
)
def test_only_the_stages_the_targets_need_are_built_and_cached(other_services, stages, skipped):
    plan = layers_plan(other_services=other_services)

    assert plan.stages == stages
    assert plan.skipped_stages == skipped
    assert [b.name for b in plan.builds] == [*stages, "app"]
    assert list(plan.cache_images.stages) == list(stages)


def test_a_stage_after_the_last_target_is_neither_built_nor_cached():
    plan = layers_plan(service="app-test")

    assert plan.stages == ("base", "build", "test")
    assert [b.name for b in plan.builds] == ["base", "build", "app-test"]
    assert "docs" not in plan.cache_images.stages


def test_a_service_of_the_final_image_adds_no_stage():
    plan = shop_plan(other_services=["shop-latest"])

    assert plan.stages == STAGES


def test_other_services_are_tagged_from_their_target_stage_or_the_final_image():
    plan = shop_plan(other_services=["shop-build", "shop-latest"])

    assert plan.tags == (
        Tag(
            f"{R}:shop_stage_build",
            "example/shop-build:1.0",
            ("docker", "tag", f"{R}:shop_stage_build", "example/shop-build:1.0"),
        ),
        Tag(
            f"{R}:shop_final",
            "example/shop:latest",
            ("docker", "tag", f"{R}:shop_final", "example/shop:latest"),
        ),
    )


def test_a_service_needing_a_stage_the_final_image_does_not_is_tagged_from_it():
    plan = layers_plan(other_services=["app-test"])

    assert [t.argv for t in plan.tags] == [
        ("docker", "tag", f"{R}:app_stage_test", "example/app-test:1.0"),
    ]


def test_other_services_images_are_cache_for_every_build():
    plan = shop_plan(other_services=["shop-build", "shop-latest"])

    expected = (
        "example/shop:1.0",
        "example/shop-build:1.0",
        "example/shop:latest",
        *CACHE_FROM[1:],
    )
    assert plan.cache_from == expected
    assert plan.builds[4].argv == stage_build("build", expected)
    assert all(b.argv.count("--cache-from") == len(expected) for b in plan.builds)


def test_another_service_building_another_dockerfile_is_an_error():
    with pytest.raises(ConfigError) as error:
        shop_plan(other_services=["worker"])

    assert str(error.value) == (
        "other service 'worker' does not build like the main service 'shop' "
        "(Dockerfile, context, build args or network differ), so no image ci-load "
        "builds is its image; leave it out of --other-service or make its build the "
        "same but for target"
    )


def test_an_undefined_other_service_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"^other service 'tset' is not defined in "):
        shop_plan(other_services=["tset"])


def test_a_target_that_is_not_a_stage_is_an_error_naming_the_named_stages():
    with pytest.raises(ConfigError) as error:
        make_plan(settings(service="extra"), rendered("edge.yml"), SHOP_DOCKERFILE, WORKDIR)

    assert str(error.value) == (
        "service 'extra': target 'runtime' is not a stage of "
        "/srv/edge/extra/extra.Dockerfile (named stages: base, hello, deps, assets, "
        "build)"
    )


def test_a_plan_without_a_service_is_an_error():
    with pytest.raises(ConfigError) as error:
        make_plan(settings(service=None), rendered("shop.yml"), SHOP_DOCKERFILE, WORKDIR)

    assert str(error.value) == (
        "no main service: pass --service NAME (repeatable) or --all, or set ci_load.service"
    )


def test_a_compose_service_named_like_a_generated_one_stays_out_of_the_stages_file():
    plan = shop_plan(config="shop_collide.yml")

    stages_file = yaml.safe_load(plan.files["stages.yml"])
    assert stages_file["services"]["shop_stage_deps"]["image"] == f"{R}:shop_stage_deps"


def test_an_other_service_named_like_a_generated_stage_service_is_an_error():
    config = rendered("shop.yml")
    config["services"]["shop_stage_deps"] = dict(
        config["services"]["shop"], image="example/shop-deps:1.0"
    )

    with pytest.raises(ConfigError) as error:
        make_plan(
            settings(
                cache_repo=R,
                recipe_repo="cilocal/recipe",
                recipe_compose="/srv/recipes/docker-compose.yml",
                other_services=["shop_stage_deps"],
            ),
            config,
            SHOP_DOCKERFILE,
            WORKDIR,
            rendered("recipes.yml"),
        )

    assert str(error.value) == (
        "other service 'shop_stage_deps' has the name ci-load gives the build of "
        "stage 'deps' in its generated stages file; rename that service"
    )


def layers_with_a_named_last_stage():
    named = LAYERS_DOCKERFILE.replace(
        "FROM busybox:1.36\nCOPY", "FROM busybox:1.36 AS runtime\nCOPY"
    )
    assert named != LAYERS_DOCKERFILE
    return named


def test_an_other_service_without_target_builds_the_named_last_stage_tagged_from_it():
    plan = make_plan(
        settings(
            compose_files=["/srv/layers/docker-compose.yml"],
            service="app-test",
            cache_repo=R,
            other_services=["app"],
        ),
        rendered("layers.yml"),
        layers_with_a_named_last_stage(),
        WORKDIR,
    )

    assert plan.stages == ("base", "build", "test", "runtime")
    assert plan.skipped_stages == ("docs",)
    assert [(b.name, b.images) for b in plan.builds] == [
        ("base", (f"{R}:app-test_stage_base",)),
        ("build", (f"{R}:app-test_stage_build",)),
        ("runtime", (f"{R}:app-test_stage_runtime",)),
        ("app-test", ("example/app-test:1.0", f"{R}:app-test_final", f"{R}:app-test_stage_test")),
    ]
    assert plan.builds[2].argv[2:7] == (
        "-f",
        f"{WORKDIR}/app-test.pruned-runtime.Dockerfile",
        "--force-rm",
        "--target",
        "runtime",
    )
    assert plan.tags == (
        Tag(
            f"{R}:app-test_stage_runtime",
            "example/app:1.0",
            ("docker", "tag", f"{R}:app-test_stage_runtime", "example/app:1.0"),
        ),
    )


def test_an_other_service_without_target_is_an_error_when_the_last_stage_has_no_name():
    with pytest.raises(ConfigError) as error:
        layers_plan(service="app-test", other_services=["app"])

    assert str(error.value) == (
        "other service 'app' builds the last stage of /srv/layers/Dockerfile, which "
        "has no name and is not what 'app-test' builds; name that stage (FROM … AS "
        "NAME) so ci-load can build and cache it"
    )


@pytest.mark.parametrize(
    "key, value",
    [
        pytest.param("args", {"BASE_IMAGE": "busybox:1.36", "GREETING": "free"}, id="a build arg"),
        pytest.param("dockerfile", "docker/other.Dockerfile", id="the Dockerfile"),
        pytest.param("context", "/srv/shop/docker", id="the context"),
        pytest.param("network", "host", id="the network"),
    ],
)
def test_an_other_service_whose_build_differs_from_the_main_services_is_an_error(key, value):
    config = rendered("shop.yml")
    config["services"]["shop-build"]["build"][key] = value

    with pytest.raises(ConfigError) as error:
        make_plan(
            settings(cache_repo=R, other_services=["shop-build"]), config, SHOP_DOCKERFILE, WORKDIR
        )

    assert str(error.value) == (
        "other service 'shop-build' does not build like the main service 'shop' "
        "(Dockerfile, context, build args or network differ), so no image ci-load "
        "builds is its image; leave it out of --other-service or make its build the "
        "same but for target"
    )


def test_a_target_that_is_a_number_is_not_the_stage_of_that_index():
    config = rendered("shop.yml")
    config["services"]["shop"]["build"]["target"] = "0"

    with pytest.raises(ConfigError) as error:
        make_plan(settings(), config, SHOP_DOCKERFILE, WORKDIR)

    assert str(error.value) == (
        "service 'shop': target '0' is not a stage of /srv/shop/docker/shop.Dockerfile "
        "(named stages: base, hello, deps, assets, build)"
    )


@pytest.mark.parametrize(
    "other_services, tags, tagged_services",
    [
        pytest.param(
            ["shop-build", "shop-build"],
            [(f"{R}:shop_stage_build", "example/shop-build:1.0")],
            ["shop-build"],
            id="another service named twice",
        ),
    ],
)
def test_other_services_named_twice_are_tagged_once(other_services, tags, tagged_services):
    plan = shop_plan(other_services=other_services)

    assert [(t.source, t.target) for t in plan.tags] == tags
    assert [b.name for b in plan.builds] == [*STAGES, "shop"]
    # Read the text, not the YAML: a YAML reader keeps one of two equal keys.
    service_lines = re.findall(r"(?m)^  (\S+):$", plan.files["stages.yml"])
    assert service_lines == [
        *(f"shop_stage_{s}" for s in STAGES),
        "shop",
        *tagged_services,
    ]


def test_a_main_service_without_an_image_is_tagged_with_composes_default_name():
    plan = make_plan(
        settings(service="short"), rendered("edge.yml"), "FROM busybox:1.36\n", WORKDIR
    )

    assert plan.builds[-1].images == ("edge-short", "ci-load-local/edge:short_final")


# -- build keys and warnings ----------------------------------------------------


def test_the_services_own_target_cache_from_and_network_reach_docker_build():
    extra = (DATA / "compose" / "edge" / "extra" / "extra.Dockerfile").read_text()

    plan = make_plan(
        settings(service="extra", cache_repo="cache"), rendered("edge.yml"), extra, WORKDIR
    )

    images = (
        "example/extra:cache",
        "example/extra:1.0",
        "cache:extra_final",
        "cache:extra_stage_base",
        "cache:extra_stage_runtime",
    )
    common = (
        "--build-arg",
        "DOLLARS=$HOME and ${USER}",
        "--build-arg",
        "EMPTY=",
        "--build-arg",
        "PLAIN=1",
        *cache_from(images),
        "--network",
        "host",
    )
    dockerfile = "/srv/edge/extra/extra.Dockerfile"
    assert [b.argv for b in plan.builds] == [
        (
            "docker",
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            "--target",
            "base",
            *common,
            "-t",
            "cache:extra_stage_base",
            "/srv/edge/extra",
        ),
        # The service's target stage is built once, by the service's build,
        # which also gives it its stage cache name.
        (
            "docker",
            "build",
            "-f",
            dockerfile,
            "--force-rm",
            "--target",
            "runtime",
            *common,
            "-t",
            "example/extra:1.0",
            "-t",
            "cache:extra_final",
            "-t",
            "cache:extra_stage_runtime",
            "/srv/edge/extra",
        ),
    ]
    assert plan.warnings == (
        (
            "service 'extra': build key(s) labels, shm_size are not passed on to "
            "docker build by ci-load"
        ),
    )


def test_a_build_arg_without_a_value_is_passed_by_name_only():
    config = rendered("legacy_forms.yml")

    plan = make_plan(settings(service="listed"), config, "FROM busybox:1.36\n", WORKDIR)

    assert plan.builds[-1].argv[5:13] == (
        "--build-arg",
        "PLAIN=1",
        "--build-arg",
        "FROM_ENV",
        "--build-arg",
        "EQUATION=a=b",
        "--build-arg",
        "PRICE=costs $5",
    )


def test_a_needed_stage_without_a_name_is_warned_about_and_not_built_alone():
    dockerfile = (DATA / "dockerfiles" / "unnamed_needed.Dockerfile").read_text()

    plan = shop_plan(dockerfile=dockerfile)

    assert plan.stages == ("named",)
    assert [b.name for b in plan.builds] == ["named", "shop"]
    assert plan.warnings == (
        (
            "/srv/shop/docker/shop.Dockerfile:2: stage #0 has no name, so it cannot "
            "be cached as its own image; name it with FROM … AS NAME"
        ),
    )


# -- cache names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, final, first_stage",
    [
        pytest.param({}, f"{R}:shop_final", f"{R}:shop_stage_base", id="a repository"),
        pytest.param(
            {"cache_version": "v2"},
            f"{R}:v2_shop_final",
            f"{R}:v2_shop_stage_base",
            id="a cache version",
        ),
        pytest.param(
            {"cache_repo": f"{R}:pr-17"},
            f"{R}:pr-17_final",
            f"{R}:pr-17_stage_base",
            id="a tag prefix",
        ),
        pytest.param(
            {"cache_repo": None},
            "ci-load-local/shop:shop_final",
            "ci-load-local/shop:shop_stage_base",
            id="no cache repository names images after the compose project",
        ),
    ],
)
def test_cache_images_follow_the_cache_settings(flags, final, first_stage):
    plan = shop_plan(**flags)

    assert plan.cache_images.final == final
    assert plan.cache_images.stages["base"] == first_stage
    assert plan.builds[0].images == (first_stage,)
    assert plan.builds[-1].images == ("example/shop:1.0", final)


def test_without_a_cache_repository_the_plan_has_none():
    assert shop_plan(cache_repo=None).cache_repo is None
    assert shop_plan().cache_repo == R


def test_other_cache_locations_are_pulled_and_read_but_never_pushed():
    other = "registry.example.com/shop/cache:main"

    plan = shop_plan(other_repos=[other])

    other_images = [
        "registry.example.com/shop/cache:main_final",
        "registry.example.com/shop/cache:main_stage_base",
        "registry.example.com/shop/cache:main_stage_hello",
        "registry.example.com/shop/cache:main_stage_deps",
        "registry.example.com/shop/cache:main_stage_assets",
        "registry.example.com/shop/cache:main_stage_build",
        "registry.example.com/shop/cache:main_recipe_hello",
    ]
    assert [o.all() for o in plan.other_cache_images] == [other_images]
    assert plan.cache_from == (*CACHE_FROM, *other_images)
    pull_images = [
        s["image"] for s in yaml.safe_load(plan.files["push_pull.yml"])["services"].values()
    ]
    assert pull_images == [*plan.cache_images.all(), *other_images]
    assert plan.pushed == tuple(plan.cache_images.all())
    assert not any(name.startswith("other") for name in plan.push)


def test_a_cache_repo_with_a_tag_prefix_and_a_cache_version_is_an_error():
    with pytest.raises(ConfigError) as error:
        shop_plan(cache_repo=f"{R}:pr-17", cache_version="v2")

    assert str(error.value) == (
        f"cache repo '{R}:pr-17' has a tag prefix, which replaces the cache version "
        "'v2'; put the version into the prefix or drop one of them"
    )


def test_another_repo_with_a_tag_prefix_goes_with_a_cache_version():
    plan = shop_plan(cache_version="v2", other_repos=["team/other:main"])

    assert plan.cache_images.final == f"{R}:v2_shop_final"
    assert [o.final for o in plan.other_cache_images] == ["team/other:main_final"]


# -- recipes --------------------------------------------------------------------


def test_a_recipe_image_a_stage_builds_on_is_rebuilt_from_its_recipe_service():
    plan = shop_plan()

    assert plan.recipes == ("hello",)
    assert plan.cache_images.recipes == {"hello": f"{R}:shop_recipe_hello"}
    assert plan.recipe_builds == (
        Build(
            "hello",
            "hello",
            ("cilocal/recipe:hello", f"{R}:shop_recipe_hello"),
            (
                "docker",
                "build",
                "-f",
                "/srv/recipes/hello.Dockerfile",
                "--force-rm",
                "--cache-from",
                f"{R}:shop_recipe_hello",
                "--cache-from",
                "cilocal/recipe:hello",
                "-t",
                "cilocal/recipe:hello",
                "-t",
                f"{R}:shop_recipe_hello",
                "/srv/recipes",
            ),
        ),
    )


def test_a_recipe_image_takes_cache_from_every_cache_location():
    plan = shop_plan(other_repos=["team/other"])

    argv = plan.recipe_builds[0].argv
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--cache-from"] == [
        f"{R}:shop_recipe_hello",
        "team/other:shop_recipe_hello",
        "cilocal/recipe:hello",
    ]


def test_without_a_recipe_repository_a_recipe_image_is_an_ordinary_base():
    plan = shop_plan(recipe_repo=None, recipe_compose=None)

    assert (plan.recipes, plan.recipe_builds) == ((), ())
    assert "recipes.yml" not in plan.files
    assert plan.stages == STAGES
    recipe_images = (f"{R}:shop_recipe_hello", "cilocal/recipe:hello")
    assert plan.cache_from == tuple(i for i in CACHE_FROM if i not in recipe_images)


def test_a_recipe_without_a_recipe_compose_file_is_an_error():
    with pytest.raises(ConfigError) as error:
        shop_plan(recipe_compose=None)

    assert str(error.value) == (
        "the Dockerfile builds on recipe image(s) hello of cilocal/recipe: set "
        "--recipe-compose to the compose file that builds them"
    )


def test_a_recipe_missing_from_the_recipe_compose_file_is_an_error_naming_both():
    with pytest.raises(ConfigError) as error:
        make_plan(
            settings(
                cache_repo=R,
                recipe_repo="cilocal/recipe",
                recipe_compose="/srv/recipes/no-hello.yml",
            ),
            rendered("shop.yml"),
            SHOP_DOCKERFILE,
            WORKDIR,
            rendered("recipes_no_hello.yml"),
        )

    assert str(error.value) == (
        "recipe compose file /srv/recipes/no-hello.yml has no service for recipe(s) "
        "hello; add a service named after each recipe tag"
    )


@pytest.mark.parametrize(
    "recipe_repo, message",
    [
        pytest.param(
            "cilocal/recipe:v1",
            "recipe repo 'cilocal/recipe:v1' has a tag; give the repository only "
            "(cilocal/recipe): recipe images are REPO:NAME",
            id="a tag",
        ),
        pytest.param(
            "CiLocal/recipe",
            "recipe repo 'CiLocal/recipe': 'CiLocal' is not a valid repository path "
            "component (repository names must be lower case); use lower-case letters, "
            "digits and single '.', '_' or '-' between them",
            id="upper case",
        ),
    ],
)
def test_a_recipe_repo_that_is_not_a_plain_repository_is_an_error(recipe_repo, message):
    with pytest.raises(ConfigError) as error:
        shop_plan(recipe_repo=recipe_repo)

    assert str(error.value) == message


def test_a_recipe_compose_file_without_a_recipe_repo_is_an_error():
    with pytest.raises(ConfigError) as error:
        shop_plan(recipe_repo=None)

    assert str(error.value) == (
        "--recipe-compose is set but --recipe-repo is not: name the repository of "
        "the recipe images (their FROM lines read RECIPE_REPO:NAME)"
    )


# -- pull, push and the order of a whole run ------------------------------------


def test_pull_and_push_use_the_generated_file_in_the_work_directory():
    plan = shop_plan()

    compose = (
        "docker",
        "compose",
        "-f",
        f"{WORKDIR}/push_pull.yml",
        "--project-directory",
        WORKDIR,
    )
    assert plan.pull == (*compose, "pull", "--ignore-pull-failures")
    # The services to push are added to it: only the images the registry lacks.
    assert plan.push == (*compose, "push")
    assert push_services(plan, plan.pushed) == (
        *compose,
        "push",
        "cache_final",
        "cache_stage_base",
        "cache_stage_hello",
        "cache_stage_deps",
        "cache_stage_assets",
        "cache_stage_build",
        "cache_recipe_hello",
    )
    assert push_services(plan, [f"{R}:shop_recipe_hello", f"{R}:shop_final"]) == (
        *compose,
        "push",
        "cache_recipe_hello",
        "cache_final",
    )
    assert plan.pushed == (
        f"{R}:shop_final",
        f"{R}:shop_stage_base",
        f"{R}:shop_stage_hello",
        f"{R}:shop_stage_deps",
        f"{R}:shop_stage_assets",
        f"{R}:shop_stage_build",
        f"{R}:shop_recipe_hello",
    )
    assert plan.path("push_pull.yml") == f"{WORKDIR}/push_pull.yml"


def test_the_commands_of_a_whole_run_are_shell_lines_in_pipeline_order():
    plan = shop_plan(other_services=["shop-build"])
    env = " ".join(f"{k}={v}" for k, v in plan.build_env.items())

    assert plan.commands() == [
        shlex.join(plan.pull),
        *(f"{env} {shlex.join(b.argv)}" for b in plan.recipe_builds),
        *(f"{env} {shlex.join(b.argv)}" for b in plan.builds),
        *(shlex.join(t.argv) for t in plan.tags),
        "COMPOSE_PARALLEL_LIMIT=4 " + shlex.join(push_services(plan, plan.pushed)),
    ]
    assert len(plan.commands()) == 1 + 1 + 6 + 1 + 1  # pull, recipe, builds, tag, push
    assert plan.commands()[2].startswith(
        "DOCKER_BUILDKIT=0 docker build -f /srv/shop/docker/shop.Dockerfile "
        "--force-rm --target base --build-arg BASE_IMAGE=busybox:1.36 "
        "--build-arg 'GREETING=costs $5' "
    )


def test_the_plan_as_json_is_plain_data_with_the_cache_image_names():
    data = json.loads(json.dumps(shop_plan().as_json()))

    assert data["cache_images"] == {
        "final": f"{R}:shop_final",
        "stages": {s: f"{R}:shop_stage_{s}" for s in STAGES},
        "recipes": {"hello": f"{R}:shop_recipe_hello"},
    }
    assert data["commands"] == shop_plan().commands()
    assert data["stages"] == list(STAGES)


def test_without_a_cache_repository_the_commands_pull_and_push_nothing():
    plan = shop_plan(cache_repo=None, other_services=["shop-build"])
    env = " ".join(f"{k}={v}" for k, v in plan.build_env.items())

    assert plan.commands() == [
        *(f"{env} {shlex.join(b.argv)}" for b in (*plan.recipe_builds, *plan.builds)),
        shlex.join(
            ("docker", "tag", "ci-load-local/shop:shop_stage_build", "example/shop-build:1.0")
        ),
    ]


# -- the generated files ----------------------------------------------------------


@pytest.fixture
def compose(_shield_env, docker_config):
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config))

    def run(*files, quiet=False, cwd):
        argv = ["docker", "compose"]
        for path in files:
            argv += ["-f", str(path)]
        argv += ["config", "-q"] if quiet else ["config"]
        return subprocess.run(
            argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )

    return run


def write_files(plan):
    """Write every generated file; return the compose files among them."""
    os.makedirs(plan.workdir, exist_ok=True)
    for name, text in plan.files.items():
        Path(plan.path(name)).write_text(text)
    return [Path(plan.path(name)) for name in plan.files if name not in plan.dockerfiles]


SCENARIOS = [
    pytest.param({}, id="the main service alone"),
    pytest.param(
        {
            "other_services": ["shop-build", "shop-latest"],
            "other_repos": ["registry.example.com/shop/cache:main"],
            "cache_version": "v2",
        },
        id="other services, another location and a cache version",
    ),
    pytest.param(
        {"cache_repo": None, "recipe_repo": None, "recipe_compose": None},
        id="no cache repository and no recipes",
    ),
]


@pytest.mark.parametrize("flags", SCENARIOS)
def test_every_generated_file_is_yaml_with_services(flags, tmp_path):
    plan = shop_plan(workdir=tmp_path / "work", **flags)

    assert plan.dockerfiles == [f"shop.pruned-{s}.Dockerfile" for s in PRUNED]
    for name, text in plan.files.items():
        if name in plan.dockerfiles:
            # A Dockerfile: the mark at the end, where it hides no directive.
            assert text.endswith(f"\n{GENERATED_MARK}\n"), name
            continue
        data = yaml.safe_load(text)
        assert isinstance(data, dict) and data["services"], name


@pytest.mark.parametrize("flags", SCENARIOS)
def test_compose_v2_accepts_every_generated_file(flags, tmp_path, compose):
    plan = shop_plan(
        **{"workdir": tmp_path / "work", "recipe_compose": str(RECIPE_COMPOSE), **flags}
    )

    for path in write_files(plan):
        result = compose(path, quiet=True, cwd=tmp_path)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
    if plan.recipes:
        result = compose(RECIPE_COMPOSE, plan.path("recipes.yml"), quiet=True, cwd=tmp_path)
        assert result.returncode == 0, f"recipes.yml as an override: {result.stderr}"


def test_a_repeated_service_is_built_and_tagged_once_in_a_file_compose_accepts(tmp_path, compose):
    plan = shop_plan(workdir=tmp_path / "work", other_services=["shop-build", "shop-build"])
    write_files(plan)

    result = compose(plan.path("stages.yml"), quiet=True, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert len(plan.tags) == len(set(plan.tags))


def test_compose_reads_the_stages_file_as_one_service_per_build(tmp_path, compose):
    plan = shop_plan(workdir=tmp_path / "work", other_services=["shop-build"])
    write_files(plan)

    result = compose(plan.path("stages.yml"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    found = yaml.safe_load(result.stdout)["services"]
    expected_targets = {
        "shop_stage_base": "base",
        "shop_stage_hello": "hello",
        "shop_stage_deps": "deps",
        "shop_stage_assets": "assets",
        "shop_stage_build": "build",
        "shop": None,
        "shop-build": "build",
    }
    assert {name: s["build"].get("target") for name, s in found.items()} == (expected_targets)
    for name, service in found.items():
        assert service["build"]["context"] == CONTEXT, name
        stage = name.replace("shop_stage_", "") if name.startswith("shop_stage_") else None
        # A stage built from a copy without the stages it does not need.
        expected_dockerfile = (
            plan.path(f"shop.pruned-{stage}.Dockerfile")
            if stage in PRUNED
            else "docker/shop.Dockerfile"
        )
        assert service["build"]["dockerfile"] == expected_dockerfile, name
        assert service["build"]["cache_from"] == list(plan.cache_from), name
        # compose prints a literal dollar escaped: the value it read is "costs $5"
        assert service["build"]["args"] == {
            "BASE_IMAGE": "busybox:1.36",
            "GREETING": "costs $$5",
        }, name
    assert found["shop_stage_deps"]["image"] == f"{R}:shop_stage_deps"
    assert found["shop"]["image"] == "example/shop:1.0"
    assert found["shop-build"]["image"] == "example/shop-build:1.0"


def test_compose_reads_the_push_pull_file_as_the_cache_images(tmp_path, compose):
    workdir = tmp_path / "work $dir"
    plan = shop_plan(workdir=workdir)
    write_files(plan)

    result = compose(plan.path("push_pull.yml"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    found = yaml.safe_load(result.stdout)["services"]
    assert {name: s["image"] for name, s in found.items()} == {
        "cache_final": f"{R}:shop_final",
        "cache_stage_base": f"{R}:shop_stage_base",
        "cache_stage_hello": f"{R}:shop_stage_hello",
        "cache_stage_deps": f"{R}:shop_stage_deps",
        "cache_stage_assets": f"{R}:shop_stage_assets",
        "cache_stage_build": f"{R}:shop_stage_build",
        "cache_recipe_hello": f"{R}:shop_recipe_hello",
    }
    # compose prints a literal dollar escaped: the path it read is the work dir
    contexts = {s["build"]["context"] for s in found.values()}
    assert contexts == {str(workdir).replace("$", "$$")}


def test_compose_reads_the_recipes_file_as_cache_for_each_recipe(tmp_path, compose):
    plan = shop_plan(
        workdir=tmp_path / "work", recipe_compose=str(RECIPE_COMPOSE), other_repos=["team/other"]
    )
    write_files(plan)

    result = compose(RECIPE_COMPOSE, plan.path("recipes.yml"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    hello = yaml.safe_load(result.stdout)["services"]["hello"]
    assert hello["image"] == "cilocal/recipe:hello"
    assert hello["build"]["cache_from"] == [
        f"{R}:shop_recipe_hello",
        "team/other:shop_recipe_hello",
        "cilocal/recipe:hello",
    ]


def test_an_inline_dockerfile_is_written_to_the_work_directory_and_built_from_there():
    plan = make_plan(
        settings(service="inline", cache_repo="cache"),
        rendered("edge.yml"),
        "ignored: the plan reads compose's text\n",
        WORKDIR,
    )

    dockerfile = f"{WORKDIR}/inline.inline.Dockerfile"
    assert plan.dockerfile == dockerfile
    assert plan.dockerfiles == ["inline.inline.Dockerfile"]
    assert plan.files["inline.inline.Dockerfile"] == ("FROM busybox:1.36\n# Generated by ci-load\n")
    assert plan.builds[-1].argv[:4] == ("docker", "build", "-f", dockerfile)


def test_the_plan_names_skipped_stages_build_args_and_build_contexts():
    config = {
        "name": "p",
        "services": {
            "app": {
                "image": "p/app:1",
                "build": {
                    "context": "/srv/p",
                    "dockerfile": "Dockerfile",
                    "target": "build",
                    "args": {"A": "1"},
                    "additional_contexts": {"tools": "/srv/tools"},
                },
            }
        },
    }
    text = "FROM busybox AS base\nFROM base AS build\nFROM base AS docs\nFROM busybox\n"

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    assert plan.stages == ("base", "build")
    assert plan.skipped_stages == ("docs", "#3")
    assert plan.build_args == {"A": "1"}
    assert plan.build_contexts == {"tools": "/srv/tools"}
    assert plan.dockerfile_inline is False
    assert plan.warnings == (
        "service 'app' uses additional_contexts (tools), which only BuildKit driven by a "
        "docker client with buildx passes on (builder: classic, asked for with --builder "
        "classic), so building it will stop; install docker-buildx and use --builder buildkit",
    )
    assert plan.build_contexts_supported is False


# -- the classic builder: a copy of the Dockerfile per target -------------------


def test_a_classic_build_with_unneeded_stages_in_front_reads_a_pruned_copy():
    plan = layers_plan()

    pruned = f"{WORKDIR}/app.pruned-4.Dockerfile"  # the unnamed main stage #4
    assert plan.dockerfiles == ["app.pruned-4.Dockerfile"]
    assert plan.files["app.pruned-4.Dockerfile"] == (
        "# The classic layout: a test stage and a docs stage the final image does not\n"
        "# need, in front of it.\n"
        "FROM busybox:1.36 AS base\n"
        "\n"
        "FROM base AS build\n"
        "RUN echo built > /built\n"
        "\n"
        "FROM busybox:1.36\n"
        "COPY --from=build /built /built\n"
        f"{GENERATED_MARK}\n"
    )
    # base and build need every stage in front of them: the file as it is.
    assert [b.argv[2:4] for b in plan.builds] == [
        ("-f", "/srv/layers/Dockerfile"),
        ("-f", "/srv/layers/Dockerfile"),
        ("-f", pruned),
    ]


def test_the_stages_file_names_the_pruned_copy_a_stage_is_built_from():
    plan = shop_plan()

    stages_file = yaml.safe_load(plan.files["stages.yml"])["services"]
    assert {
        name: s["build"]["dockerfile"] for name, s in stages_file.items() if name != "shop"
    } == {
        "shop_stage_base": "docker/shop.Dockerfile",
        **{f"shop_stage_{s}": path for s, path in PRUNED.items()},
    }
    assert [b.argv[3] for b in plan.builds if b.name in PRUNED] == list(PRUNED.values())


def test_a_pruned_copy_keeps_directives_global_args_and_the_kept_stages_as_written():
    plan = shop_plan()

    text = plan.files["shop.pruned-hello.Dockerfile"]
    assert text == (
        "# The sample Dockerfile of the unit tests: a stage needs another in every way\n"
        "# Docker allows (FROM, COPY --from=NAME, COPY --from=INDEX, RUN --mount=from=),\n"
        "# and the final image needs every stage.\n"
        "ARG BASE_IMAGE=busybox:1.36\n"
        "ARG RECIPE_REPO=cilocal/recipe\n"
        "\n"
        "FROM ${RECIPE_REPO}:hello AS hello\n"
        f"{GENERATED_MARK}\n"
    )
    build_copy = plan.files["shop.pruned-build.Dockerfile"]
    assert "AS hello" not in build_copy and "AS assets" in build_copy
    assert "RUN --mount=type=bind,from=assets" in build_copy


def test_a_stage_referred_to_by_number_after_a_dropped_one_turns_pruning_off():
    text = (
        "FROM busybox:1.36 AS a\nRUN echo a > /a\n"
        "FROM busybox:1.36 AS unused\n"
        "FROM busybox:1.36\nCOPY --from=0 /a /a\n"
    )
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    # Dropping 'unused' would not renumber stage 0, but ci-load plays safe:
    # every stage up to the last target, as the classic builder builds them.
    assert plan.warnings == (
        "/srv/p/Dockerfile:4: stage #2 refers to an earlier stage by number "
        "(COPY --from=N), so the classic builder cannot leave out stages its target "
        "does not need; they are built and cached too. Refer to stages by name, or "
        "use --builder buildkit",
    )
    assert (plan.stages, plan.skipped_stages, plan.dockerfiles) == (
        ("a", "unused"),
        (),
        [],
    )
    assert [b.argv[3] for b in plan.builds] == ["/srv/p/Dockerfile"] * 3


def test_a_stage_referred_to_by_number_in_front_of_every_dropped_one_is_pruned():
    text = (
        "FROM busybox:1.36 AS a\n"
        "FROM busybox:1.36 AS b\nCOPY --from=0 /a /a\n"
        "FROM busybox:1.36 AS unused\n"
        "FROM b\n"
    )
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    assert plan.warnings == ()
    assert (plan.stages, plan.skipped_stages) == (("a", "b"), ("unused",))
    assert plan.files["app.pruned-3.Dockerfile"] == (
        "FROM busybox:1.36 AS a\nFROM busybox:1.36 AS b\nCOPY --from=0 /a /a\n"
        f"FROM b\n{GENERATED_MARK}\n"
    )


def test_buildkit_only_syntax_in_a_stage_nobody_needs_is_no_warning_for_classic():
    text = (
        "FROM busybox:1.36 AS base\n"
        "FROM base AS lint\nRUN --mount=type=cache,target=/c true\n"
        "FROM base\n"
    )
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    assert (plan.buildkit_only, plan.warnings) == ((), ())
    assert plan.skipped_stages == ("lint",)
    assert "--mount" not in plan.files["app.pruned-2.Dockerfile"]


def test_a_stage_named_inline_does_not_overwrite_the_inline_dockerfile():
    text = (
        "FROM busybox:1.36 AS z\nRUN echo z > /z\n"
        "FROM busybox:1.36 AS inline\n"
        "FROM inline\nCOPY --from=z /z /z\n"
    )
    config = {
        "name": "p",
        "services": {"app": {"build": {"context": "/srv/p", "dockerfile_inline": text}}},
    }

    plan = make_plan(settings(service="app"), config, "", WORKDIR)

    assert plan.files["app.inline.Dockerfile"] == f"{text}{GENERATED_MARK}\n"
    assert sorted(plan.dockerfiles) == ["app.inline.Dockerfile", "app.pruned-inline.Dockerfile"]
    assert plan.builds[-1].argv[3] == f"{WORKDIR}/app.inline.Dockerfile"


def test_the_stages_file_names_the_pruned_copy_the_service_itself_is_built_from():
    text = "FROM busybox:1.36 AS base\nFROM base AS lint\nRUN true\nFROM base\n"
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    stages_file = yaml.safe_load(plan.files["stages.yml"])["services"]
    assert stages_file["app"]["build"]["dockerfile"] == f"{WORKDIR}/app.pruned-2.Dockerfile"
    assert plan.builds[-1].argv[3] == f"{WORKDIR}/app.pruned-2.Dockerfile"


def test_the_no_pruning_warning_names_the_stage_whose_number_reference_stops_it():
    text = (
        "FROM busybox:1.36 AS a\n"
        "FROM busybox:1.36 AS b\nCOPY --from=0 /a /a\n"
        "FROM busybox:1.36 AS unused\n"
        "FROM busybox:1.36\nCOPY --from=1 /b /b\n"
    )
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, text, WORKDIR)

    assert len(plan.warnings) == 1
    assert ":5: stage #3 refers to an earlier stage by number" in plan.warnings[0]
    assert plan.stages == ("a", "b", "unused")


# -- BuildKit -------------------------------------------------------------------


# A 20.10 client has BuildKit built in, but no --build-context; a 23+ client
# drives it through buildx, which has.
DOCKER_20 = DockerFacts("20.10.24+dfsg1", "20.10.24+dfsg1")
DOCKER_28_BUILDX = DockerFacts("28.2.2", "28.2.2", server_arch="arm64", has_buildx=True)
BUILDKIT_20 = choose("auto", DOCKER_20)
BUILDKIT_28 = choose("buildkit", DOCKER_28_BUILDX)
# Only the registry's cache images: BuildKit reads --cache-from from there.
REGISTRY_CACHE = tuple(i for i in CACHE_FROM if i.startswith(R))
BUILDKIT_ARGS = (*ARGS, "--build-arg", "BUILDKIT_INLINE_CACHE=1")


def buildkit_shop_plan(builder=BUILDKIT_20, facts=DOCKER_20, **flags):
    flags = {
        "cache_repo": R,
        "recipe_repo": "cilocal/recipe",
        "recipe_compose": "/srv/recipes/docker-compose.yml",
        **flags,
    }
    return make_plan(
        settings(**flags),
        rendered("shop.yml"),
        SHOP_DOCKERFILE,
        WORKDIR,
        rendered("recipes.yml"),
        builder,
        facts,
    )


def test_a_buildkit_build_reads_plain_progress_and_writes_inline_cache():
    plan = buildkit_shop_plan()

    assert plan.builds[0] == Build(
        "shop",
        "shop",
        ("example/shop:1.0", f"{R}:shop_final"),
        (
            "docker",
            "build",
            "-f",
            DOCKERFILE,
            "--progress",
            "plain",
            *BUILDKIT_ARGS,
            *cache_from(REGISTRY_CACHE),
            "-t",
            "example/shop:1.0",
            "-t",
            f"{R}:shop_final",
            CONTEXT,
        ),
    )
    assert (plan.builder, plan.build_env) == ("buildkit", {"DOCKER_BUILDKIT": "1"})
    assert plan.build_args == {
        "BASE_IMAGE": "busybox:1.36",
        "GREETING": "costs $5",
        "BUILDKIT_INLINE_CACHE": "1",
    }
    # Every build reads the Dockerfile itself: BuildKit builds only what a
    # target needs.
    assert plan.dockerfiles == []
    assert {b.argv[3] for b in plan.builds} == {DOCKERFILE}


def test_buildkit_builds_the_service_first_then_other_targets_then_the_stages_if_changed():
    plan = buildkit_shop_plan(other_services=["shop-build"])

    assert [(b.name, b.only_if_changed) for b in plan.builds] == [
        ("shop", False),
        ("build", False),
        ("base", True),
        ("hello", True),
        ("deps", True),
        ("assets", True),
    ]
    assert plan.builds[1].argv == (
        "docker",
        "build",
        "-f",
        DOCKERFILE,
        "--progress",
        "plain",
        "--target",
        "build",
        *BUILDKIT_ARGS,
        *cache_from(REGISTRY_CACHE),
        "-t",
        f"{R}:shop_stage_build",
        CONTEXT,
    )
    stages_file = yaml.safe_load(plan.files["stages.yml"])["services"]
    assert list(stages_file)[:6] == [
        "shop",
        "shop_stage_build",
        "shop_stage_base",
        "shop_stage_hello",
        "shop_stage_deps",
        "shop_stage_assets",
    ]


def test_buildkit_takes_only_registry_cache_images_as_cache_from():
    plan = buildkit_shop_plan(other_services=["shop-build"], other_repos=["team/other"])

    other = tuple(i.replace(R, "team/other") for i in REGISTRY_CACHE)
    # Neither the services' own image names nor the local recipe name.
    assert plan.cache_from == (*REGISTRY_CACHE, *other)
    assert all(b.argv.count("--cache-from") == len(plan.cache_from) for b in plan.builds)
    argv = plan.recipe_builds[0].argv
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--cache-from"] == [
        f"{R}:shop_recipe_hello",
        "team/other:shop_recipe_hello",
    ]
    assert argv[4:8] == ("--progress", "plain", "--build-arg", "BUILDKIT_INLINE_CACHE=1")


def test_buildkit_pulls_nothing_and_asks_the_registry_instead():
    plan = buildkit_shop_plan(other_repos=["registry.example.com/shop/cache:main"])

    assert plan.pull is None
    assert plan.commands()[0].startswith("DOCKER_BUILDKIT=1 docker build -f /srv/recipes/")
    # A loopback registry is plain HTTP: the daemon allows it, the client must be told.
    assert plan.registry_checks[f"{R}:shop_final"] == (
        "docker",
        "manifest",
        "inspect",
        "--insecure",
        f"{R}:shop_final",
    )
    assert plan.registry_checks["registry.example.com/shop/cache:main_stage_base"] == (
        "docker",
        "manifest",
        "inspect",
        "registry.example.com/shop/cache:main_stage_base",
    )
    assert list(plan.registry_checks) == [
        *plan.cache_images.all(),
        *plan.other_cache_images[0].all(),
    ]


@pytest.mark.parametrize(
    "image, insecure",
    [
        pytest.param("localhost:5000/c:x", True, id="localhost"),
        pytest.param("127.0.0.1/c:x", True, id="127.0.0.1 without a port"),
        pytest.param("[::1]:5000/c:x", True, id="IPv6 loopback"),
        pytest.param("127.example.com/c:x", False, id="a name starting with 127"),
        pytest.param("localhost.example.com:5000/c:x", False, id="a name starting with localhost"),
        pytest.param("team/c:x", False, id="Docker Hub"),
    ],
)
def test_only_a_loopback_registry_is_asked_with_insecure(image, insecure):
    plan = make_plan(
        settings(cache_repo=image.rsplit(":", 1)[0]),
        rendered("shop.yml"),
        "FROM busybox:1.36\n",
        WORKDIR,
    )

    argv = plan.registry_checks[plan.cache_images.final]
    assert ("--insecure" in argv) is insecure
    assert argv[-1] == plan.cache_images.final


def test_the_local_images_are_listed_with_their_ids():
    assert shop_plan().list_images == (
        "docker",
        "image",
        "ls",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    )


def test_buildkit_only_syntax_is_no_warning_under_buildkit():
    plan = buildkit_shop_plan()

    assert (plan.buildkit_only, plan.warnings) == ((), ())
    assert plan.builder_reason == "auto: docker client 20.10.24+dfsg1 can build with BuildKit"


@pytest.mark.parametrize("builder", [None, BUILDKIT_20], ids=["classic", "buildkit"])
def test_both_builders_build_only_the_needed_stages(builder):
    plan = make_plan(
        settings(
            compose_files=["/srv/layers/docker-compose.yml"],
            service="app",
            cache_repo=R,
            other_services=["app-docs"],
        ),
        rendered("layers.yml"),
        LAYERS_DOCKERFILE,
        WORKDIR,
        None,
        builder,
        DOCKER_20,
    )

    assert plan.stages == ("base", "build", "docs")
    assert plan.skipped_stages == ("test",)
    assert sorted(b.name for b in plan.builds) == ["app", "base", "build", "docs"]


def test_buildkit_stages_file_args_hold_the_inline_cache_switch_in_either_form():
    mapped = buildkit_shop_plan()
    listed = make_plan(
        settings(service="listed"),
        rendered("legacy_forms.yml"),
        "FROM busybox:1.36\n",
        WORKDIR,
        None,
        BUILDKIT_20,
        DOCKER_20,
    )

    mapped_args = yaml.safe_load(mapped.files["stages.yml"])["services"]["shop"]["build"]["args"]
    listed_args = yaml.safe_load(listed.files["stages.yml"])["services"]["listed"]["build"]["args"]
    assert mapped_args == {
        "BASE_IMAGE": "busybox:1.36",
        "GREETING": "costs $$5",
        "BUILDKIT_INLINE_CACHE": "1",
    }
    assert listed_args == [
        "PLAIN=1",
        "FROM_ENV",
        "EQUATION=a=b",
        "PRICE=costs $$5",
        "BUILDKIT_INLINE_CACHE=1",
    ]


def contexts_config():
    return {
        "name": "p",
        "services": {
            "app": {
                "image": "p/app:1",
                "build": {
                    "context": "/srv/p",
                    "dockerfile": "Dockerfile",
                    "additional_contexts": {"tools": "/srv/tools"},
                },
            }
        },
    }


def test_a_buildx_client_passes_additional_contexts_as_build_contexts():
    plan = make_plan(
        settings(service="app"),
        contexts_config(),
        "FROM busybox\n",
        WORKDIR,
        None,
        BUILDKIT_28,
        DOCKER_28_BUILDX,
    )

    assert plan.warnings == ()
    assert plan.build_contexts_supported is True
    argv = plan.builds[0].argv
    assert argv[argv.index("--build-context") :] == (
        "--build-context",
        "tools=/srv/tools",
        "-t",
        "p/app:1",
        "-t",
        "ci-load-local/p:app_final",
        "/srv/p",
    )


def test_additional_contexts_on_a_client_without_buildx_are_a_warning_naming_it():
    plan = make_plan(
        settings(service="app"),
        contexts_config(),
        "FROM busybox\n",
        WORKDIR,
        None,
        BUILDKIT_20,
        DOCKER_20,
    )

    assert plan.warnings == (
        "service 'app' uses additional_contexts (tools), which only BuildKit driven by a "
        "docker client with buildx passes on (builder: buildkit, auto: docker client "
        "20.10.24+dfsg1 can build with BuildKit), so building it will stop; install "
        "docker-buildx and use --builder buildkit",
    )
    assert plan.build_contexts_supported is False
    # Still passed on: the build stops before running it.
    assert "--build-context" in plan.builds[0].argv


PLATFORM_DOCKERFILE = (
    "FROM busybox:1.36 AS build-amd64\n"
    "FROM busybox:1.36 AS build-arm64\n"
    "FROM build-$TARGETARCH AS app\n"
)


def test_buildkit_fills_in_the_daemons_platform_args_in_from():
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(
        settings(service="app"),
        config,
        PLATFORM_DOCKERFILE,
        WORKDIR,
        None,
        BUILDKIT_28,
        DOCKER_28_BUILDX,
    )

    assert (plan.stages, plan.skipped_stages) == (("build-arm64", "app"), ("build-amd64",))
    assert plan.warnings == ()


def test_the_classic_builder_leaves_platform_args_empty_and_warns():
    config = {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}}

    plan = make_plan(settings(service="app"), config, PLATFORM_DOCKERFILE, WORKDIR)

    assert plan.buildkit_only == ("line 3: FROM uses $TARGETARCH, which only BuildKit fills in",)
    assert plan.stages == ("app",)
    assert plan.warnings[0].startswith(
        "/srv/p/Dockerfile uses syntax only BuildKit builds (line 3: FROM uses $TARGETARCH"
    )


def test_a_stage_a_named_context_stands_in_for_is_neither_built_nor_cached():
    text = (
        "FROM busybox:1.36 AS tools\nRUN make-tools\nFROM busybox:1.36\nCOPY --from=tools /t /t\n"
    )
    config = {
        "name": "p",
        "services": {
            "app": {
                "build": {
                    "context": "/srv/p",
                    "additional_contexts": {"tools": "/srv/prebuilt-tools"},
                }
            }
        },
    }

    plan = make_plan(settings(service="app", cache_repo=R), config, text, WORKDIR)

    assert (plan.stages, plan.skipped_stages) == ((), ("tools",))
    assert list(plan.cache_images.stages) == []


# -- several main services ----------------------------------------------------------

SHOP_TEXTS = {
    "shop": SHOP_DOCKERFILE,
    "shop-build": SHOP_DOCKERFILE,
    "shop-latest": SHOP_DOCKERFILE,
    "worker": "FROM busybox:1.36\n",
}


def shop_plans(services=("shop", "worker", "shop-build"), config="shop.yml", **flags):
    flags = {"cache_repo": R, "service": list(services), **flags}
    return make_plans(settings(**flags), rendered(config), SHOP_TEXTS, WORKDIR)


def test_services_that_build_alike_form_one_group_in_the_order_given():
    plans = shop_plans()

    assert [p.services for p in plans] == [("shop", "shop-build"), ("worker",)]
    assert [p.service for p in plans] == ["shop", "worker"]


def test_all_takes_every_service_with_a_build_section_in_compose_file_order():
    plans = shop_plans(services=(), all=True)

    # db has no build section.
    assert [p.services for p in plans] == [("shop", "shop-build", "shop-latest"), ("worker",)]


def test_a_groups_stages_are_named_after_its_first_service_and_each_service_has_its_final():
    shop, worker = shop_plans()

    assert shop.cache_images.stages == {s: f"{R}:shop_stage_{s}" for s in STAGES}
    assert shop.finals == {"shop": f"{R}:shop_final", "shop-build": f"{R}:shop-build_final"}
    assert shop.pushed == (
        f"{R}:shop_final",
        *(f"{R}:shop_stage_{s}" for s in STAGES),
        f"{R}:shop-build_final",
    )
    assert (worker.finals, worker.pushed) == (
        {"worker": f"{R}:worker_final"},
        (f"{R}:worker_final",),
    )


def test_another_main_service_is_tagged_from_its_target_stage_image_with_its_final_name():
    shop, _ = shop_plans()

    assert [(t.source, t.target) for t in shop.tags] == [
        (f"{R}:shop_stage_build", "example/shop-build:1.0"),
        (f"{R}:shop_stage_build", f"{R}:shop-build_final"),
    ]
    # Its stage is built once, for the group: no build of its own.
    assert [b.name for b in shop.builds] == [*STAGES, "shop"]


def test_the_groups_share_one_push_pull_file_and_the_run_pulls_and_pushes_once():
    plans = shop_plans()
    commands = run_commands(plans)

    assert plans[0].files["push_pull.yml"] == plans[1].files["push_pull.yml"]
    assert plans[0].registry_checks == plans[1].registry_checks
    assert len(plans[0].registry_checks) == 8
    assert [c for c in commands if " pull " in c] == [shlex.join(plans[0].pull)]
    pushes = [c for c in commands if c.split()[-1] != "push" and " push " in c]
    assert pushes == [
        "COMPOSE_PARALLEL_LIMIT=4 "
        + shlex.join(
            (
                *plans[0].push,
                "g1_cache_final",
                *(f"g1_cache_stage_{s}" for s in STAGES),
                "g1_cache_final_shop-build",
                "g2_cache_final",
            )
        )
    ]
    services = yaml.safe_load(plans[0].files["push_pull.yml"])["services"]
    assert services["g1_cache_final_shop-build"]["image"] == f"{R}:shop-build_final"
    assert services["g2_cache_final"]["image"] == f"{R}:worker_final"


def test_each_group_writes_its_own_stages_file():
    shop, worker = shop_plans()

    assert (shop.stages_file, worker.stages_file) == ("shop.stages.yml", "worker.stages.yml")
    assert sorted(n for n in shop.files if n.endswith(".yml")) == [
        "push_pull.yml",
        "shop.stages.yml",
    ]
    assert re.findall(r"(?m)^  (\S+):$", shop.files["shop.stages.yml"]) == [
        *(f"shop_stage_{s}" for s in STAGES if s != "build"),
        "shop_stage_build",
        "shop",
        "shop-build",
    ]


def test_with_a_tag_prefix_every_tag_of_several_services_names_its_service():
    shop, worker = shop_plans(cache_repo=f"{R}:nightly")

    assert shop.cache_images.stages["base"] == f"{R}:nightly_shop_stage_base"
    assert shop.finals["shop-build"] == f"{R}:nightly_shop-build_final"
    assert worker.cache_images.final == f"{R}:nightly_worker_final"


def test_one_service_given_as_a_list_or_found_by_all_plans_as_it_always_did():
    single = shop_plan()
    config = rendered("shop.yml")
    only_shop = {"name": "shop", "services": {"shop": config["services"]["shop"]}}
    flags = dict(
        cache_repo=R, recipe_repo="cilocal/recipe", recipe_compose="/srv/recipes/docker-compose.yml"
    )

    as_list = make_plans(
        settings(service=["shop"], **flags),
        config,
        {"shop": SHOP_DOCKERFILE},
        WORKDIR,
        rendered("recipes.yml"),
    )
    by_all = make_plans(
        settings(service=None, all=True, **flags),
        only_shop,
        {"shop": SHOP_DOCKERFILE},
        WORKDIR,
        rendered("recipes.yml"),
    )

    assert as_list == (single,)
    assert as_list[0].as_json() == single.as_json()
    assert by_all[0].cache_images == single.cache_images
    assert "services" not in single.as_json() and "finals" not in single.as_json()
    assert plans_as_json(as_list) == as_list[0].as_json()


def test_several_groups_print_as_plans_with_the_commands_of_the_whole_run():
    plans = shop_plans()

    data = json.loads(json.dumps(plans_as_json(plans)))

    assert list(data) == ["services", "plans", "commands"]
    assert data["services"] == ["shop", "shop-build", "worker"]
    assert [p["services"] for p in data["plans"]] == [["shop", "shop-build"], ["worker"]]
    assert data["plans"][0]["finals"]["shop-build"] == f"{R}:shop-build_final"
    assert data["commands"] == run_commands(plans)
    # A group's own commands are its builds and tags; pull and push are the run's.
    assert not any(" pull " in c or " push " in c for c in data["plans"][0]["commands"])


def test_another_service_is_tagged_by_the_group_that_builds_like_it():
    plans = shop_plans(services=("worker", "shop"), other_services=["shop-latest"])
    assert [p.service for p in plans] == ["worker", "shop"]
    assert [(t.source, t.target) for t in plans[1].tags] == [
        (f"{R}:shop_final", "example/shop:latest")
    ]
    assert plans[0].tags == ()


@pytest.mark.parametrize(
    "flags, message",
    [
        pytest.param(
            {"service": ["shop", "nope"]},
            "service 'nope' is not defined in /srv/shop/docker-compose.yml (services there: "
            "db, shop, shop-build, shop-latest, worker); pass --service with one of them",
            id="an unknown service",
        ),
        pytest.param(
            {"service": ["shop", "db"]},
            "service 'db' in /srv/shop/docker-compose.yml has no build section: ci-load "
            "caches images it builds; give the service a build: or choose another service",
            id="a service without build",
        ),
        pytest.param(
            {"service": ["shop", "worker"], "other_services": ["worker"]},
            "service 'worker' is both a main service (--service/--all) and an "
            "--other-service; a main service gets its own final cache image, so leave it "
            "out of --other-service",
            id="a main service also named as another service",
        ),
        pytest.param(
            {"service": ["shop", "shop-build"], "other_services": ["worker"]},
            "other service 'worker' does not build like any main service (shop, "
            "shop-build): Dockerfile, context, build args or network differ, so no image "
            "ci-load builds is its image; leave it out of --other-service or make it a "
            "main service",
            id="another service that builds like no main service",
        ),
        pytest.param(
            {"service": None},
            "no main service: pass --service NAME (repeatable) or --all, or set ci_load.service",
            id="no service at all",
        ),
    ],
)
def test_bad_main_services_are_one_line_errors_naming_the_service_and_what_to_do(flags, message):
    with pytest.raises(ConfigError) as error:
        make_plans(settings(cache_repo=R, **flags), rendered("shop.yml"), SHOP_TEXTS, WORKDIR)

    assert str(error.value) == message


def test_all_without_a_buildable_service_is_an_error_naming_the_compose_files():
    config = {"name": "shop", "services": {"db": {"image": "postgres:16"}}}

    with pytest.raises(ConfigError) as error:
        make_plans(settings(service=None, all=True), config, {}, WORKDIR)

    assert str(error.value) == (
        "--all: no service in /srv/shop/docker-compose.yml has a build section; add "
        "build: to the services ci-load should build, or name them with --service"
    )


def test_two_groups_that_would_write_one_cache_image_are_an_error():
    # Stage "final" of service a and the final image of service a_stage are
    # both R:a_stage_final.
    config = {
        "name": "clash",
        "services": {
            "a": {"build": {"context": "/srv/a"}},
            "a_stage": {"build": {"context": "/srv/b"}},
        },
    }
    texts = {
        "a": "FROM busybox:1.36 AS final\nFROM busybox:1.36\nCOPY --from=final /x /x\n",
        "a_stage": "FROM busybox:1.36\n",
    }

    with pytest.raises(ConfigError) as error:
        make_plans(settings(service=["a", "a_stage"], cache_repo=R), config, texts, WORKDIR)

    assert str(error.value) == (
        f"cache image {R}:a_stage_final would be written by the groups of both 'a' and "
        "'a_stage'; rename a service or stage, or run ci-load for them separately with "
        "their own --cache-version"
    )


def test_under_buildkit_the_other_main_services_target_is_built_right_after_the_service():
    buildkit = choose("buildkit", DockerFacts("20.10.24", "20.10.24"))
    plans = make_plans(
        settings(service=["shop", "shop-build"], cache_repo=R),
        rendered("shop.yml"),
        SHOP_TEXTS,
        WORKDIR,
        None,
        buildkit,
        DockerFacts("20.10.24", "20.10.24"),
    )

    (shop,) = plans
    assert [(b.name, b.only_if_changed) for b in shop.builds][:2] == [
        ("shop", False),
        ("build", False),
    ]


def test_one_group_of_two_services_still_pulls_and_pushes_in_the_run_commands():
    (plan,) = shop_plans(services=("shop", "shop-build"))

    commands = run_commands((plan,))

    assert commands[0] == shlex.join(plan.pull)
    assert commands[-1] == "COMPOSE_PARALLEL_LIMIT=4 " + shlex.join(
        push_services(plan, plan.pushed)
    )
    assert commands[-1].endswith(
        " push g1_cache_final "
        + " ".join([*(f"g1_cache_stage_{s}" for s in STAGES), "g1_cache_final_shop-build"])
    )
    assert list(plans_as_json((plan,))) == ["services", "plans", "commands"]


def test_the_main_service_named_as_another_service_is_an_error_saying_to_leave_it_out():
    # As with several main services: a slip in a CI script, not something to
    # pass over in silence.
    with pytest.raises(ConfigError) as error:
        shop_plan(other_services=["shop", "shop-latest"])

    assert str(error.value) == (
        "service 'shop' is both the main service (--service) and an --other-service; the "
        "main service is built and tagged anyway, so leave it out of --other-service"
    )
