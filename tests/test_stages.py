"""``stages.parse_dockerfile``: the stages of a Dockerfile and what each needs."""

from pathlib import Path

import pytest

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.stages import Stage, expand_args, parse_dockerfile

DOCKERFILES = Path(__file__).parent / "data" / "unit" / "dockerfiles"
SHOP = Path(__file__).parent / "data" / "unit" / "compose" / "shop" / "docker"
LAYERS = Path(__file__).parent / "data" / "unit" / "compose" / "layers"


def parse(name, build_args=None, directory=DOCKERFILES):
    path = directory / name
    return parse_dockerfile(path.read_text(), str(path), build_args or {})


def keys(stages):
    return [stage.key for stage in stages]


# -- stages and their names -----------------------------------------------------


def test_the_sample_projects_stages_have_their_names_bases_needs_and_lines():
    dockerfile = parse("shop.Dockerfile", directory=SHOP)

    assert dockerfile.path == str(SHOP / "shop.Dockerfile")
    assert dockerfile.stages == (
        Stage(0, "base", "busybox:1.36", (), 7),
        Stage(1, "hello", "cilocal/recipe:hello", (), 11),
        Stage(2, "deps", "base", ("base",), 13),
        Stage(3, "assets", "busybox:1.36", (), 16),
        Stage(4, "build", "deps", ("deps", "assets"), 19),
        Stage(5, None, "busybox:1.36", ("hello", "build"), 24),
    )


def test_an_unnamed_stage_is_keyed_by_its_index():
    dockerfile = parse("dependencies.Dockerfile")

    assert keys(dockerfile.stages) == ["a", "b", "#2", "c", "d", "e", "f"]
    assert dockerfile.stages[2].name is None


def test_stage_names_and_keywords_are_read_in_any_case_and_names_kept_lower_case():
    dockerfile = parse("keyword_case.Dockerfile")

    assert [(s.name, s.base, s.needs) for s in dockerfile.stages] == [
        ("builder", "golang:1.22", ()),
        ("runtime", "builder", ("builder",)),
    ]


@pytest.mark.parametrize(
    "ref, key",
    [
        pytest.param("c", "c", id="a name"),
        pytest.param("C", "c", id="a name in upper case"),
        pytest.param(" c ", "c", id="a name with white space"),
        pytest.param("3", "c", id="an index"),
        pytest.param("#2", "#2", id="the key of an unnamed stage"),
        pytest.param("2", "#2", id="the index of an unnamed stage"),
    ],
)
def test_find_takes_a_stage_name_index_or_key(ref, key):
    assert parse("dependencies.Dockerfile").find(ref).key == key


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("nope", id="an unknown name"),
        pytest.param("7", id="an index past the last stage"),
        pytest.param("busybox:1.36", id="an image"),
    ],
)
def test_find_gives_none_for_what_is_not_a_stage(ref):
    assert parse("dependencies.Dockerfile").find(ref) is None


def test_the_last_stage_is_the_default_target():
    assert parse("dependencies.Dockerfile").last.key == "f"


def test_a_from_with_a_number_names_an_image_not_the_stage_of_that_index():
    dockerfile = parse_dockerfile("FROM busybox:1.36 AS a\nFROM 0\n", "Dockerfile", {})

    assert dockerfile.stages[1] == Stage(1, None, "0", (), 2)


@pytest.mark.parametrize("name", ["2nd", "_stage", "-stage", "st@ge"])
def test_a_stage_name_docker_refuses_is_an_error_naming_file_and_line(name):
    text = f"FROM busybox:1.36 AS base\n\nFROM base AS {name}\n"

    with pytest.raises(ConfigError) as error:
        parse_dockerfile(text, "/srv/app/Dockerfile", {})

    assert str(error.value) == (
        f"/srv/app/Dockerfile:3: 'base' AS {name!r}: a stage name must start with a "
        "letter and hold only letters, digits, '-', '_' and '.'; docker would refuse it"
    )


# -- dependencies ---------------------------------------------------------------


def test_a_stage_needs_what_it_is_built_from_and_copies_or_mounts_from():
    needs = {s.key: s.needs for s in parse("dependencies.Dockerfile").stages}

    assert needs == {
        "a": (),
        "b": (),
        "#2": (),
        # FROM a, COPY --from=b, COPY --from=2; --from=alpine:3.19 is an image
        "c": ("a", "b", "#2"),
        # RUN --mount=...,from=c and ADD --from=b; a cache mount needs nothing
        "d": ("c", "b"),
        "e": (),
        "f": ("d",),
    }


@pytest.mark.parametrize(
    "targets, needed",
    [
        pytest.param(["f"], ["a", "b", "#2", "c", "d", "f"], id="the whole chain"),
        pytest.param(["c"], ["a", "b", "#2", "c"], id="a stage in the middle"),
        pytest.param(["e"], ["e"], id="a stage that needs nothing"),
        pytest.param(["e", "b"], ["b", "e"], id="several targets in file order"),
        pytest.param(["f", "d", "a"], ["a", "b", "#2", "c", "d", "f"],
                     id="overlapping targets once each"),
    ],
)
def test_needed_for_gives_the_closure_of_the_targets_in_file_order(targets, needed):
    dockerfile = parse("dependencies.Dockerfile")

    assert keys(dockerfile.needed_for([dockerfile.find(t) for t in targets])) == needed


def test_a_final_image_does_not_need_the_test_and_docs_stages_in_front_of_it():
    dockerfile = parse("Dockerfile", directory=LAYERS)

    assert keys(dockerfile.stages) == ["base", "build", "test", "docs", "#4"]
    assert keys(dockerfile.needed_for([dockerfile.last])) == ["base", "build", "#4"]
    assert keys(dockerfile.needed_for([dockerfile.find("docs")])) == ["base", "docs"]


def test_a_copy_from_an_index_that_is_not_an_earlier_stage_is_an_error():
    with pytest.raises(ConfigError) as error:
        parse("forward_index.Dockerfile")

    assert str(error.value) == (
        f"{DOCKERFILES / 'forward_index.Dockerfile'}:2: 'COPY --from=1 /x /x' refers "
        "to stage 1, which is not an earlier stage"
    )


# -- what is not a stage --------------------------------------------------------


def test_a_from_inside_a_run_continuation_or_a_heredoc_is_not_a_stage():
    dockerfile = parse("continuation_and_heredoc.Dockerfile")

    assert [(s.key, s.base, s.line) for s in dockerfile.stages] == [
        ("first", "busybox:1.36", 1),
        ("second", "first", 10),
    ]


def test_the_escape_directive_makes_a_backtick_continue_a_line():
    dockerfile = parse("escape_backtick.Dockerfile")

    assert [(s.key, s.base, s.needs, s.line) for s in dockerfile.stages] == [
        ("tools", "mcr.microsoft.com/windows/nanoserver:ltsc2022", (), 4),
        ("app", "tools", ("tools",), 7),
    ]


# -- global ARGs in FROM ------------------------------------------------------


def test_global_args_are_substituted_in_from_with_their_defaults():
    bases = {s.key: s.base for s in parse("global_args.Dockerfile").stages}

    assert bases == {
        "base": "docker.io/library/alpine:3.19",  # a quoted default using an ARG
        "tools": "docker.io/tools:slim",  # two ARGs declared on one line
        # an ARG inside a stage does not change later FROM lines
        "plain": "docker.io/plain",
        "defaulted": "fallback/image",  # ${UNSET:-word} of an ARG without default
        "alternate": "example/with-flavour",  # ${X:+word}
        "undeclared": "undeclared/default",  # a name never declared is empty
    }


def test_build_args_beat_the_defaults_of_global_args():
    build_args = {"REGISTRY": "127.0.0.1:5000", "FLAVOUR": "full", "UNSET": "given"}

    bases = {s.key: s.base for s in parse("global_args.Dockerfile", build_args).stages}

    assert bases == {
        "base": "127.0.0.1:5000/library/alpine:3.19",
        "tools": "127.0.0.1:5000/tools:full",
        "plain": "127.0.0.1:5000/plain",
        "defaulted": "given",
        "alternate": "example/neverwith-flavour",
        "undeclared": "undeclared/default",
    }


def test_a_build_arg_not_declared_before_the_first_from_does_not_reach_from():
    dockerfile = parse("global_args.Dockerfile", {"NOT_DECLARED": "sneaky/image"})

    bases = {s.key: s.base for s in dockerfile.stages}

    assert bases["undeclared"] == "undeclared/default"


def test_a_build_arg_without_a_value_leaves_the_default():
    dockerfile = parse("global_args.Dockerfile", {"REGISTRY": None})

    assert {s.key: s.base for s in dockerfile.stages}["plain"] == "docker.io/plain"


def test_a_build_arg_value_is_taken_literally_not_expanded_again():
    bases = {
        s.key: s.base
        for s in parse("global_args.Dockerfile", {"BASE": "${REGISTRY}/x"}).stages
    }

    assert bases["base"] == "${REGISTRY}/x"


def test_a_from_naming_a_stage_through_an_arg_needs_that_stage():
    text = "ARG FROM_STAGE=builder\nFROM busybox:1.36 AS builder\nFROM ${FROM_STAGE}\n"

    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    assert dockerfile.stages[1].needs == ("builder",)


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("$A/x", "1/x", id="a plain name"),
        pytest.param("${A}x", "1x", id="a braced name"),
        pytest.param("${NONE}", "", id="an unknown name"),
        pytest.param("${NONE:-d}", "d", id="a default for an unknown name"),
        pytest.param("${EMPTY:-d}", "d", id="a default for an empty value"),
        pytest.param("${A:-d}", "1", id="no default for a set value"),
        pytest.param("${A:+w}", "w", id="an alternative for a set value"),
        pytest.param("${EMPTY:+w}", "", id="no alternative for an empty value"),
        pytest.param("a-b", "a-b", id="text without a dollar"),
    ],
)
def test_expand_args_substitutes_the_forms_docker_allows_in_from(text, expected):
    assert expand_args(text, {"A": "1", "EMPTY": ""}) == expected


# -- what cannot be read --------------------------------------------------------


def test_a_dockerfile_without_from_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as error:
        parse("only_args.Dockerfile")

    assert str(error.value) == (
        f"{DOCKERFILES / 'only_args.Dockerfile'}: no FROM instruction: a Dockerfile "
        "must start a stage with FROM"
    )


def test_an_unreadable_from_line_is_a_config_error_naming_file_and_line():
    with pytest.raises(ConfigError) as error:
        parse("bad_from.Dockerfile")

    assert str(error.value) == (
        f"{DOCKERFILES / 'bad_from.Dockerfile'}:2: cannot read "
        "'FROM busybox:1.36 AS two three': expected FROM [--platform=…] IMAGE "
        "[AS NAME]"
    )


def test_a_dockerfile_buildkit_cannot_parse_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as error:
        parse("unterminated_heredoc.Dockerfile")

    assert str(error.value) == (
        f"{DOCKERFILES / 'unterminated_heredoc.Dockerfile'}: cannot parse the "
        "Dockerfile: unterminated heredoc"
    )


def test_an_empty_dockerfile_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^Dockerfile: "):
        parse_dockerfile("", "Dockerfile", {})


def test_two_stages_of_one_name_are_an_error_naming_both_lines():
    text = "FROM busybox AS tools\nFROM busybox AS Tools\n"

    with pytest.raises(ConfigError) as error:
        parse_dockerfile(text, "Dockerfile", {})

    assert str(error.value) == (
        "Dockerfile:2: stage name 'tools' is already used at line 1; docker refuses "
        "a Dockerfile with two stages of one name"
    )


def test_a_from_that_names_no_image_once_filled_in_is_an_error():
    text = "ARG BASE\nFROM ${BASE} AS app\n"

    with pytest.raises(ConfigError) as error:
        parse_dockerfile(text, "Dockerfile", {})

    assert str(error.value) == (
        "Dockerfile:2: 'FROM ${BASE} AS app' names no image once its variables are "
        "filled in; give the build arg it uses a value"
    )


def test_quotes_in_a_from_image_are_dropped_as_docker_drops_them():
    text = 'ARG V=12\nFROM debian:"${V}-slim" AS base\n'

    assert parse_dockerfile(text, "Dockerfile", {}).stages[0].base == "debian:12-slim"


def test_syntax_only_buildkit_builds_is_listed_with_its_line():
    text = (
        "FROM --platform=$BUILDPLATFORM busybox AS a\n"
        "RUN --mount=type=cache,target=/c true\n"
        "COPY --link --chmod=755 x /x\n"
        "RUN <<EOF\necho hi\nEOF\n"
        "FROM --platform=linux/amd64 busybox\n"
        "COPY --from=a --chown=1 /x /x\n"
    )

    assert parse_dockerfile(text, "Dockerfile", {}).buildkit_only == (
        "line 1: FROM --platform=$BUILDPLATFORM",
        "line 2: RUN --mount",
        "line 3: COPY --link",
        "line 3: COPY --chmod",
        "line 4: a heredoc (RUN <<EOF)",
    )


def test_a_platform_arg_only_buildkit_fills_in_is_listed_unless_declared():
    text = (
        "FROM busybox AS stage-linux\n"
        "FROM stage-$TARGETOS AS pick\n"
        "FROM busybox-${TARGETARCH:-amd64} AS with-default\n"
        "FROM busybox-${TARGETARCH}\n"
    )
    declared = "ARG TARGETOS=linux\nARG TARGETARCH=amd64\n" + text

    assert parse_dockerfile(text, "Dockerfile", {}).buildkit_only == (
        "line 2: FROM uses $TARGETOS, which only BuildKit fills in",
        "line 4: FROM uses $TARGETARCH, which only BuildKit fills in",
    )
    assert parse_dockerfile(declared, "Dockerfile", {}).buildkit_only == ()
