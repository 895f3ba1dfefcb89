"""Bad input: each is refused before anything is pulled, built or pushed.

Every case runs `inv ci-load.run --push` on a broken copy of examples/ with a
real compose, the private dockerd and a cache repo of its own in the private
registry: a one-line error (the last line on stderr) that names the file,
service or stage and says what to do, exit code 1, no traceback, no pull,
build or push command printed, and the registry left as it was.

Last, a cache tag over docker's 128 characters: shortened the same way on
every plan (a readable head and a short hash), with a warning, and a real
build and push with it succeeds.
"""

import json
import re
import shutil

import pytest
from test_end_to_end import EXAMPLE, ci_load, project_flags

pytestmark = pytest.mark.docker

# Command lines (echoed with "+ ") that would move or make an image.
MOVES_IMAGES = re.compile(
    r"^\+ .*(?: pull --ignore-pull-failures| push(?: |$)| manifest inspect | build | tag )"
)

# Words that say what to do about it.
WHAT_TO_DO = (
    "pass ",
    "check ",
    "add ",
    "give ",
    "rename ",
    "drop ",
    "set ",
    "use ",
    "install ",
    "choose ",
    "must ",
    "fix ",
    "remove ",
    "name ",
    "point ",
)


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy)
    return copy


def run_refused(engine, registry, project, repo_path, *extra, cache_repo=None, flags=None):
    """`ci-load.run --push` on the project; returns (process, last stderr line)
    after checking what every refusal has in common."""
    catalog = registry.catalog()
    repo = cache_repo if cache_repo is not None else f"{registry.address}/{repo_path}"
    args = flags if flags is not None else project_flags(project, repo)
    process = ci_load(
        engine.env(), "ci-load.run", *args, "--push", "--retry-delay", "0", *extra, check=False
    )
    output = f"--- stdout ---\n{process.stdout}\n--- stderr ---\n{process.stderr}"
    assert process.returncode == 1, output
    assert "Traceback" not in process.stdout + process.stderr, output
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("ci-load run: "), output
    moved = [line for line in process.stdout.splitlines() if MOVES_IMAGES.match(line)]
    assert moved == [], output
    assert "== ci-load" not in process.stdout, output  # no step started
    assert registry.catalog() == catalog
    assert registry.tags(repo_path) == []
    return process, last


def says_what_to_do(line):
    return any(word in line for word in WHAT_TO_DO)


# -- the compose files ----------------------------------------------------------------


def test_a_missing_compose_file(engine, registry, project):
    missing = project / "compose.missing.yml"
    flags = project_flags(project, f"{registry.address}/bad/missing-compose")
    flags[flags.index("--compose-file") + 1] = str(missing)

    _, line = run_refused(engine, registry, project, "bad/missing-compose", flags=flags)

    assert line == (f"ci-load run: compose file {missing} does not exist: check --compose-file")


def test_a_compose_file_that_is_not_yaml(engine, registry, project):
    compose = project / "docker-compose.yml"
    compose.write_text("services:\n  app:\n    build: [context: .\n  test: {\n")

    _, line = run_refused(engine, registry, project, "bad/not-yaml")

    assert f"compose could not read {compose}" in line
    assert "yaml" in line.lower(), line  # compose's own words: where the YAML breaks


def test_compose_config_failing_shows_composes_message(engine, registry, project):
    compose = project / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace(
            "image: example/app:latest", "image: ${APP_IMAGE:?set APP_IMAGE to the image name}", 1
        )
    )

    _, line = run_refused(engine, registry, project, "bad/config-fails")

    assert f"compose could not read {compose}" in line
    assert "required variable APP_IMAGE is missing a value: set APP_IMAGE to the image name" in line


def test_a_main_service_that_is_not_defined(engine, registry, project):
    flags = project_flags(project, f"{registry.address}/bad/no-service")
    flags[flags.index("--service") + 1] = "shop"

    _, line = run_refused(engine, registry, project, "bad/no-service", flags=flags)

    assert line == (
        f"ci-load run: service 'shop' is not defined in {project / 'docker-compose.yml'} "
        "(services there: app, test); pass --service with one of them"
    )


def test_a_main_service_without_build(engine, registry, project):
    compose = project / "docker-compose.yml"
    compose.write_text(compose.read_text() + ("\n  db:\n    image: cilocal/busybox:latest\n"))
    flags = project_flags(project, f"{registry.address}/bad/no-build")
    flags[flags.index("--service") + 1] = "db"

    _, line = run_refused(engine, registry, project, "bad/no-build", flags=flags)

    assert line.startswith(f"ci-load run: service 'db' in {compose} has no build section")
    assert "give the service a build: or choose another service" in line


def test_an_other_service_that_is_not_defined(engine, registry, project):
    flags = project_flags(project, f"{registry.address}/bad/no-other")
    flags[flags.index("--other-service") + 1] = "tset"

    _, line = run_refused(engine, registry, project, "bad/no-other", flags=flags)

    assert line.startswith(
        f"ci-load run: other service 'tset' is not defined in {project / 'docker-compose.yml'}"
    ), line
    assert "app, test" in line  # the services it could have meant
    assert says_what_to_do(line), f"the error does not say what to do: {line}"


# -- the Dockerfile -------------------------------------------------------------------


def _as_directory(path):
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "spoil, message",
    [
        pytest.param(
            lambda path: path.unlink(),
            "service 'app': Dockerfile {path} does not exist; check build.context and "
            "build.dockerfile",
            id="missing",
        ),
        pytest.param(
            _as_directory,
            "service 'app': Dockerfile {path} is a directory; point build.dockerfile at the "
            "file in it",
            id="a directory",
        ),
        pytest.param(
            lambda path: path.write_bytes(b"FROM busybox\nRUN echo \xff\n"),
            "cannot read Dockerfile {path}: line 2 is not UTF-8 text; save the file as UTF-8",
            id="not UTF-8",
        ),
    ],
)
def test_a_dockerfile_that_cannot_be_read(engine, registry, project, spoil, message):
    dockerfile = project / "docker" / "app.Dockerfile"
    spoil(dockerfile)

    _, line = run_refused(engine, registry, project, "bad/unreadable-dockerfile")

    assert line == "ci-load run: " + message.format(path=dockerfile)


def test_an_empty_dockerfile(engine, registry, project):
    dockerfile = project / "docker" / "app.Dockerfile"
    dockerfile.write_text("\n  \n")

    _, line = run_refused(engine, registry, project, "bad/empty-dockerfile")

    assert str(dockerfile) in line and "empty" in line, line
    assert says_what_to_do(line), f"the error does not say what to do: {line}"


def test_a_dockerfile_without_from(engine, registry, project):
    dockerfile = project / "docker" / "app.Dockerfile"
    dockerfile.write_text("# FROM is only in this comment\nARG APP_VERSION=1\nRUN echo no stage\n")

    _, line = run_refused(engine, registry, project, "bad/no-from")

    assert line == (
        f"ci-load run: {dockerfile}: no FROM instruction: a Dockerfile must start a stage with FROM"
    )


# -- names ------------------------------------------------------------------------


def test_an_other_service_named_like_a_generated_stage_service(engine, registry, project):
    compose = project / "docker-compose.yml"
    compose.write_text(
        compose.read_text()
        + (
            "\n  app_stage_deps:\n    image: example/app-deps:latest\n"
            "    build:\n      <<: *app-build\n      target: deps\n"
        )
    )
    flags = project_flags(project, f"{registry.address}/bad/collision")
    flags[flags.index("--other-service") + 1] = "app_stage_deps"

    _, line = run_refused(engine, registry, project, "bad/collision", flags=flags)

    assert line == (
        "ci-load run: other service 'app_stage_deps' has the name ci-load gives the "
        "build of stage 'deps' in its generated stages file; rename that service"
    )


@pytest.mark.parametrize(
    "repo, words",
    [
        pytest.param("{reg}/Bad/Cache", ["'Bad'", "lower case"], id="upper case"),
        pytest.param(
            "{reg}/bad/cache:", ["ends with ':'", "drop it or add a tag prefix"], id="empty tag"
        ),
        pytest.param(
            "{reg}/bad/cache@sha256:" + "0" * 64, ["has a digest", "give a repository"], id="digest"
        ),
        pytest.param("{reg}/bad/my cache", ["'my cache'"], id="space"),
        pytest.param("{reg}/bad/cache:v 1", ["'v 1'", "may hold only"], id="space in tag"),
    ],
)
def test_a_cache_repo_that_is_no_image_reference(repo, words, engine, registry, project):
    repo = repo.format(reg=registry.address)

    _, line = run_refused(engine, registry, project, "bad/cache", cache_repo=repo)

    assert line.startswith(f"ci-load run: cache location {repo!r}"), line
    for word in words:
        assert word in line, line
    assert says_what_to_do(line), f"the error does not say what to do: {line}"


def test_a_recipe_compose_file_without_a_recipe_the_dockerfile_uses(engine, registry, project):
    recipes = project / "recipes" / "docker-compose.yml"
    recipes.write_text(recipes.read_text().replace("  hello:\n", "  goodbye:\n", 1))

    _, line = run_refused(engine, registry, project, "bad/no-recipe")

    assert line == (
        f"ci-load run: recipe compose file {recipes} has no service for recipe(s) hello; "
        "add a service named after each recipe tag"
    )


# -- a cache tag over 128 characters ----------------------------------------------------

LONG_VERSION = "feature-" + "very-long-branch-name-" * 7  # 162 characters


def plan_json(engine, project, repo):
    process = ci_load(
        engine.env(),
        "ci-load.plan",
        "--json",
        "--builder",
        "classic",
        *project_flags(project, repo, "--cache-version", LONG_VERSION),
    )
    return json.loads(process.stdout), process.stderr


def test_a_cache_tag_over_128_characters_is_shortened_the_same_way_with_a_warning(
    engine, registry, project
):
    repo = f"{registry.address}/bad/long"

    first, notes = plan_json(engine, project, repo)
    again, _ = plan_json(engine, project, repo)

    images = [
        first["cache_images"]["final"],
        *first["cache_images"]["stages"].values(),
        *first["cache_images"]["recipes"].values(),
    ]
    assert again["cache_images"] == first["cache_images"]
    tags = [image.rsplit(":", 1)[1] for image in images]
    assert len(set(tags)) == len(tags) == 7
    for tag in tags:
        assert len(tag) == 128, tag
        assert tag.startswith(f"{LONG_VERSION[:100]}"), tag  # readable head
        assert re.search(r"-[0-9a-f]{12}$", tag), tag  # short hash of the whole
    warnings = [w for w in first["warnings"] if "over docker's 128" in w]
    assert len(warnings) == 7, first["warnings"]
    assert any(f"shortened to {images[0]}" in w for w in warnings), warnings


def test_a_run_with_a_shortened_cache_tag_builds_and_pushes(
    engine, registry, base_image, project, tmp_path
):
    repo = f"{registry.address}/bad/long"
    plan, _ = plan_json(engine, project, repo)
    report = tmp_path / "report.json"

    process = ci_load(
        engine.env(),
        "ci-load.run",
        "--builder",
        "classic",
        "--push",
        "--retry-delay",
        "0",
        "--report",
        str(report),
        *project_flags(project, repo, "--cache-version", LONG_VERSION),
    )

    warnings = [
        line for line in process.stdout.splitlines() if line.startswith("warning: cache tag ")
    ]
    assert len(warnings) == 7, process.stdout
    wanted = {
        image.rsplit(":", 1)[1]
        for image in [
            plan["cache_images"]["final"],
            *plan["cache_images"]["stages"].values(),
            *plan["cache_images"]["recipes"].values(),
        ]
    }
    assert set(registry.tags("bad/long")) == wanted
    assert sorted(json.loads(report.read_text())["pushed"]) == sorted(
        f"{repo}:{tag}" for tag in wanted
    )
