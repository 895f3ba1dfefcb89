"""Reading from docker's own output which build steps came from the cache.

Most cases are real logs, captured from both builders building examples/ (see
tests/data/build_logs/README.md for how); a few hand-written ones cover the edges.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_load_tasks.build_log import BuildLog, BuildStep, parse_build_output

LOGS = Path(__file__).parent / "data" / "build_logs"


def parse_log(name: str) -> BuildLog:
    return parse_build_output((LOGS / f"{name}.txt").read_text(encoding="utf-8"))


def hit(instruction: str) -> BuildStep:
    return BuildStep(instruction, cached=True)


def ran(instruction: str) -> BuildStep:
    return BuildStep(instruction, cached=False)


# The steps of examples/docker/app.Dockerfile as the builders print them: continued
# lines joined with their indentation; BuildKit expands build args, legacy does not.
TOOLCHAIN_COPY = "COPY docker/toolchain/cc /opt/toolchain/bin/cc"
TOOLCHAIN_RUN = (
    "RUN sleep 2  && mkdir -p /opt/toolchain/lib /opt/toolchain/share"
    "  && head -c 3145728 /dev/urandom > /opt/toolchain/lib/libcc1.a"
    "  && head -c 1048576 /dev/urandom > /opt/toolchain/lib/libstd.a"
    '  && echo "fake-cc 12.2" > /opt/toolchain/share/VERSION'
)
TOOLCHAIN_ENV = "ENV PATH=/opt/toolchain/bin:$PATH"
HELLO_TRIGGERS = [
    "FROM cilocal/recipe:hello AS hello (build trigger 1/2)",
    "FROM cilocal/recipe:hello AS hello (build trigger 2/2)",
]
HELLO_RUN = (  # the recipe's ONBUILD RUN, as BuildKit runs it in the hello stage
    "RUN mkdir -p /usr/local/bin"
    '          && sed "s/@HELLO_VERSION@/1.0.0/" /usr/local/share/hello/hello.sh'
    "               > /usr/local/bin/hello"
    "          && chmod 755 /usr/local/bin/hello"
    "          && /usr/local/bin/hello true"
)
DEPS_COPY = "COPY requirements.txt /src/requirements.txt"
DEPS_RUN = (
    "RUN sleep 2  && mkdir -p /opt/deps"
    "  && grep -v '^#' /src/requirements.txt | while IFS='=' read -r name _ version; do"
    '       [ -n "$name" ] || continue;'
    '       mkdir -p "/opt/deps/$name" && echo "$version" > "/opt/deps/$name/VERSION";'
    "     done  && ls /opt/deps"
)
APP_VERSION_ARG = "ARG APP_VERSION=0.0.0"
BUILD_COPY = "COPY src/ /src/app/"
BUILD_RUN = (
    'RUN sleep 1  && mkdir -p /out  && cc -o /out/app -D APP_VERSION="${APP_VERSION}"'
    " /src/app/greet.sh /src/app/main.sh"
)
BUILDKIT_BUILD_RUN = BUILD_RUN.replace("${APP_VERSION}", "1.4.2")
TEST_COPY = "COPY tests/ /src/tests/"
TEST_RUN = "RUN sleep 1 && sh /src/tests/test_app.sh /out/app"
RUNTIME_LABEL = 'LABEL org.opencontainers.image.version="${APP_VERSION}"'
RUNTIME_COPY_HELLO = "COPY --from=hello /usr/local/bin/hello /usr/local/bin/hello"
RUNTIME_COPY_APP = "COPY --from=build /out/app /usr/local/bin/app"
RUNTIME_ENTRYPOINT = 'ENTRYPOINT ["/usr/local/bin/hello"]'
RUNTIME_CMD = 'CMD ["app"]'

# The stage BuildKit names each step with: the final stage of app.Dockerfile
# has no name, so it is "stage-5". The legacy builder names none.
STAGE_OF = {
    TOOLCHAIN_COPY: "toolchain", TOOLCHAIN_RUN: "toolchain", HELLO_RUN: "hello",
    DEPS_COPY: "deps", DEPS_RUN: "deps", BUILD_COPY: "build", BUILDKIT_BUILD_RUN: "build",
    TEST_COPY: "test", TEST_RUN: "test",
    RUNTIME_COPY_HELLO: "stage-5", RUNTIME_COPY_APP: "stage-5",
}  # fmt: skip


def bk_hit(instruction: str) -> BuildStep:
    """A BuildKit step of app.Dockerfile found in the cache, with its stage."""
    return BuildStep(instruction, cached=True, stage=STAGE_OF[instruction])


def bk_ran(instruction: str) -> BuildStep:
    """A BuildKit step of app.Dockerfile that ran, with its stage."""
    return BuildStep(instruction, cached=False, stage=STAGE_OF[instruction])


# The legacy builder builds every stage up to the target, test included.
LEGACY_APP_STEPS = [
    TOOLCHAIN_COPY, TOOLCHAIN_RUN, TOOLCHAIN_ENV,
    *HELLO_TRIGGERS,
    DEPS_COPY, DEPS_RUN,
    APP_VERSION_ARG, BUILD_COPY, BUILD_RUN,
    TEST_COPY, TEST_RUN,
    APP_VERSION_ARG, RUNTIME_LABEL, RUNTIME_COPY_HELLO, RUNTIME_COPY_APP,
    RUNTIME_ENTRYPOINT, RUNTIME_CMD,
]  # fmt: skip


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param(
            "legacy-cold",
            [ran(step) for step in LEGACY_APP_STEPS],
            id="a cold build runs every step",
        ),
        pytest.param(
            "legacy-warm",
            [hit(step) for step in LEGACY_APP_STEPS],
            id="a second build finds every step in the cache",
        ),
        pytest.param(
            "legacy-cache-from-pulled",
            [hit(step) for step in LEGACY_APP_STEPS],
            id="stage images pulled for --cache-from give a hit at every step",
        ),
        pytest.param(
            "legacy-src-change",
            [
                hit(TOOLCHAIN_COPY),
                hit(TOOLCHAIN_RUN),
                hit(TOOLCHAIN_ENV),
                *map(hit, HELLO_TRIGGERS),
                hit(DEPS_COPY),
                hit(DEPS_RUN),
                hit(APP_VERSION_ARG),
                ran(BUILD_COPY),
                ran(BUILD_RUN),
                ran(TEST_COPY),
                ran(TEST_RUN),
                hit(APP_VERSION_ARG),
                hit(RUNTIME_LABEL),
                hit(RUNTIME_COPY_HELLO),
                ran(RUNTIME_COPY_APP),
                ran(RUNTIME_ENTRYPOINT),
                ran(RUNTIME_CMD),
            ],  # fmt: skip
            id="a source change reruns the steps from the sources' COPY on",
        ),
        pytest.param(
            "legacy-target-test-after-src-change",
            [hit(step) for step in LEGACY_APP_STEPS[:12]],
            id="the test stage was already built on the way to the last stage",
        ),
        pytest.param(
            "legacy-failing-test",
            [ran(step) for step in LEGACY_APP_STEPS[:12]],
            id="a failing step counts as run",
        ),
    ],
)
def test_the_legacy_builder_output_gives_each_step_and_whether_it_was_cached(log, expected):
    assert list(parse_log(log).steps) == expected


# BuildKit prints its vertices in the order it gets to them, which varies from run
# to run, and has no vertex for metadata-only instructions (ENV, ARG, LABEL, CMD...).
@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param(
            "buildkit-cold",
            [
                bk_ran(TOOLCHAIN_COPY),
                bk_ran(HELLO_RUN),
                bk_ran(RUNTIME_COPY_HELLO),
                bk_ran(TOOLCHAIN_RUN),
                bk_ran(DEPS_COPY),
                bk_ran(DEPS_RUN),
                bk_ran(BUILD_COPY),
                bk_ran(BUILDKIT_BUILD_RUN),
                bk_ran(RUNTIME_COPY_APP),
            ],  # fmt: skip
            id="a cold build runs every step the last stage needs",
        ),
        pytest.param(
            "buildkit-warm",
            [
                bk_hit(DEPS_RUN),
                bk_hit(RUNTIME_COPY_HELLO),
                bk_hit(BUILDKIT_BUILD_RUN),
                bk_hit(BUILD_COPY),
                bk_hit(TOOLCHAIN_RUN),
                bk_hit(DEPS_COPY),
                bk_hit(HELLO_RUN),
                bk_hit(TOOLCHAIN_COPY),
                bk_hit(RUNTIME_COPY_APP),
            ],  # fmt: skip
            id="a second build finds every step in the cache",
        ),
        pytest.param(
            "buildkit-cache-from-pulled",
            [
                bk_hit(DEPS_COPY),
                bk_hit(DEPS_RUN),
                bk_hit(HELLO_RUN),
                bk_hit(TOOLCHAIN_COPY),
                bk_hit(RUNTIME_COPY_HELLO),
                bk_hit(BUILD_COPY),
                bk_hit(TOOLCHAIN_RUN),
                bk_hit(BUILDKIT_BUILD_RUN),
                bk_hit(RUNTIME_COPY_APP),
            ],  # fmt: skip
            id="inline-cache stage images pulled for --cache-from give hits everywhere",
        ),
        pytest.param(
            "buildkit-src-change",
            [
                bk_hit(TOOLCHAIN_COPY),
                bk_hit(DEPS_COPY),
                bk_hit(TOOLCHAIN_RUN),
                bk_hit(DEPS_RUN),
                bk_ran(BUILD_COPY),
                bk_ran(BUILDKIT_BUILD_RUN),
                bk_hit(HELLO_RUN),
                bk_hit(RUNTIME_COPY_HELLO),
                bk_ran(RUNTIME_COPY_APP),
            ],  # fmt: skip
            id="a source change reruns the build stage and the copy of its artifact",
        ),
        pytest.param(
            "buildkit-target-test-after-src-change",
            [
                bk_hit(TOOLCHAIN_COPY),
                bk_hit(BUILD_COPY),
                bk_hit(DEPS_COPY),
                bk_hit(TOOLCHAIN_RUN),
                bk_hit(DEPS_RUN),
                bk_hit(BUILDKIT_BUILD_RUN),
                bk_ran(TEST_COPY),
                bk_ran(TEST_RUN),
            ],  # fmt: skip
            id="the test stage is built only when it is the target",
        ),
        pytest.param(
            "buildkit-failing-test",
            [
                bk_ran(TOOLCHAIN_COPY),
                bk_ran(TOOLCHAIN_RUN),
                bk_ran(DEPS_COPY),
                bk_ran(DEPS_RUN),
                bk_ran(BUILD_COPY),
                bk_ran(BUILDKIT_BUILD_RUN),
                bk_ran(TEST_COPY),
                bk_ran(TEST_RUN),
            ],  # fmt: skip
            id="a failing step counts as run",
        ),
    ],
)
def test_buildkit_plain_output_gives_each_step_and_whether_it_was_cached(log, expected):
    assert list(parse_log(log).steps) == expected


@pytest.mark.parametrize(
    ("log", "cached"),
    [
        pytest.param("legacy-warm", True, id="legacy second build"),
        pytest.param("legacy-cache-from-pulled", True, id="legacy from pulled images"),
        pytest.param("legacy-docker20-target-hello-warm", True, id="legacy with the 20.10 client"),
        pytest.param("buildkit-warm", True, id="BuildKit second build"),
        pytest.param("buildkit-cache-from-pulled", True, id="BuildKit from pulled images"),
        pytest.param("legacy-cold", False, id="legacy cold build"),
        pytest.param("legacy-src-change", False, id="legacy after a source change"),
        pytest.param("buildkit-cold", False, id="BuildKit cold build"),
        pytest.param("buildkit-src-change", False, id="BuildKit after a source change"),
        pytest.param("buildkit-failing-test", False, id="BuildKit failed build"),
    ],
)
def test_a_build_is_cached_only_when_every_step_came_from_the_cache(log, cached):
    assert parse_log(log).cached is cached


@pytest.mark.parametrize(
    ("log", "executed"),
    [
        pytest.param(
            "legacy-src-change",
            [
                BUILD_COPY,
                BUILD_RUN,
                TEST_COPY,
                TEST_RUN,
                RUNTIME_COPY_APP,
                RUNTIME_ENTRYPOINT,
                RUNTIME_CMD,
            ],  # fmt: skip
            id="legacy",
        ),
        pytest.param(
            "buildkit-src-change",
            [BUILD_COPY, BUILDKIT_BUILD_RUN, RUNTIME_COPY_APP],
            id="BuildKit",
        ),
    ],
)
def test_executed_lists_only_the_steps_that_ran(log, executed):
    step = bk_ran if log.startswith("buildkit") else ran
    assert parse_log(log).executed == tuple(map(step, executed))


def test_legacy_onbuild_triggers_are_steps_of_the_from_line_that_pulls_them_in():
    # Built with the 20.10 client: no deprecation banner, same steps.
    cold = parse_log("legacy-docker20-target-hello")
    warm = parse_log("legacy-docker20-target-hello-warm")

    assert list(cold.steps[-2:]) == [ran(trigger) for trigger in HELLO_TRIGGERS]
    assert list(warm.steps[-2:]) == [hit(trigger) for trigger in HELLO_TRIGGERS]


def test_legacy_onbuild_triggers_are_cached_up_to_the_first_one_that_misses():
    # The COPY trigger prints nothing at all when it runs: only the count of
    # "Using cache" lines tells how many triggers were cached.
    triggers = [f"FROM exp/notes AS notes (build trigger {i}/3)" for i in (1, 2, 3)]
    after_rebuild = "RUN wc -c /notes/notes.txt"

    assert list(parse_log("legacy-onbuild-copy-cold").steps) == [
        *map(ran, triggers),
        ran(after_rebuild),
    ]
    assert list(parse_log("legacy-onbuild-copy-changed").steps) == [
        hit(triggers[0]),
        ran(triggers[1]),
        ran(triggers[2]),
        ran(after_rebuild),
    ]


def test_buildkit_prints_each_onbuild_trigger_as_a_step_of_its_own():
    assert list(parse_log("buildkit-onbuild-copy-changed").steps) == [
        hit("RUN mkdir /notes"),
        ran("COPY notes.txt /notes/"),
        ran("RUN cat /notes/notes.txt"),
        ran("RUN wc -c /notes/notes.txt"),
    ]


def test_a_recipe_images_own_onbuild_lines_are_steps_only_for_the_legacy_builder():
    # The legacy builder commits an image for each ONBUILD line; BuildKit only
    # records them in the image config.
    onbuild_run = "ONBUILD " + HELLO_RUN.replace("1.0.0", "${HELLO_VERSION}")
    assert list(parse_log("legacy-recipe").steps) == [
        ran("COPY hello.sh /usr/local/share/hello/hello.sh"),
        ran("ONBUILD ARG HELLO_VERSION=1.0.0"),
        ran(onbuild_run),
    ]
    assert list(parse_log("buildkit-recipe").steps) == [
        ran("COPY hello.sh /usr/local/share/hello/hello.sh"),
    ]


def test_a_buildkit_vertex_printed_again_is_one_step():
    text = (LOGS / "buildkit-parallel-stages.txt").read_text(encoding="utf-8")
    left_run = 'RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "left $i"; sleep 1; done'
    assert text.count(f"] {left_run}\n") == 2  # the log does repeat the vertex

    assert list(parse_build_output(text).steps) == [
        BuildStep(left_run.replace("left", "right"), cached=False, stage="right"),
        BuildStep(left_run, cached=False, stage="left"),
        BuildStep("COPY --from=left /bin/busybox /left", cached=True, stage="stage-2"),
        BuildStep("COPY --from=right /bin/busybox /right", cached=True, stage="stage-2"),
    ]


def test_compose_buildkit_output_with_the_service_in_each_vertex_is_understood():
    # Both services were built at once; each step the two share ran in one build
    # and was CACHED in the other. The stage is the vertex's last word before
    # the step count ("[app build 1/2]"), not the service.
    assert list(parse_log("buildkit-compose-cold").steps) == [
        bk_ran(TOOLCHAIN_COPY), bk_ran(HELLO_RUN), bk_ran(RUNTIME_COPY_HELLO),
        bk_ran(TOOLCHAIN_RUN), bk_ran(DEPS_COPY), bk_ran(DEPS_RUN), bk_ran(BUILD_COPY),
        bk_ran(BUILDKIT_BUILD_RUN),
        bk_hit(BUILD_COPY), bk_hit(DEPS_COPY), bk_hit(BUILDKIT_BUILD_RUN), bk_hit(DEPS_RUN),
        bk_hit(TOOLCHAIN_COPY), bk_hit(TOOLCHAIN_RUN),
        bk_ran(TEST_COPY), bk_ran(RUNTIME_COPY_APP), bk_ran(TEST_RUN),
    ]  # fmt: skip


@pytest.mark.parametrize("log", ["legacy-cold", "legacy-warm", "legacy-recipe"])
def test_the_legacy_builder_names_no_stage_for_its_steps(log):
    assert {step.stage for step in parse_log(log).steps} == {None}


def test_a_buildkit_step_without_a_stage_in_its_vertex_has_none():
    # A single-stage Dockerfile: BuildKit prints "[2/2] RUN ...".
    assert [step.stage for step in parse_log("buildkit-recipe").steps] == [None]


@pytest.mark.parametrize(
    "log",
    [path.stem for path in sorted(LOGS.glob("*.txt"))],
)
def test_from_lines_and_buildkit_housekeeping_are_never_steps(log):
    for step in parse_log(log).steps:
        if not step.instruction.endswith(")"):  # "FROM x (build trigger 1/2)" is
            assert not step.instruction.startswith("FROM")
        assert not step.instruction.startswith("ARG BASE_IMAGE")
        assert "[internal]" not in step.instruction
        assert not step.instruction.startswith(("exporting", "importing", "naming"))


# -- hand-written edge cases -----------------------------------------------------

LEGACY_BANNER = """\
DEPRECATED: The legacy builder is deprecated and will be removed in a future release.
            Install the buildx component to build images with BuildKit:
            https://docs.docker.com/go/buildx/

"""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty output"),
        pytest.param("sha256:3c3e2c9b4d1f\n", id="quiet build printing only an id"),
        pytest.param(
            "#1 [internal] load build definition from Dockerfile\n"
            "#1 DONE 0.0s\n"
            "#2 [internal] load metadata for docker.io/library/nothing:latest\n"
            "#2 ERROR: pull access denied for nothing\n",
            id="BuildKit build failing before its first step",
        ),
        pytest.param(LEGACY_BANNER, id="only the legacy deprecation banner"),
    ],
)
def test_output_without_steps_is_not_a_cached_build(text):
    log = parse_build_output(text)

    assert log.steps == ()
    assert log.executed == ()
    assert log.cached is False


def test_the_newer_clients_deprecation_banner_changes_nothing():
    text = (LOGS / "legacy-docker20-target-hello-warm.txt").read_text(encoding="utf-8")

    assert parse_build_output(LEGACY_BANNER + text) == parse_build_output(text)


def test_windows_line_endings_read_the_same():
    text = (LOGS / "legacy-src-change.txt").read_text(encoding="utf-8")

    assert parse_build_output(text.replace("\n", "\r\n")) == parse_build_output(text)


def test_legacy_run_output_that_looks_like_a_cache_hit_is_not_one():
    log = parse_build_output(
        "Step 1/2 : FROM cilocal/busybox:latest\n"
        " ---> c69c4fe9dd90\n"
        "Step 2/2 : RUN echo ' ---> Using cache'\n"
        " ---> Running in 1c504a203cc4\n"
        " ---> Using cache\n"
        "Removing intermediate container 1c504a203cc4\n"
        " ---> 5e7b1c0a8f3d\n"
    )

    assert log.steps == (ran("RUN echo ' ---> Using cache'"),)


def test_legacy_single_build_trigger_is_read():
    log = parse_build_output(
        "Step 1/1 : FROM exp/one\n"
        "# Executing 1 build trigger\n"
        " ---> Using cache\n"
        " ---> 9b8b84832496\n"
    )

    assert log.steps == (hit("FROM exp/one (build trigger 1/1)"),)


def test_buildkit_run_output_that_looks_like_a_legacy_step_does_not_confuse_detection():
    log = parse_build_output(
        "#5 [2/2] RUN echo 'Step 1/2 : FROM x'\n#5 0.052 Step 1/2 : FROM x\n#5 DONE 0.1s\n"
    )

    assert log.steps == (ran("RUN echo 'Step 1/2 : FROM x'"),)


def test_newer_buildx_plain_output_without_digests_is_read():
    # The shape of buildx 0.10+ output: a "#0" line first, no "sha256:" lines.
    log = parse_build_output(
        '#0 building with "default" instance using docker driver\n'
        "\n"
        "#1 [internal] load build definition from Dockerfile\n"
        "#1 transferring dockerfile: 95B done\n"
        "#1 DONE 0.0s\n"
        "\n"
        "#4 [1/3] FROM docker.io/cilocal/busybox:latest\n"
        "#4 CACHED\n"
        "\n"
        "#5 [2/3] RUN make\n"
        "#5 CACHED\n"
        "\n"
        "#6 [3/3] COPY . /src\n"
        "#6 DONE 0.1s\n"
        "\n"
        "#7 exporting to image\n"
        "#7 exporting layers 0.1s done\n"
        "#7 writing image sha256:0f3c done\n"
        "#7 DONE 0.1s\n"
    )

    assert log.steps == (hit("RUN make"), ran("COPY . /src"))


def test_a_finished_build_of_a_stage_that_is_only_a_from_line_ran_nothing_so_is_cached():
    log = parse_build_output(
        "Sending build context to Docker daemon  2.048kB\n"
        "Step 1/1 : FROM cilocal/busybox:latest\n"
        " ---> c69c4fe9dd90\n"
        "Successfully built c69c4fe9dd90\n"
    )

    assert (log.steps, log.cached) == ((), True)


def test_buildkit_step_times_are_read_for_the_steps_that_ran():
    log = parse_build_output(
        "#5 [build 1/2] COPY src/ /src/\n#5 DONE 0.1s\n"
        "#6 [build 2/2] RUN make\n#6 0.512 compiling\n#6 DONE 3.1s\n"
        "#7 [stage-2 2/2] COPY --from=build /out /out\n#7 CACHED\n"
        "#8 writing image sha256:abc done\n"
    )

    assert [(s.instruction, s.seconds) for s in log.steps] == [
        ("COPY src/ /src/", 0.1),
        ("RUN make", 3.1),
        ("COPY --from=build /out /out", None),
    ]
