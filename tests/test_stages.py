"""``stages.parse_dockerfile``: the stages of a Dockerfile and what each needs."""

from pathlib import Path

import pytest

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.stages import Stage, expand_args, parse_dockerfile, platform_args, pruned_text

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
        Stage(0, "base", "busybox:1.36", (), 7, end_line=10),
        Stage(1, "hello", "cilocal/recipe:hello", (), 11, end_line=12),
        Stage(2, "deps", "base", ("base",), 13, end_line=15),
        Stage(3, "assets", "busybox:1.36", (), 16, end_line=18),
        Stage(
            4,
            "build",
            "deps",
            ("deps", "assets"),
            19,
            end_line=23,
            buildkit_only=("line 21: RUN --mount",),
        ),
        Stage(5, None, "busybox:1.36", ("hello", "build"), 24, end_line=26, uses_index=True),
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

    assert dockerfile.stages[1] == Stage(1, None, "0", (), 2, end_line=2)


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
        pytest.param(
            ["f", "d", "a"], ["a", "b", "#2", "c", "d", "f"], id="overlapping targets once each"
        ),
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
        s.key: s.base for s in parse("global_args.Dockerfile", {"BASE": "${REGISTRY}/x"}).stages
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


def test_buildkit_only_syntax_is_kept_per_stage_and_counted_for_the_stages_asked_about():
    text = (
        "FROM busybox AS a\n"
        "RUN --mount=type=cache,target=/c true\n"
        "FROM busybox AS b\n"
        "COPY --link x /x\n"
        "FROM busybox AS c\n"
    )

    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    assert [s.buildkit_only for s in dockerfile.stages] == [
        ("line 2: RUN --mount",),
        ("line 4: COPY --link",),
        (),
    ]
    assert dockerfile.header_buildkit_only == ()
    assert dockerfile.buildkit_only_in([dockerfile.find("b"), dockerfile.find("c")]) == (
        "line 4: COPY --link",
    )
    assert dockerfile.buildkit_only_in([dockerfile.find("c")]) == ()
    assert dockerfile.buildkit_only == ("line 2: RUN --mount", "line 4: COPY --link")


def test_each_stage_ends_on_the_line_before_the_next_from_or_on_the_last_line():
    dockerfile = parse("continuation_and_heredoc.Dockerfile")

    assert [(s.key, s.line, s.end_line) for s in dockerfile.stages] == [
        ("first", 1, 9),
        ("second", 10, 10),
    ]
    assert dockerfile.header_end == 0


def test_a_stage_referring_to_another_by_number_is_marked():
    dockerfile = parse("dependencies.Dockerfile")

    assert [s.key for s in dockerfile.stages if s.uses_index] == ["c"]


def test_a_mount_from_a_stage_number_also_refers_to_it_by_number():
    text = "FROM busybox AS a\nFROM busybox\nRUN --mount=type=bind,from=0,target=/a true\n"

    assert parse_dockerfile(text, "Dockerfile", {}).last.uses_index is True


# -- platform ARGs (BuildKit) ---------------------------------------------------


def test_platform_args_are_the_daemons_platform_for_build_and_target():
    assert platform_args("linux", "arm64", "v8") == {
        "BUILDPLATFORM": "linux/arm64/v8",
        "BUILDOS": "linux",
        "BUILDARCH": "arm64",
        "BUILDVARIANT": "v8",
        "TARGETPLATFORM": "linux/arm64/v8",
        "TARGETOS": "linux",
        "TARGETARCH": "arm64",
        "TARGETVARIANT": "v8",
    }
    assert platform_args("linux", "amd64")["TARGETPLATFORM"] == "linux/amd64"


def test_a_from_using_a_platform_arg_resolves_with_the_platform_given():
    text = (
        "FROM busybox AS base-amd64\n"
        "FROM busybox AS base-arm64\n"
        "FROM base-$TARGETARCH AS app\n"
        "FROM --platform=$BUILDPLATFORM busybox AS tools\n"
    )

    dockerfile = parse_dockerfile(text, "Dockerfile", {}, platform_args("linux", "arm64"))

    app = dockerfile.find("app")
    assert (app.base, app.needs) == ("base-arm64", ("base-arm64",))
    # BuildKit-only for the classic builder; what the builder is, the plan knows.
    assert dockerfile.buildkit_only == ("line 4: FROM --platform=$BUILDPLATFORM",)


def test_a_from_using_a_platform_arg_stays_buildkit_only_without_a_platform():
    text = "FROM busybox AS base-amd64\nFROM base-$TARGETARCH AS app\n"

    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    app = dockerfile.find("app")
    assert (app.base, app.needs) == ("base-", ())
    assert app.buildkit_only == ("line 2: FROM uses $TARGETARCH, which only BuildKit fills in",)


def test_a_global_arg_declaring_a_platform_arg_without_a_value_keeps_the_platforms():
    text = "ARG TARGETARCH\nFROM busybox-$TARGETARCH\n"

    dockerfile = parse_dockerfile(text, "Dockerfile", {}, platform_args("linux", "arm64"))

    assert dockerfile.last.base == "busybox-arm64"


# -- pruned_text: a Dockerfile without the stages a target does not need -------


def pruned(text, target, build_args=None):
    dockerfile = parse_dockerfile(text, "Dockerfile", build_args or {})
    keep = dockerfile.needed_for([dockerfile.find(target)])
    return pruned_text(text, dockerfile, keep)


def test_pruned_text_keeps_directives_global_args_and_the_needed_stages_as_written():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox:1.36\n"
        "\n"
        "FROM ${BASE} AS base\n"
        "RUN echo base\n"
        "\n"
        "FROM ${BASE} AS test\n"
        "RUN echo test \\\n"
        "  && false\n"
        "\n"
        "FROM base AS app\n"
        "COPY --from=base /x /x\n"
    )

    assert pruned(text, "app") == (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox:1.36\n"
        "\n"
        "FROM ${BASE} AS base\n"
        "RUN echo base\n"
        "\n"
        "FROM base AS app\n"
        "COPY --from=base /x /x\n"
    )


def test_pruned_text_of_a_stage_needing_only_itself_is_the_header_and_that_stage():
    text = "ARG A=1\nFROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM a\n"

    assert pruned(text, "b") == "ARG A=1\nFROM busybox AS b\nRUN b\n"


def test_pruned_text_keeps_crlf_line_endings():
    text = "ARG A=1\r\nFROM busybox AS a\r\nRUN a\r\nFROM busybox AS b\r\nRUN b\r\nFROM a\r\nRUN c"

    assert pruned(text, "#2") == ("ARG A=1\r\nFROM busybox AS a\r\nRUN a\r\nFROM a\r\nRUN c\n")


def test_pruned_text_of_an_escape_backtick_file_keeps_the_directive_and_continuations():
    text = (DOCKERFILES / "escape_backtick.Dockerfile").read_text()
    text += "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022 AS other\n"
    text += "FROM tools AS last\nRUN echo C:\\last `\n    from x as z\n"

    result = pruned(text, "last")

    assert result == (
        "# escape=`\n"
        "# With a backtick escape, a backslash is a plain character (Windows paths) and\n"
        "# a backtick continues the line: the FROM in the continuation is RUN text.\n"
        "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022 AS tools\n"
        "RUN echo C:\\tools `\n"
        "    from x as y\n"
        "FROM tools AS last\n"
        "RUN echo C:\\last `\n"
        "    from x as z\n"
    )
    # Docker reads the copy as the same stages.
    again = parse_dockerfile(result, "Dockerfile", {})
    assert [(s.key, s.base) for s in again.stages] == [
        ("tools", "mcr.microsoft.com/windows/nanoserver:ltsc2022"),
        ("last", "tools"),
    ]


def test_pruned_text_without_a_final_newline_ends_its_last_line():
    text = "FROM busybox AS a\nFROM busybox AS b\nFROM a\nRUN x"

    assert pruned(text, "#2") == "FROM busybox AS a\nFROM a\nRUN x\n"


def test_pruned_text_with_nothing_to_drop_is_none():
    text = "FROM busybox AS a\nFROM a\n"

    assert pruned(text, "#1") is None


def test_pruned_text_is_none_when_a_kept_stage_refers_by_number_behind_a_dropped_one():
    text = "FROM busybox AS a\nFROM busybox AS unused\nFROM busybox\nCOPY --from=0 /a /a\n"

    assert pruned(text, "#2") is None


def test_pruned_text_keeps_a_stage_referring_by_number_before_any_dropped_one():
    text = (
        "FROM busybox AS a\nFROM busybox AS b\nCOPY --from=0 /a /a\n"
        "FROM busybox AS unused\nFROM b\n"
    )

    assert pruned(text, "#3") == (
        "FROM busybox AS a\nFROM busybox AS b\nCOPY --from=0 /a /a\nFROM b\n"
    )


def test_pruned_text_of_the_sample_projects_build_stage_reads_as_the_same_stages():
    text = (SHOP / "shop.Dockerfile").read_text()
    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    result = pruned_text(text, dockerfile, dockerfile.needed_for([dockerfile.find("build")]))

    again = parse_dockerfile(result, "Dockerfile", {})
    assert [(s.key, s.base, s.needs) for s in again.stages] == [
        ("base", "busybox:1.36", ()),
        ("deps", "base", ("base",)),
        ("assets", "busybox:1.36", ()),
        ("build", "deps", ("deps", "assets")),
    ]


def test_only_a_newline_ends_a_line_as_in_buildkit_so_a_form_feed_stays_in_its_line():
    text = (
        "FROM busybox:1.36 AS a\nRUN printf 'x\x0cy' > /a\n"
        "FROM busybox:1.36 AS b\n"
        "FROM busybox:1.36\nCOPY --from=a /a /a\n"
    )
    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    pruned = pruned_text(text, dockerfile, dockerfile.needed_for([dockerfile.last]))

    assert [s.end_line for s in dockerfile.stages] == [2, 3, 5]
    assert pruned == (
        "FROM busybox:1.36 AS a\nRUN printf 'x\x0cy' > /a\nFROM busybox:1.36\nCOPY --from=a /a /a\n"
    )


def test_a_named_context_stands_in_for_the_stage_of_its_name():
    text = (
        "FROM busybox:1.36 AS tools\nRUN make-tools\n"
        "FROM busybox:1.36 AS build\nCOPY --from=tools /t /t\n"
        "FROM tools AS final\nCOPY --from=0 /x /x\n"
    )

    plain = parse_dockerfile(text, "Dockerfile", {})
    with_context = parse_dockerfile(text, "Dockerfile", {}, contexts=["Tools"])

    assert [s.needs for s in plain.stages] == [(), ("tools",), ("tools",)]
    # By name the context is read; by number it is still the stage.
    assert [s.needs for s in with_context.stages] == [(), (), ("tools",)]
    assert keys(with_context.needed_for([with_context.find("build")])) == ["build"]


def test_a_reused_stage_name_is_refused_for_classic_and_the_later_stage_s_for_buildkit():
    text = "FROM busybox:1.36 AS a\nRUN one\nFROM busybox:1.37 AS a\nFROM a\n"

    with pytest.raises(ConfigError, match="stage name 'a' is already used at line 1"):
        parse_dockerfile(text, "Dockerfile", {})
    dockerfile = parse_dockerfile(text, "Dockerfile", {}, reused_names=True)

    assert keys(dockerfile.stages) == ["#0", "a", "#2"]
    assert dockerfile.last.needs == ("a",)
    assert dockerfile.notes == (
        "Dockerfile:1: stage name 'a' is used again at line 3; BuildKit builds the "
        "later stage for that name, so this one is stage #0",
    )


def test_an_unknown_instruction_is_an_error_naming_file_and_line():
    # A continued RUN whose line lost its trailing backslash: BuildKit's
    # parser reads "npm" as an instruction, docker refuses it when building.
    text = "FROM busybox AS build\nRUN echo a && \\\n    echo b\nnpm run build\nFROM build\n"

    with pytest.raises(ConfigError) as error:
        parse_dockerfile(text, "web/Dockerfile", {})

    assert str(error.value) == (
        "web/Dockerfile:4: unknown instruction 'npm'; docker refuses it: fix the line "
        "(a continued line missing its trailing '\\'?)"
    )


def test_every_instruction_docker_knows_passes_in_any_case():
    text = (
        "ARG BASE=busybox\nfrom $BASE AS a\nmaintainer me\nlabel a=b\nenv A=1\nworkdir /x\n"
        "add a /a\ncopy a /b\nrun true\nuser 1\nvolume /v\nexpose 80\nstopsignal SIGTERM\n"
        'healthcheck NONE\nshell ["/bin/sh", "-c"]\nonbuild RUN true\nentrypoint ["sh"]\n'
        'cmd ["true"]\n'
    )

    assert [s.key for s in parse_dockerfile(text, "Dockerfile", {}).stages] == ["a"]


def test_a_syntax_directive_is_named_in_a_note_and_lets_its_frontend_judge_instructions():
    text = "# escape=`\n# syntax=docker/dockerfile:1.4\nFROM busybox AS a\nFOO bar\n"

    dockerfile = parse_dockerfile(text, "Dockerfile", {})

    assert dockerfile.notes == (
        "Dockerfile:2: '# syntax=docker/dockerfile:1.4' asks BuildKit to build with that "
        "frontend image, which it pulls from its registry at build time: the daemon must "
        "reach it (the classic builder ignores the line)",
    )


def test_a_syntax_comment_after_the_first_instruction_is_no_directive():
    text = "FROM busybox AS a\n# syntax=docker/dockerfile:1\nRUN true\n"

    assert parse_dockerfile(text, "Dockerfile", {}).notes == ()


def test_a_bare_from_flag_naming_no_stage_is_named_with_the_stages_there_are():
    text = (
        "FROM busybox AS toolchain\n"
        "FROM toolchain AS build\n"
        "COPY --from=toolchan /a /a\n"  # a typo
        "COPY --from=nosuchstage /b /b\n"  # no stage, no image either
        "RUN --mount=type=bind,from=nosuchstage,target=/c true\n"
        "COPY --from=busybox:1.36 /d /d\n"  # plainly an image: no note
        "COPY --from=registry.example.com/tools /e /e\n"
        "COPY --from=toolchain /f /f\n"
    )

    assert parse_dockerfile(text, "Dockerfile", {}).notes == (
        "Dockerfile:3: --from=toolchan names no earlier stage, so docker pulls it as an "
        "image; did you mean stage 'toolchain'?",
        "Dockerfile:4: --from=nosuchstage names no earlier stage, so docker pulls it as an "
        "image; if a stage was meant, the earlier ones are toolchain",
        "Dockerfile:5: --from=nosuchstage names no earlier stage, so docker pulls it as an "
        "image; if a stage was meant, the earlier ones are toolchain",
    )


def test_a_from_flag_naming_a_named_context_gets_no_note():
    text = "FROM busybox AS a\nCOPY --from=tools /x /x\n"

    assert parse_dockerfile(text, "Dockerfile", {}, contexts=["tools"]).notes == ()


def test_a_from_one_letter_off_an_earlier_stage_is_named_as_a_likely_typo():
    text = "FROM busybox AS deps\nFROM dpes AS build\nFROM alpine AS tools\nFROM node AS nodes\n"

    assert parse_dockerfile(text, "Dockerfile", {}).notes == (
        "Dockerfile:2: FROM dpes names no earlier stage, so docker pulls it as an image; "
        "did you mean stage 'deps'?",
    )
