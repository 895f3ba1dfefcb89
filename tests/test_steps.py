"""``steps``: the helpers that carry out a plan without running docker.

``registry_trouble`` reads compose's pull output; ``write_files`` writes the
generated compose files into a work directory that may be the user's own.
``push``, ``pull`` and ``build`` run against a stand-in runner that answers as
docker and the registry would.
The connection-refused and missing-cache lines below are what compose 2.40
printed against docker 20.10 in the end-to-end setup; the others follow
docker's wording for those failures.
"""

import json
import os
from pathlib import Path

import pytest
import yaml

from ci_load_tasks import steps
from ci_load_tasks.builder import DockerFacts, choose
from ci_load_tasks.errors import CommandError, ConfigError
from ci_load_tasks.plan import make_plan, make_plans
from ci_load_tasks.report import Report, StageResult
from ci_load_tasks.runner import Result, Started
from ci_load_tasks.settings import Settings
from ci_load_tasks.steps import (
    GENERATED_MARK,
    build,
    cancel_pending,
    finish_registry_check,
    pull,
    push,
    registry_trouble,
    run_step,
    write_files,
)

DATA = Path(__file__).resolve().parent / "data" / "unit"
LAYERS_CONFIG = yaml.safe_load((DATA / "rendered" / "layers.yml").read_text())
LAYERS_DOCKERFILE = (DATA / "compose" / "layers" / "Dockerfile").read_text()
LAYERS_DOCKERFILE_PATH = "/srv/layers/Dockerfile"  # as the rendered config names it

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


def layers_plan(workdir, cache_repo="team/cache", **flags):
    settings = Settings.resolve(
        {},
        {
            "compose_files": ["/srv/layers/docker-compose.yml"],
            "service": "app",
            "cache_repo": cache_repo,
            **flags,
        },
    )
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


# -- push, pull and build against a stand-in runner ------------------------------


class StandInRunner:
    """Answers as docker would, from ``local`` (name -> image id), ``registry``
    (name -> image id held there, or a failing answer) and ``builds`` (stage
    -> build output); records every command and line said."""

    def __init__(self, plan, local=(), registry=(), builds=(), push_failures=0, dry=False):
        self.plan = plan
        self.local = dict(local)
        self.registry = dict(registry)
        self.builds = dict(builds)
        self.push_failures = push_failures
        self.dry = dry
        self.ran = []
        self.asked = []
        self.said = []
        self.shown_files = []
        self.events = []  # registry asked / answer taken, builds run, in order

    def say(self, text):
        self.said.append(text)

    def warn(self, text):
        self.said.append(f"warning: {text}")

    def show_file(self, path, text):
        self.shown_files.append(path)

    def run(self, argv, *, changes=True, env=None, **_):
        argv = tuple(argv)
        if self.dry and changes:
            self.ran.append(argv)
            return Result(argv, 0, "", 0.0, ran=False)
        self.ran.append(argv)
        if argv == self.plan.list_images:
            output = "".join(f"{name} {image_id}\n" for name, image_id in self.local.items())
            return Result(argv, 0, output, 0.0)
        if "push" in argv and self.push_failures:
            self.push_failures -= 1
            raise CommandError("push failed", argv, 1, "received unexpected HTTP status: 500")
        for item in self.plan.builds:
            if argv == item.argv:
                self.events.append(f"built {item.name}")
                return Result(argv, 0, self.builds.get(item.name, FINISHED), 0.0)
        return Result(argv, 0, "", 0.0)

    def start_all(self, commands):
        # The answer is taken when waited for: self.events tells when.
        self.events.append("registry asked")
        answers = self.run_all(commands)

        def answer():
            self.events.append("registry answer taken")
            return answers

        return Started(answer, lambda: None)

    def run_all(self, commands):
        answers = []
        for argv in commands:
            self.asked.append(tuple(argv))
            held = self.registry.get(argv[-1], "manifest unknown")
            if held.startswith("sha256:"):
                answers.append((0, json.dumps({"config": {"digest": held}})))
            else:
                answers.append((1, held))
        return answers


# What BuildKit prints at the end of every finished build.
FINISHED = "#9 exporting to image\n#9 writing image sha256:0123 done\n"
BUILDKIT = choose("buildkit", DockerFacts("20.10.24", "20.10.24"))


def buildkit_layers_plan(workdir):
    settings = Settings.resolve(
        {},
        {
            "compose_files": ["/srv/layers/docker-compose.yml"],
            "service": "app",
            "cache_repo": "127.0.0.1:5000/team/cache",
            "retry_delay": "0",
        },
    )
    return make_plan(
        settings,
        LAYERS_CONFIG,
        LAYERS_DOCKERFILE,
        str(workdir),
        None,
        BUILDKIT,
        DockerFacts("20.10.24", "20.10.24"),
    )


def pushed_services(runner):
    pushes = [argv for argv in runner.ran if "push" in argv]
    return [list(argv[argv.index("push") + 1 :]) for argv in pushes]


def test_push_skips_the_images_the_registry_holds_with_the_same_id(tmp_path):
    plan = layers_plan(tmp_path)  # team/cache: app_final, app_stage_base, app_stage_build
    final, base, build = plan.pushed
    runner = StandInRunner(
        plan,
        local={final: "sha256:f", base: "sha256:b", build: "sha256:new"},
        registry={base: "sha256:b", build: "sha256:old"},
    )
    report = Report()

    push(plan, runner, report)

    assert pushed_services(runner) == [["cache_final", "cache_stage_build"]]
    assert (report.pushed, report.push_skipped) == ([final, build], [base])
    assert f"  already in the registry, not pushed: {base}" in runner.said
    # The registry was asked about every image at once, with the plan's argv.
    assert runner.asked == [plan.registry_checks[i] for i in plan.pushed]


def test_push_with_every_image_in_the_registry_pushes_nothing(tmp_path):
    plan = layers_plan(tmp_path)
    same = {image: f"sha256:{n}" for n, image in enumerate(plan.pushed)}
    runner = StandInRunner(plan, local=same, registry=same)
    report = Report()

    push(plan, runner, report)

    assert pushed_services(runner) == []
    assert (report.pushed, report.push_skipped) == ([], list(plan.pushed))
    assert "every cache image is in the registry already: nothing to push" in runner.said


def test_push_of_an_image_neither_built_nor_in_the_registry_pushes_nothing(tmp_path):
    plan = layers_plan(tmp_path)
    final, base, build = plan.pushed
    # base is not built here but the registry has it: that one alone is fine.
    runner = StandInRunner(plan, local={final: "sha256:f"}, registry={base: "sha256:b"})

    with pytest.raises(ConfigError) as error:
        push(plan, runner, Report())

    assert str(error.value) == (
        f"nothing pushed: 1 cache image(s) are not built yet, first {build}; run "
        "ci-load.build (and ci-load.recipes) first"
    )
    assert pushed_services(runner) == []


def test_a_push_that_fails_once_is_retried_and_the_retry_counted(tmp_path):
    plan = layers_plan(tmp_path, retry_delay="0")
    runner = StandInRunner(plan, local={i: "sha256:x" for i in plan.pushed}, push_failures=1)
    report = Report()

    push(plan, runner, report)

    assert len(pushed_services(runner)) == 2
    assert report.retries == {"push": 1}
    assert report.pushed == list(plan.pushed)
    assert plan.push_env == {"COMPOSE_PARALLEL_LIMIT": "4"}


def test_a_push_that_keeps_failing_counts_every_retry_and_fails(tmp_path):
    plan = layers_plan(tmp_path, retry_delay="0")
    runner = StandInRunner(plan, local={i: "sha256:x" for i in plan.pushed}, push_failures=3)
    report = Report()

    with pytest.raises(CommandError) as error:
        push(plan, runner, report)

    assert str(error.value).startswith(
        f"pushing {plan.pushed[0]} to the registry docker.io failed ("
    )
    assert report.retries == {"push": 2}
    assert report.pushed == []


def test_under_buildkit_push_skips_images_whose_build_came_all_from_the_cache(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    final, base, build = plan.pushed
    local = {final: "sha256:f2", base: "sha256:b2", build: "sha256:c2"}
    registry = {final: "sha256:f1", base: "sha256:b1", build: "sha256:c1"}
    runner = StandInRunner(plan, local=local, registry=registry)
    # The service's build missed the cache, the stages' builds hit it all.
    report = Report(
        stages=[
            StageResult("app", False, 1.0),
            StageResult("base", True, 0.1),
            StageResult("build", True, 0.1),
        ]
    )

    push(plan, runner, report)

    assert pushed_services(runner) == [["cache_final"]]
    assert report.push_skipped == [base, build]


def test_under_classic_push_sends_every_image_whose_id_differs(tmp_path):
    plan = layers_plan(tmp_path)
    local = {image: f"sha256:new{n}" for n, image in enumerate(plan.pushed)}
    registry = {image: f"sha256:old{n}" for n, image in enumerate(plan.pushed)}
    runner = StandInRunner(plan, local=local, registry=registry)
    report = Report(stages=[StageResult(n, True, 0.1) for n in ("base", "build", "app")])

    push(plan, runner, report)

    assert pushed_services(runner) == [["cache_final", "cache_stage_base", "cache_stage_build"]]


def test_a_dry_push_asks_nothing_and_shows_the_push_of_every_image(tmp_path):
    plan = layers_plan(tmp_path)
    runner = StandInRunner(plan, dry=True)

    push(plan, runner, Report())

    assert runner.asked == []
    assert pushed_services(runner) == [["cache_final", "cache_stage_base", "cache_stage_build"]]


def test_under_buildkit_pull_pulls_nothing_and_asks_the_registry(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    final, base, build = plan.pushed
    runner = StandInRunner(plan, registry={final: "sha256:f", base: "sha256:b"})
    report = Report()

    pull(plan, runner, report)
    finish_registry_check(plan, runner, report)  # as a build or a run does

    assert runner.ran == []  # no compose pull, no image list
    assert runner.asked == list(plan.registry_checks.values())
    assert (report.missing, report.registry_checked, report.pulled) == ([build], True, [])
    assert "cache images in the registry: 2 of 3" in runner.said
    assert f"  not found (a colder build, normal on a first run): {build}" in runner.said


def test_under_buildkit_a_registry_in_trouble_is_a_warning_naming_why(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    why = 'Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'
    runner = StandInRunner(plan, registry={i: why for i in plan.pushed})
    report = Report()

    pull(plan, runner, report)
    finish_registry_check(plan, runner, report)

    assert report.missing == list(plan.pushed)
    assert f"warning: registry check failed ({why}); trying again in 0s" in runner.said
    assert (
        f"warning: the registry did not answer as a missing cache would ({why}); "
        "building without that cache. Check --cache-repo and `docker login`"
    ) in runner.said
    assert report.retries == {"registry check": 2}


def test_under_buildkit_the_registry_s_answer_is_taken_after_the_first_build(tmp_path):
    # Asked in the pull step, answered beside the service's build, which does
    # not need it: only whether a stage must be built after it does.
    plan = buildkit_layers_plan(tmp_path)
    runner = StandInRunner(plan, registry={image: "sha256:1" for image in plan.pushed})
    report = Report()

    pull(plan, runner, report)
    assert (runner.events, report.registry_checked) == (["registry asked"], False)
    build(plan, runner, report)

    assert runner.events[:3] == ["registry asked", "built app", "registry answer taken"]
    assert report.registry_checked and report.missing == []
    assert report.pending == {}


def test_a_registry_check_nobody_waited_for_is_stopped():
    report = Report()
    stopped = []
    report.pending["registry check"] = Started(list, lambda: stopped.append(True))

    cancel_pending(report)

    assert stopped == [True] and report.pending == {}


SERVICE_ALL_CACHED = (
    "#5 [build 2/2] RUN echo built > /built\n#5 CACHED\n"
    "#6 [stage-4 2/2] COPY --from=build /built /built\n#6 CACHED\n" + FINISHED
)


def test_under_buildkit_a_stage_is_not_built_when_its_cache_image_is_current(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    runner = StandInRunner(plan, builds={"app": SERVICE_ALL_CACHED})
    report = Report(registry_checked=True)

    build(plan, runner, report)

    assert [argv[3:4] for argv in runner.ran] == [(str(LAYERS_DOCKERFILE_PATH),)]
    assert [(s.name, s.cached, s.built) for s in report.stages] == [
        ("app", True, True),
        ("base", True, False),
        ("build", True, False),
    ]
    # The stage's steps are what the service's build did with them.
    assert report.stages[2].steps == [
        {"instruction": "RUN echo built > /built", "cached": True, "seconds": None}
    ]


def test_under_buildkit_a_stage_is_built_when_the_registry_lacks_it_or_it_ran(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    ran_build_stage = SERVICE_ALL_CACHED.replace("#5 CACHED", "#5 DONE 0.1s")
    runner = StandInRunner(plan, builds={"app": ran_build_stage})
    base_image = plan.cache_images.stages["base"]
    report = Report(registry_checked=True, missing=[base_image])

    build(plan, runner, report)

    assert [s.name for s in report.stages if s.built] == ["app", "base", "build"]
    assert report.stages[2].cached is False  # its RUN ran in the service's build


def test_under_buildkit_the_service_s_row_counts_only_the_steps_no_stage_row_shows(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    ran_build_stage = SERVICE_ALL_CACHED.replace("#5 CACHED", "#5 DONE 0.1s")
    runner = StandInRunner(plan, builds={"app": ran_build_stage})
    report = Report(registry_checked=True)

    build(plan, runner, report)

    app, _, build_stage = report.stages
    # The RUN of stage build ran in the service's build: counted once, in its row.
    assert app.steps == [
        {"instruction": "COPY --from=build /built /built", "cached": True, "seconds": None}
    ]
    assert app.cached is True
    assert build_stage.steps == [
        {"instruction": "RUN echo built > /built", "cached": False, "seconds": 0.1}
    ]
    assert "-- stage build: all from cache, 0 of 0 steps run in this build, 0.0s" in runner.said


def test_without_a_registry_check_every_buildkit_stage_is_built(tmp_path):
    plan = buildkit_layers_plan(tmp_path)
    runner = StandInRunner(plan, builds={"app": SERVICE_ALL_CACHED})
    report = Report()  # ci-load.build alone: no pull step asked the registry

    build(plan, runner, report)

    assert [s.built for s in report.stages] == [True, True, True]
    assert len(runner.ran) == 3


def test_build_refuses_buildkit_only_syntax_naming_the_builder_and_the_fix(tmp_path):
    plan = make_plan(
        Settings.resolve({}, {"service": "app"}),
        {"name": "p", "services": {"app": {"build": {"context": "/srv/p"}}}},
        "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
        str(tmp_path),
    )

    with pytest.raises(ConfigError) as error:
        build(plan, StandInRunner(plan), Report())

    assert str(error.value) == (
        "/srv/p/Dockerfile uses syntax only BuildKit builds, first at line 2: RUN "
        "--mount, and the builder is classic (asked for with --builder classic); use "
        "--builder buildkit"
    )


def test_build_refuses_additional_contexts_without_buildx_naming_the_builder(tmp_path):
    config = {
        "name": "p",
        "services": {
            "app": {
                "build": {
                    "context": "/srv/p",
                    "additional_contexts": {"tools": "/srv/tools"},
                }
            }
        },
    }
    plan = make_plan(
        Settings.resolve({}, {"service": "app"}),
        config,
        "FROM busybox\n",
        str(tmp_path),
        None,
        BUILDKIT,
        DockerFacts("20.10.24", "20.10.24"),
    )

    with pytest.raises(ConfigError) as error:
        build(plan, StandInRunner(plan), Report())

    assert str(error.value) == (
        "service 'app' uses additional_contexts (tools), which only a docker client "
        "with the buildx plugin passes to the build (builder: buildkit, asked for with "
        "--builder buildkit); point --docker at a 23+ client with buildx"
    )


def test_a_classic_build_writes_the_pruned_dockerfiles_it_reads(tmp_path):
    plan = layers_plan(tmp_path)
    runner = StandInRunner(plan)

    build(plan, runner, Report())

    assert (tmp_path / "app.pruned-4.Dockerfile").read_text() == (
        plan.files["app.pruned-4.Dockerfile"]
    )
    assert runner.ran[-1][3] == str(tmp_path / "app.pruned-4.Dockerfile")


def test_retries_and_their_delay_come_from_the_settings_and_double(tmp_path):
    plan = layers_plan(tmp_path, retries="3", retry_delay="0.5")

    assert steps.retry_delays(plan) == [0.5, 1.0, 2.0]
    assert steps.retry_delays(layers_plan(tmp_path, retries="0")) == []


# -- several main services ------------------------------------------------------------

SHOP_CONFIG = yaml.safe_load((DATA / "rendered" / "shop.yml").read_text())
SHOP_DOCKERFILE = (DATA / "compose" / "shop" / "docker" / "shop.Dockerfile").read_text()


def shop_groups(workdir, builder=None, facts=None):
    settings = Settings.resolve(
        {},
        {
            "compose_files": ["/srv/shop/docker-compose.yml"],
            "service": ["shop", "shop-build", "worker"],
            "cache_repo": "127.0.0.1:5000/team/cache",
        },
    )
    texts = {"shop": SHOP_DOCKERFILE, "shop-build": SHOP_DOCKERFILE, "worker": "FROM busybox\n"}
    return make_plans(settings, SHOP_CONFIG, texts, str(workdir), None, builder, facts)


def test_push_all_pushes_the_images_of_every_group_with_one_compose_call(tmp_path):
    plans = shop_groups(tmp_path)
    every = [image for plan in plans for image in plan.pushed]
    runner = StandInRunner(plans[0], local={image: "sha256:new" for image in every})
    report = Report()

    run_step(push, plans, runner, report)

    assert pushed_services(runner) == [
        [
            "g1_cache_final",
            *(f"g1_cache_stage_{s}" for s in ("base", "hello", "deps", "assets", "build")),
            "g1_cache_final_shop-build",
            "g2_cache_final",
        ]
    ]
    assert report.pushed == every


def test_under_buildkit_a_final_tagged_from_a_cached_stage_is_not_pushed_again(tmp_path):
    facts = DockerFacts("20.10.24", "20.10.24")
    shop, worker = shop_groups(tmp_path, BUILDKIT, facts)
    # Every build of the shop group took all from the cache; worker's did not.
    report = Report(
        stages=[StageResult(b.name, True, 0.1, group="shop") for b in shop.builds]
        + [StageResult("worker", False, 0.1, group="worker")]
    )
    every = [image for plan in (shop, worker) for image in plan.pushed]
    runner = StandInRunner(
        shop,
        local={image: "sha256:new" for image in every},
        registry={image: "sha256:old" for image in every},
    )

    run_step(push, (shop, worker), runner, report)

    assert report.pushed == [worker.cache_images.final]
    assert shop.finals["shop-build"] in report.push_skipped
