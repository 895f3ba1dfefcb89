"""``steps``: the helpers that carry out a plan without running docker.

``registry_trouble`` reads compose's pull output; ``write_files`` writes the
generated compose files into a work directory that may be the user's own.
The connection-refused and missing-cache lines below are what compose 2.40
printed against docker 20.10 in the end-to-end setup; the others follow
docker's wording for those failures.
"""

import os
from pathlib import Path

import pytest
import yaml

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.plan import make_plan
from ci_load_tasks.settings import Settings
from ci_load_tasks.steps import GENERATED_MARK, registry_trouble, write_files

DATA = Path(__file__).resolve().parent / "data" / "unit"
LAYERS_CONFIG = yaml.safe_load((DATA / "rendered" / "layers.yml").read_text())
LAYERS_DOCKERFILE = (DATA / "compose" / "layers" / "Dockerfile").read_text()

# -- registry_trouble -------------------------------------------------------------

MISSING_CACHE = [
    " cache_final Pulling ",
    " cache_final Warning manifest for 127.0.0.1:37783/none/cache:app_final not "
    "found: manifest unknown: manifest unknown",
    "Error response from daemon: manifest for 127.0.0.1:37783/none/cache:app_final "
    "not found: manifest unknown: manifest unknown",
    "WARNING: Some service image(s) must be built from source by running:",
    "    docker compose build cache_final",
]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            ' cache_final Warning Get "http://127.0.0.1:41857/v2/": dial tcp '
            "127.0.0.1:41857: connect: connection refused",
            id="connection refused",
        ),
        pytest.param(
            'Error response from daemon: Get "https://reg.invalid/v2/": dial tcp: '
            "lookup reg.invalid on 127.0.0.53:53: no such host",
            id="no such host",
        ),
        pytest.param(
            "Error response from daemon: Head "
            '"https://reg.example/v2/team/cache/manifests/app_final": unauthorized: '
            "authentication required",
            id="unauthorized",
        ),
    ],
)
def test_registry_trouble_finds_the_line_saying_the_registry_could_not_be_asked(line):
    output = "\n".join([MISSING_CACHE[0], line, MISSING_CACHE[1]]) + "\n"

    assert registry_trouble(output) == line.strip()


def test_registry_trouble_ignores_a_cache_that_is_only_missing():
    assert registry_trouble("\n".join(MISSING_CACHE) + "\n") is None


def test_registry_trouble_in_no_output_is_none():
    assert registry_trouble("") is None


# -- write_files --------------------------------------------------------------------


def layers_plan(workdir, cache_repo="team/cache"):
    settings = Settings.resolve({}, {
        "compose_files": ["/srv/layers/docker-compose.yml"], "service": "app",
        "cache_repo": cache_repo,
    })
    return make_plan(settings, LAYERS_CONFIG, LAYERS_DOCKERFILE, str(workdir))


def test_write_files_writes_the_generated_files_readable_by_the_owner_only(tmp_path):
    plan = layers_plan(tmp_path)

    write_files(plan, ["stages.yml", "push_pull.yml"])

    for name in ("stages.yml", "push_pull.yml"):
        path = tmp_path / name
        assert path.read_text() == plan.files[name]
        assert path.read_text().startswith(GENERATED_MARK)
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


def test_write_files_refuses_to_overwrite_a_file_ci_load_did_not_write(tmp_path):
    users_file = tmp_path / "stages.yml"
    users_file.write_text("services:\n  mine:\n    image: busybox\n")
    plan = layers_plan(tmp_path)

    with pytest.raises(ConfigError) as error:
        write_files(plan, ["stages.yml"])

    assert str(error.value) == (
        f"{users_file} exists and was not written by ci-load; choose another "
        "--workdir or move that file"
    )
    assert users_file.read_text() == "services:\n  mine:\n    image: busybox\n"


def test_write_files_overwrites_a_file_ci_load_wrote_before(tmp_path):
    write_files(layers_plan(tmp_path, "team/old-cache"), ["stages.yml"])
    plan = layers_plan(tmp_path, "team/new-cache")

    write_files(plan, ["stages.yml"])

    assert (tmp_path / "stages.yml").read_text() == plan.files["stages.yml"]
    assert "team/new-cache" in plan.files["stages.yml"]
