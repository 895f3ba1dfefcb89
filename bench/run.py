"""ci-load side by side with plain and final-only builds, on a private Docker.

    python -m bench.run [--rounds 3] [--out bench/results.txt]   (as root)

Starts its own dockerd and registry (devkit.engine), builds the base image,
then times the project in bench/project/ for each scenario and variant, for
several rounds, and prints medians, ratios to the floor and the targets.
bench/README.md explains the scenarios, variants and targets.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/run.py` as well as `-m bench.run`
    sys.path.insert(0, str(REPO))

from bench import chart
from devkit.engine import (
    DevkitError,
    Engine,
    Registry,
    build_base_image,
    run,
)

PROJECT = Path(__file__).resolve().parent / "project"
SERVICE = "app"
IMAGE = "bench/app:latest"  # the service's image in the compose file
CHANGED_FILE = "src/VERSION"  # rewritten for the partial scenario
CHANGED_STAGE = "build"  # the stage that COPYs src/

# Debian's 20.10 client: the 28.x one first on PATH cannot use BuildKit against
# this dockerd, and every variant must use the same client.
DOCKER = "/usr/bin/docker"

SCENARIOS = ("cold", "warm", "no-op", "partial")
VARIANTS = ("plain", "plain-classic", "final-only", "ci-load-classic", "ci-load-buildkit", "floor")
# The stage no requested service needs: a warm classic run must not pull it.
UNNEEDED_STAGE = "test"
# The image the floor pulls: the final image of the first of these variants run.
FLOOR_SOURCES = ("ci-load-buildkit", "ci-load-classic", "final-only")

TIMEOUT = 900  # seconds per command
OVERHEAD_RUNS = 7


class BenchError(RuntimeError):
    """A variant's command failed or gave no usable result."""


class BenchEngine(Engine):
    client = DOCKER  # also for wipe's readiness probe and build_base_image


@dataclass
class Sample:
    seconds: float  # wall time without the push
    push: float | None = None  # the push, timed apart
    steps_run: int | None = None  # build steps executed (ci-load's report)
    image: str | None = None  # the final image pushed, for the floor to pull
    unneeded_pulled: int | None = None  # cache images pulled that no target needs
    # Seconds the steps that ran took, as BuildKit timed them (None: the
    # classic builder prints no step times).
    steps_seconds: float | None = None
    # Of `seconds`, the time ci-load waited for docker's builds (and the
    # classic builder's compose pull): the rest is ci-load's own.
    in_docker: float | None = None


@dataclass
class Bench:
    engine: Engine
    registry: Registry
    repo: Path  # the ci-load checkout under test
    work: Path
    has_builder: bool  # ci-load.run knows --builder
    verbose: bool

    @property
    def project(self) -> Path:
        # A copy: the partial scenario rewrites a source file.
        return self.work / "project"

    def env(self, **extra: str) -> dict:
        # Like devkit/demo.py: the user's invoke and compose settings stay out.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "COMPOSE_"))}
        return {**self.engine.env(base), **extra}

    def fresh_runner(self) -> None:
        """An empty daemon with only the base image, as a new CI runner has."""
        self.engine.wipe()
        build_base_image(self.engine)

    def cmd(self, argv: Sequence, log: str, *, check: bool = True, cwd=None, **env):
        """Run argv, append its output to logs/<log>.log; BenchError on failure."""
        argv = [os.fspath(a) for a in argv]
        line = " ".join(f"{k}={v}" for k, v in env.items()) + " " + shlex.join(argv)
        if self.verbose:
            print(f"  + {line.strip()}", flush=True)
        returncode, output = _run(argv, self.env(**env), cwd or self.project)
        path = self.work / "logs" / f"{log}.log"
        path.parent.mkdir(exist_ok=True)
        with open(path, "a") as f:
            f.write(f"+ {line.strip()}\n{output}\nexit code {returncode}\n")
        if check and returncode != 0:
            tail = "\n".join(output.rstrip().splitlines()[-15:])
            raise BenchError(f"exit code {returncode}: {line.strip()}\n{tail}\n(log: {path})")

    def ci_load_argv(self, task: str, *args: str) -> list:
        """The product's command line, as a user types it."""
        return [
            sys.executable, "-m", "invoke", "--search-root", self.repo, task,
            "--compose-file", self.project / "docker-compose.yml",
            "--service", SERVICE, "--docker", DOCKER, *args,
        ]  # fmt: skip


def _run(argv: list, env: dict, cwd) -> tuple:
    """(exit code, stdout and stderr merged) of argv.

    Not devkit's run(): on Ctrl-C or SIGTERM subprocess.run SIGKILLs the
    child, and ci-load then leaves its work directory behind. SIGTERM lets it
    clean up (it exits 143), the `with` in _bench then stops the daemons.
    """
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except FileNotFoundError as exc:
        raise BenchError(f"{argv[0]}: not found ({exc}); bash devkit/setup.sh") from None
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise BenchError(f"timed out after {TIMEOUT} s: {shlex.join(argv)}\n{output}") from None
    except BaseException:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return proc.returncode, output


# -- the variants: each times one build on the runner it is given -----------


def plain(b: Bench, scenario: str, rnd: int, log: str) -> Sample:
    # compose's default builder (BuildKit), the cache only what the runner has.
    start = time.monotonic()
    b.cmd([DOCKER, "compose", "build", SERVICE], log)
    return Sample(time.monotonic() - start)


def plain_classic(b: Bench, scenario: str, rnd: int, log: str) -> Sample:
    # The same with the classic builder: what ci-load's classic builds cost
    # without ci-load, so its cold overhead can be told apart from the builder's.
    start = time.monotonic()
    b.cmd([DOCKER, "compose", "build", SERVICE], log, DOCKER_BUILDKIT="0")
    return Sample(time.monotonic() - start)


def final_only(b: Bench, scenario: str, rnd: int, log: str) -> Sample:
    # The usual CI recipe: pull the last final image, use it as the only cache.
    image = f"{b.registry.address}/bench/final-only-r{rnd}:{SERVICE}_final"
    start = time.monotonic()
    # In cold the repository is new, so the pull must fail; elsewhere it must not.
    b.cmd([DOCKER, "pull", image], log, check=scenario != "cold")
    # The legacy builder: compose's ignores cache_from, BuildKit needs inline
    # cache metadata in the image.
    b.cmd(
        [DOCKER, "build", "--cache-from", image, "--network", "none",
         "-t", image, "-t", IMAGE, "."],
        log, DOCKER_BUILDKIT="0",
    )  # fmt: skip
    built = time.monotonic()
    b.cmd([DOCKER, "push", image], log)
    return Sample(built - start, push=time.monotonic() - built, image=image)


def ci_load(builder: str):
    def variant(b: Bench, scenario: str, rnd: int, log: str) -> Sample:
        name = f"ci-load-{builder}"
        report = b.work / "logs" / f"{log}.json"
        report.parent.mkdir(exist_ok=True)
        repo = f"bench/{name}-r{rnd}"  # a new one each round: cold is cold
        args = ["--cache-repo", f"{b.registry.address}/{repo}",
                "--push", "--report", report]  # fmt: skip
        if b.has_builder:
            args += ["--builder", builder]
        elif builder != "classic":  # main() refuses this case up front
            raise BenchError("ci-load.run has no --builder option yet")
        start = time.monotonic()
        b.cmd(b.ci_load_argv("ci-load.run", *args), log, cwd=b.repo)
        wall = time.monotonic() - start
        try:
            data = json.loads(report.read_text())
            push = float(data["step_seconds"]["push"])
            builds = data["stages"] + data["recipes"]
            # Distinct steps: under BuildKit the service's build also lists
            # the steps of the stages it built, and so does each stage.
            steps_run = len(
                {s["instruction"] for st in builds for s in st["steps"] if not s["cached"]}
            )
            unneeded = sum(i.endswith(f"_stage_{UNNEEDED_STAGE}") for i in data["pulled"])
            ran = {}
            for st in builds:
                for step in st["steps"]:
                    if not step["cached"] and step.get("seconds") is not None:
                        ran[step["instruction"]] = max(
                            step["seconds"], ran.get(step["instruction"], 0.0)
                        )
            steps_seconds = sum(ran.values()) if ran else None
            in_docker = sum(float(st["seconds"]) for st in builds)
            if builder == "classic":  # BuildKit's pull step only starts questions
                in_docker += float(data["step_seconds"].get("pull", 0.0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"{name}: no usable report at {report}: {exc!r}") from None
        # The final cache image's name is part of ci-load's contract (README);
        # asking the registry does not depend on the report's other fields.
        final = f"{SERVICE}_final"
        if data.get("error") or not builds or final not in b.registry.tags(repo):
            raise BenchError(
                f"{name}: report {report} says error={data.get('error')!r}, "
                f"{len(builds)} builds; {final} in the registry's {repo}: "
                f"{final in b.registry.tags(repo)}"
            )
        image = f"{b.registry.address}/{repo}:{final}"
        return Sample(
            wall - push,
            push=push,
            steps_run=steps_run,
            image=image,
            unneeded_pulled=unneeded,
            steps_seconds=steps_seconds,
            in_docker=in_docker,
        )

    return variant


RUNNERS = {
    "plain": plain,
    "plain-classic": plain_classic,
    "final-only": final_only,
    "ci-load-classic": ci_load("classic"),
    "ci-load-buildkit": ci_load("buildkit"),
}


def floor(b: Bench, image: str, log: str) -> Sample:
    """What no build can beat: fetching the final image alone."""
    start = time.monotonic()
    b.cmd([DOCKER, "pull", image], log)
    return Sample(time.monotonic() - start)


# -- rounds ---------------------------------------------------------------


class Results:
    def __init__(self, keep_going: bool):
        self.keep_going = keep_going
        self.samples: dict = {}  # (scenario, variant) -> [Sample]
        self.failures: dict = {}  # (scenario, variant) -> [message]

    def measure(
        self, scenario: str, variant: str, rnd: int, fn, record: bool = True
    ) -> Sample | None:
        """Run fn; keep its sample if record (a scenario asked for)."""
        try:
            sample = fn()
        except BenchError as exc:
            msg = f"round {rnd}, {scenario}, {variant}: FAILED: {exc}"
            print(msg, file=sys.stderr, flush=True)
            if not self.keep_going:
                raise BenchError(msg) from None
            # A failed prerequisite is also a failure of what was asked for.
            self.failures.setdefault((scenario, variant), []).append(str(exc))
            return None
        if not record:
            return sample
        self.samples.setdefault((scenario, variant), []).append(sample)
        extra = "" if sample.push is None else f", push {sample.push:.2f} s"
        steps = "" if sample.steps_run is None else f", {sample.steps_run} steps run"
        print(
            f"round {rnd} {scenario:<8} {variant:<17} {sample.seconds:7.2f} s{extra}{steps}",
            flush=True,
        )
        return sample

    def fail(self, scenario: str, variant: str, rnd: int, record: bool) -> None:
        """A run that cannot happen after an earlier failure: said, not skipped."""
        if record:
            print(
                f"round {rnd}, {scenario}, {variant}: NOT RUN: an earlier run "
                "(or, for the floor, every image source) failed",
                file=sys.stderr,
            )
            self.failures.setdefault((scenario, variant), []).append("not run")


def run_round(b: Bench, rnd: int, scenarios, variants, results: Results) -> None:
    builds = [v for v in variants if v != "floor"]
    # Round-robin: each round starts with the next variant, so a slow drift of
    # the machine (page cache, registry size) does not favour one variant.
    k = rnd % len(builds) if builds else 0
    order = builds[k:] + builds[:k]
    shutil.rmtree(b.project, ignore_errors=True)
    shutil.copytree(PROJECT, b.project)
    broken = set()  # variants whose runner state this round is unusable

    def phase(steps: Sequence[str]) -> None:
        """Each variant runs `steps` back to back; then the floor does."""
        images = {}  # variant -> the final image it pushed in this phase
        for variant in [*order, "floor"] if "floor" in variants else order:
            for i, scenario in enumerate(steps):
                # Scenarios not asked for but needed by one that is run all
                # the same (cold fills the registry), and are not reported.
                record = scenario in scenarios
                if variant == "floor":
                    source = next((v for v in FLOOR_SOURCES if v in images), None)
                    if source is None:
                        broken.add(variant)
                if variant in broken:
                    results.fail(scenario, variant, rnd, record)
                    continue
                if i == 0:  # no-op follows warm on the same runner, unwiped
                    b.fresh_runner()
                log = f"r{rnd}-{scenario}-{variant}"
                if variant == "floor":
                    fn = functools.partial(floor, b, images[source], log)
                else:
                    fn = functools.partial(RUNNERS[variant], b, scenario, rnd, log)
                sample = results.measure(scenario, variant, rnd, fn, record)
                if sample is None:
                    broken.add(variant)
                elif sample.image:
                    images[variant] = sample.image

    phase(["cold"])  # fresh repository names: nothing is cached
    if {"warm", "no-op"} & set(scenarios):
        phase(["warm", "no-op"])
    if "partial" in scenarios:
        # Only the build stage's COPY src/ and what follows it must rerun.
        (b.project / CHANGED_FILE).write_text(f"1.0.{rnd}-partial-{time.time_ns()}\n")
        phase(["partial"])


# -- ci-load's own overhead -----------------------------------------------


def overhead(b: Bench) -> dict:
    """Median wall time of ci-load.plan, and of Python + invoke starting alone.

    The two take turns, so that both see the same moments of a shared,
    noisy machine.
    """
    argvs = {
        "plan": b.ci_load_argv("ci-load.plan"),
        "startup": [sys.executable, "-m", "invoke", "--search-root", b.repo, "--list"],
    }
    for argv in argvs.values():
        b.cmd(argv, "overhead", cwd=b.repo)  # once unmeasured: warm file caches
    times: dict = {name: [] for name in argvs}
    for _ in range(OVERHEAD_RUNS):
        for name, argv in argvs.items():
            start = time.monotonic()
            b.cmd(argv, "overhead", cwd=b.repo)
            times[name].append(time.monotonic() - start)
    return {name: statistics.median(found) for name, found in times.items()}


# -- the report -----------------------------------------------------------


def stage_sleeps(dockerfile: Path) -> list:
    """Per stage in file order: (name, seconds of `sleep`, stages it builds on).

    Enough of a parser for bench/project/Dockerfile: "#N" names an unnamed
    stage; FROM and COPY --from name what it builds on.
    """
    stages: list = []
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if m:
            stages.append((m.group(2) or f"#{len(stages)}", [0.0], {m.group(1)}))
        elif stages:
            stages[-1][1][0] += sum(map(float, re.findall(r"\bsleep\s+([\d.]+)", line)))
            stages[-1][2].update(re.findall(r"--from=(\S+)", line))
    return [(name, sleep[0], needs) for name, sleep, needs in stages]


def partial_allowance(dockerfile: Path) -> float:
    """The sleeps that must rerun when the changed stage's input changes: of
    that stage and the later ones the final stage needs (not `test`)."""
    stages = stage_sleeps(dockerfile)
    needs = {name: deps for name, _, deps in stages}
    needed, todo = set(), [stages[-1][0]]
    while todo:
        name = todo.pop()
        if name in needs and name not in needed:
            needed.add(name)
            todo += needs[name]
    start = [name for name, _, _ in stages].index(CHANGED_STAGE)
    return sum(sleep for name, sleep, _ in stages[start:] if name in needed)


def _median(results: Results, scenario: str, variant: str, attr="seconds"):
    """The median, or None when a round failed or none ran: never a partial figure."""
    if results.failures.get((scenario, variant)):
        return None
    values = [getattr(s, attr) for s in results.samples.get((scenario, variant), [])]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec=".2f", none="-") -> str:
    return none if value is None else format(value, spec)


def figures(results: Results, scenarios, variants) -> list:
    """The medians the table prints and the chart draws, one per scenario and variant."""
    bars = []
    for scenario in scenarios:
        base = _median(results, scenario, "floor")
        for variant in variants:
            med = _median(results, scenario, variant)
            failures = results.failures.get((scenario, variant), [])
            if failures and all(f == "not run" for f in failures):
                status = chart.NOT_RUN
            elif failures:
                status = chart.FAILED
            else:
                status = "ok" if med is not None else chart.NOT_RUN
            ratio = med / base if med is not None and base else None
            bars.append(chart.Bar(scenario, variant, med, ratio, status))
    return bars


def table(results: Results, bars: Sequence[chart.Bar]) -> list:
    lines = [
        (
            f"{'scenario':<8} {'variant':<17} {'median s':>8} {'x floor':>8} "
            f"{'push s':>7} {'docker s':>8} {'steps':>5}  rounds (s, push excluded)"
        )
    ]
    for bar in bars:
        scenario, variant, key = bar.scenario, bar.variant, (bar.scenario, bar.variant)
        samples = results.samples.get(key, [])
        steps = [s.steps_run for s in samples if s.steps_run is not None]
        if results.failures.get(key):
            rounds = f"FAILED {len(results.failures[key])}x, ok: " + (
                " ".join(f"{s.seconds:.2f}" for s in samples) or "none"
            )
        else:
            rounds = " ".join(f"{s.seconds:.2f}" for s in samples)
        lines.append(
            f"{scenario:<8} {variant:<17} {_fmt(bar.seconds, '8.2f', bar.status):>8} "
            f"{_fmt(bar.ratio, '7.1f') + ('x' if bar.ratio else ''):>8} "
            f"{_fmt(_median(results, scenario, variant, 'push'), '7.2f'):>7} "
            f"{_fmt(_median(results, scenario, variant, 'in_docker'), '8.2f'):>8} "
            f"{(str(max(steps)) if steps else '-'):>5}  {rounds}"
        )
    return lines


def targets(results: Results, scenarios, variants, allowance: float, over) -> list:
    lines = []

    def check(ok, text: str) -> None:
        verdict = "no figure" if ok is None else ("met" if ok else "NOT MET")
        lines.append(f"  {verdict:<9} {text}")

    def steps(scenario: str, variant: str) -> str:
        runs = [s.steps_run for s in results.samples.get((scenario, variant), [])]
        return "steps run per round: " + (" ".join(map(str, runs)) or "none")

    def no_steps(scenario: str, variant: str):
        runs = [s.steps_run for s in results.samples.get((scenario, variant), [])]
        if results.failures.get((scenario, variant)) or not runs:
            return None
        return not any(runs)

    bk, cl = "ci-load-buildkit", "ci-load-classic"
    if "warm" in scenarios and bk in variants:
        med, base = _median(results, "warm", bk), _median(results, "warm", "floor")
        ok = None if med is None or base is None else med <= base + 1
        check(ok, f"warm, buildkit: {_fmt(med)} s <= floor {_fmt(base)} s + 1 s")
        check(
            no_steps("warm", bk),
            f"warm, buildkit: no step executed ({steps('warm', bk)})",
        )
    if "warm" in scenarios and cl in variants:
        check(
            no_steps("warm", cl),
            f"warm, classic: no step executed ({steps('warm', cl)})",
        )
        pulled = [s.unneeded_pulled for s in results.samples.get(("warm", cl), [])]
        check(
            None if not pulled else not any(pulled),
            f"warm, classic: no cache image pulled that no target needs (the "
            f"{UNNEEDED_STAGE} stage's; per round: {' '.join(map(str, pulled)) or 'none'})",
        )
    if "partial" in scenarios:
        for v in (cl, bk):
            if v in variants:
                med = _median(results, "partial", v)
                ok = None if med is None else med <= allowance + 1.5
                text = f"partial, {v}: {_fmt(med)} s <= {allowance:g} s + 1.5 s"
                check(ok, f"{text} (sleeps of {CHANGED_STAGE} and later needed stages)")
                in_docker = _median(results, "partial", v, "in_docker")
                if in_docker is not None and med is not None:
                    # Whether docker alone takes more than the allowance
                    # already: then no orchestration meets it on this machine.
                    docker_over = (
                        ": docker alone is over the allowance"
                        if in_docker > allowance + 1.5
                        else ""
                    )
                    lines.append(
                        f"{'':12}{in_docker:.2f} s of it in docker's builds"
                        f"{' and pull' if v == cl else ''}, {med - in_docker:.2f} s "
                        f"ci-load's own{docker_over}"
                    )
                # The steps' own time as BuildKit timed them: the sleeps plus
                # starting each step's container.
                timed = _median(results, "partial", v, "steps_seconds")
                if timed is not None:
                    ok = None if med is None else med <= timed + 1.5
                    check(
                        ok,
                        f"partial, {v}: {_fmt(med)} s <= {timed:.2f} s + 1.5 s "
                        "(the changed steps' own time, as BuildKit timed them)",
                    )
    if "cold" in scenarios:
        # Against plain compose (BuildKit), as the target says; the classic
        # variant also against plain compose with the classic builder.
        pairs = [(cl, "plain"), (cl, "plain-classic"), (bk, "plain")]
        for v, baseline in pairs:
            if v in variants and baseline in variants:
                plain_med = _median(results, "cold", baseline)
                med = _median(results, "cold", v)
                limit = None if plain_med is None else 1.15 * plain_med
                ok = None if med is None or limit is None else med <= limit
                check(
                    ok,
                    f"cold, {v} (push excluded): {_fmt(med)} s <= 1.15 x "
                    f"{baseline} {_fmt(plain_med)} s = {_fmt(limit)} s",
                )
    check(
        over["plan"] < 0.5,
        f"overhead: ci-load.plan {over['plan']:.2f} s < 0.5 s (median of "
        f"{OVERHEAD_RUNS}; Python + invoke alone, --list: {over['startup']:.2f} s)",
    )
    return lines


def versions(b: Bench) -> str:
    def out(argv, cwd=None) -> str:
        proc = run(argv, env=b.env(), check=False, cwd=cwd or b.repo)
        return proc.stdout.strip() if proc.returncode == 0 else "?"

    commit = out(["git", "rev-parse", "--short", "HEAD"])
    if commit == "?":
        where = f"ci-load at {b.repo} (not a git checkout) "
    else:
        dirty = out(["git", "status", "--porcelain", "--", "ci_load_tasks", "tasks.py"])
        where = f"ci-load {commit}{' + uncommitted changes' if dirty else ''} "
    return where + (
        f"(--builder {'available' if b.has_builder else 'missing'}), "
        f"client {out([DOCKER, 'version', '--format', '{{.Client.Version}}'])}, "
        f"dockerd {out([DOCKER, 'version', '--format', '{{.Server.Version}}'])}, "
        f"compose {out([DOCKER, 'compose', 'version', '--short'])}, "
        f"Python {sys.version.split()[0]}"
    )


def machine() -> str:
    """The host the figures come from: name, cores, CPU model."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the model is only a nicety
        cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    cpu = model.group(1).strip() if model else platform.machine()
    return f"{platform.node()}, {os.cpu_count()} cores ({cpu}), {platform.system()}"


# -- main -----------------------------------------------------------------


def _names(allowed: Sequence[str]):
    def parse(text: str) -> list:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}"
            )
        return [n for n in allowed if n in names]  # canonical order

    return parse


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results.txt",
        help="write the table here too (default bench/results.txt)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failed run, go on with the others (exit 1 at the end)",
    )
    parser.add_argument(
        "--scenarios",
        type=_names(SCENARIOS),
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--variants",
        type=_names(VARIANTS),
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)}",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="the ci-load checkout to run (default: this one)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep engine, registry, logs and reports here "
        "(default: a temporary directory, removed)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every command before it runs",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.out.suffix == ".png":
        parser.error(f"--out {args.out}: the table's file; the chart goes beside it as .png")
    # Before minutes of measuring, not after: the chart is part of the output.
    if chart.missing():
        print(f"bench: FAILED: {chart.missing()}", file=sys.stderr)
        return 2
    # SIGTERM as an interrupt: the `with` blocks then stop dockerd and registry.
    signal.signal(signal.SIGTERM, _interrupt)

    help_text = run(
        [sys.executable, "-m", "invoke", "--search-root", args.repo.resolve(),
         "--help", "ci-load.run"], check=False,
    )  # fmt: skip
    if help_text.returncode != 0:
        print(
            f"bench: FAILED: ci-load does not load:\n{help_text.stderr[-2000:]}",
            file=sys.stderr,
        )
        return 1
    has_builder = "--builder" in help_text.stdout
    if "ci-load-buildkit" in args.variants and not has_builder:
        print(
            "bench: FAILED: ci-load.run has no --builder option yet, so the "
            "ci-load-buildkit variant cannot run; leave it out with --variants",
            file=sys.stderr,
        )
        return 2
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _bench(args, args.workdir.resolve(), has_builder)
    with tempfile.TemporaryDirectory(prefix="ci-load-bench-") as tmp:
        return _bench(args, Path(tmp), has_builder)


def compile_checkout(repo: Path) -> None:
    """Byte-compile the checkout under test, as `pip install` does a package.

    An editable checkout is compiled on first import, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some machines): then every run
    would compile ci-load again, about 0.1 s here that no installed ci-load
    spends. Python reads the .pyc files (git-ignored) either way.
    """
    paths = [p for p in (repo / "ci_load_tasks", repo / "tasks.py") if p.exists()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, paths)], check=True)


def _bench(args, work: Path, has_builder: bool) -> int:
    started = time.monotonic()
    results = Results(args.keep_going)
    try:
        with (
            BenchEngine.start(work / "engine") as engine,
            Registry.start(work / "registry") as registry,
        ):
            b = Bench(engine, registry, args.repo.resolve(), work, has_builder, args.verbose)
            compile_checkout(b.repo)
            build_base_image(engine)
            shutil.copytree(PROJECT, b.project)
            header = versions(b)
            print(header, flush=True)
            over = overhead(b)
            print(
                f"overhead: ci-load.plan {over['plan']:.2f} s, "
                f"invoke --list {over['startup']:.2f} s",
                flush=True,
            )
            for rnd in range(1, args.rounds + 1):
                run_round(b, rnd, args.scenarios, args.variants, results)
    except (BenchError, DevkitError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        # The `with` above has stopped dockerd and the registry by now.
        print(f"bench: interrupted ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 130

    allowance = partial_allowance(PROJECT / "Dockerfile")
    bars = figures(results, args.scenarios, args.variants)
    wall = time.monotonic() - started
    lines = [
        (
            f"ci-load benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}: medians of "
            f"{args.rounds} round(s); seconds without the push; x floor = ratio to "
            "the floor of the same scenario; steps = most build steps executed in "
            "a round"
        ),
        header,
        f"machine: {machine()}",
        "",
        *table(results, bars),
        "",
        "targets:",
        *targets(results, args.scenarios, args.variants, allowance, over),
        "",
        f"total wall time {wall / 60:.1f} min",
    ]
    failed = sorted(results.failures)
    if failed:
        lines += ["", "FAILED runs (see the messages above):"]
        lines += [f"  {s}, {v}: {len(results.failures[(s, v)])}x" for s, v in failed]
    text = "\n".join(lines) + "\n"
    print("\n" + text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    png = args.out.with_suffix(".png")
    title = (
        f"ci-load benchmark, {time.strftime('%Y-%m-%d')}: medians of {args.rounds} "
        f"round(s), seconds without the push (each panel its own scale); "
        "bars labelled with the median and its ratio to the floor (dashed)\n"
        f"{machine()}\n{header}"
    )
    chart.draw(bars, png, title)
    print(f"written to {args.out} and {png}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
