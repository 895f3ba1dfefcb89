"""``templates``: the compose files ci-load generates, rendered from templates/."""

import string
from pathlib import Path

import pytest
import yaml

from ci_load_tasks import templates

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Every template with the placeholders it must be given.
PLACEHOLDERS = {
    "push_pull.yml": {"service", "services"},
    "push_pull_service.yml": {"name", "image", "context"},
    "recipe_service.yml": {"name", "cache_from"},
    "recipes.yml": {"recipe_compose", "services"},
    "stage_service.yml": {"name", "image", "build"},
    "stages.yml": {"service", "compose_files", "dockerfile", "services"},
}


def placeholders(template):
    return {
        match.group("named") or match.group("braced")
        for match in template.pattern.finditer(template.template)
        if match.group("named") or match.group("braced")
    }


def test_every_template_in_the_templates_directory_is_known_here():
    assert sorted(p.name for p in TEMPLATES.iterdir()) == sorted(PLACEHOLDERS)


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_a_template_is_loaded_from_the_top_level_templates_directory(name):
    template = templates.load(name)

    assert isinstance(template, string.Template)
    assert template.template == (TEMPLATES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_a_template_has_exactly_its_placeholders(name):
    assert placeholders(templates.load(name)) == PLACEHOLDERS[name]


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_rendering_without_a_value_fails_instead_of_leaving_a_hole(name):
    values = {key: "x" for key in sorted(PLACEHOLDERS[name])[1:]}

    with pytest.raises(KeyError):
        templates.render(name, **values)


def test_a_rendered_service_is_the_yaml_its_values_say():
    text = templates.render(
        "push_pull_service.yml",
        name="cache_final",
        image=templates.scalar("127.0.0.1:5000/team/cache:app_final"),
        context=templates.scalar("/tmp/work $$dir"),
    )

    assert text == (
        "  cache_final:\n"
        '    image: "127.0.0.1:5000/team/cache:app_final"\n'
        '    build: "/tmp/work $$dir"\n'
    )
    assert yaml.safe_load("services:\n" + text) == {
        "services": {
            "cache_final": {
                "image": "127.0.0.1:5000/team/cache:app_final",
                "build": "/tmp/work $$dir",
            }
        }
    }


def test_a_value_is_put_in_as_it_is_even_when_it_looks_like_a_placeholder():
    text = templates.render("push_pull.yml", service="${service}", services="  $x: {}")

    assert "the cache images of service ${service}." in text
    assert text.endswith("services:\n  $x: {}\n")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("127.0.0.1:5000/team/cache:app_final", id="a colon"),
        pytest.param("yes", id="a word YAML 1.1 reads as true"),
        pytest.param("1.10", id="a number"),
        pytest.param("# not a comment", id="a hash"),
        pytest.param("a: b", id="a colon and space"),
        pytest.param("", id="the empty string"),
        pytest.param('quote " and back\\slash', id="quote and backslash"),
        pytest.param(["cache:a", "cache:b"], id="a list"),
    ],
)
def test_a_scalar_reads_back_as_the_value_it_was_made_from(value):
    assert yaml.safe_load(f"key: {templates.scalar(value)}") == {"key": value}


def test_a_scalar_is_one_line():
    assert templates.scalar(["a", "b"]) == '["a", "b"]'
    assert "\n" not in templates.scalar("two\nlines")


def test_a_block_is_indented_and_reads_back_in_place_with_its_key_order():
    section = {
        "context": "/srv/shop",
        "dockerfile": "docker/shop.Dockerfile",
        "args": {"GREETING": "costs $$5", "EMPTY": "", "VERSION": "1.10"},
        "target": "build",
        "cache_from": ["cache:a", "cache:b"],
    }

    text = templates.block(section, 6)

    assert all(line.startswith("      ") for line in text.split("\n"))
    assert not text.endswith("\n")
    parsed = yaml.safe_load("services:\n  app:\n    build:\n" + text + "\n")
    assert parsed == {"services": {"app": {"build": section}}}
    assert list(parsed["services"]["app"]["build"]) == list(section)


def test_a_block_keeps_a_long_value_on_one_line():
    section = {"cache_from": ["registry.example.com/" + "x" * 200 + ":tag"]}

    assert len(templates.block(section, 2).split("\n")) == 2
