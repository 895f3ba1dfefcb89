"""ci-load on the bundled example, cold then warm, against a private Docker.

    python -m devkit.demo            (or: python -m invoke demo)

Starts a private dockerd and registry under a temporary directory, builds the
base image, then runs the ci-load pipeline on examples/ twice per builder
(the classic builder, then BuildKit, each with a cache repo of its own):

  cold  the registry is empty, so every stage is built and pushed;
  warm  the engine is wiped first, like a fresh CI runner, so every stage
        must come from the registry.

It prints each run's wall time and how many stages came from the cache, runs
the final image once, and exits non-zero if a step failed or a warm run was
not fully cached. Everything it started is stopped again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from devkit.engine import DevkitError, Engine, Registry, build_base_image, run

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = "examples/docker-compose.yml"
RECIPE_COMPOSE = "examples/recipes/docker-compose.yml"
SERVICE = "app"

# The docker client per builder. Debian's 20.10 client drives BuildKit; the
# newer client first on PATH on this project's machines has no buildx, so it
# builds with the classic builder.
CLIENTS = {"classic": "docker", "buildkit": "/usr/bin/docker"}


def pipeline_argv(repo: Path, registry: Registry, report: Path, builder: str = "classic") -> list:
    """The product's command line (its CLI contract) for the example."""
    return [
        sys.executable, "-m", "invoke", "--search-root", str(repo),
        "ci-load.run",
        "--builder", builder,
        "--docker", CLIENTS[builder],
        "--compose-file", COMPOSE_FILE,
        "--service", SERVICE,
        "--cache-repo", f"{registry.address}/example/cache-{builder}",
        "--recipe-repo", "cilocal/recipe",
        "--recipe-compose", RECIPE_COMPOSE,
        "--push",
        "--report", str(report),
    ]  # fmt: skip


def demo_env(engine: Engine) -> dict:
    # The demo must behave the same in anyone's shell: their invoke and
    # compose settings stay out, as in the tests.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "COMPOSE_"))}
    return engine.env(env)


def run_pipeline(
    name: str,
    repo: Path,
    engine: Engine,
    registry: Registry,
    work: Path,
    timeout: float,
    verbose: bool,
    builder: str = "classic",
) -> dict:
    """One ci-load run; returns its report plus the wall time."""
    report = work / f"{name}-{builder}.json"
    log = work / f"{name}-{builder}.log"
    print(f"--- {name} run, {builder} builder: ci-load.run", flush=True)
    start = time.monotonic()
    proc = run(
        pipeline_argv(repo, registry, report, builder),
        env=demo_env(engine),
        cwd=repo,
        check=False,
        capture=not verbose,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    output = (proc.stdout or "") + (proc.stderr or "")
    log.write_text(output)
    if proc.returncode != 0:
        tail = "\n".join(output.rstrip().splitlines()[-30:])
        raise DevkitError(f"{name} run failed with exit code {proc.returncode}:\n{tail}")
    try:
        data = json.loads(report.read_text())
        stages = data["stages"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DevkitError(f"{name} run wrote no usable report at {report}: {exc}") from None
    data["seconds"] = seconds
    cached = sum(1 for s in stages if s.get("cached"))
    not_built = sum(1 for s in stages if s.get("built") is False)
    current = f" ({not_built} current in the registry, not built)" if not_built else ""
    print(f"{name:>5}: {seconds:6.1f} s wall, {cached}/{len(stages)} stages from cache"
          f"{current}, {len(data.get('pushed') or [])} images pushed", flush=True)  # fmt: skip
    for s in stages:
        how = "cache" if s.get("cached") else "built"
        if s.get("built") is False:
            how = "registry"
        print(f"         {s.get('name', '?'):<30} {how:<8} {s.get('seconds', 0):6.1f} s")
    return data


def service_image(repo: Path, service: str = SERVICE) -> str:
    """The image name the example's compose file gives the service."""
    import yaml  # a dependency of ci-load itself

    config = yaml.safe_load((repo / COMPOSE_FILE).read_text())
    image = config["services"][service]["image"]
    if "$" in image:
        raise DevkitError(f"{COMPOSE_FILE}: image of {service} uses variables: {image}")
    return image


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep engine, registry, logs and reports here (default: a temp dir, removed)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds allowed per ci-load run (default 900)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="the ci-load checkout to run (default: this one)",
    )
    parser.add_argument(
        "--builder",
        choices=["classic", "buildkit", "both"],
        default="both",
        help="which builder(s) to show (default: both, classic first)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show ci-load's own output as it runs",
    )
    args = parser.parse_args(argv)
    # SIGTERM as an interrupt: the `with` blocks then stop dockerd and the
    # registry instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)
    builders = ["classic", "buildkit"] if args.builder == "both" else [args.builder]

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _demo(
            args.repo.resolve(),
            args.workdir.resolve(),
            args.timeout,
            args.verbose,
            builders,
        )
    with tempfile.TemporaryDirectory(prefix="ci-load-demo-") as tmp:
        return _demo(args.repo.resolve(), Path(tmp), args.timeout, args.verbose, builders)


def _demo(repo: Path, work: Path, timeout: float, verbose: bool, builders: Sequence[str]) -> int:
    if not (repo / COMPOSE_FILE).is_file():
        print(f"demo: {repo / COMPOSE_FILE} is missing", file=sys.stderr)
        return 2
    try:
        start = time.monotonic()
        with (
            Engine.start(work / "engine") as engine,
            Registry.start(work / "registry") as registry,
        ):
            print(f"private dockerd at {engine.host} and registry at {registry.address} "
                  f"ready in {time.monotonic() - start:.1f} s", flush=True)  # fmt: skip
            start = time.monotonic()
            build_base_image(engine)
            print(f"base image built in {time.monotonic() - start:.1f} s", flush=True)

            results = {}
            for builder in builders:
                _fresh_runner(engine)
                cold = run_pipeline("cold", repo, engine, registry, work, timeout, verbose, builder)
                _fresh_runner(engine)
                warm = run_pipeline("warm", repo, engine, registry, work, timeout, verbose, builder)
                results[builder] = (cold, warm)

                image = service_image(repo)
                out = engine.docker("run", "--rm", "--network", "none", image, timeout=120)
                print(f"--- docker run --rm --network none {image}")
                print(out.stdout.rstrip() or "(no output)")
    except DevkitError as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        # The `with` above has stopped dockerd and the registry by now.
        print(f"demo: interrupted ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 130

    failed = False
    for builder, (cold, warm) in results.items():
        stages = warm["stages"]
        uncached = [s.get("name", "?") for s in stages if not s.get("cached")]
        print(f"--- {builder}: cold {cold['seconds']:.1f} s, warm {warm['seconds']:.1f} s")
        if not stages or uncached:
            print(
                f"demo: FAILED: the warm {builder} run built {len(uncached)} stage(s) "
                f"instead of taking them from the cache: "
                f"{', '.join(uncached) or '(no stages reported)'}",
                file=sys.stderr,
            )
            failed = True
    if failed:
        return 1
    print("demo: ok: each warm run took every stage from the registry")
    return 0


def _fresh_runner(engine: Engine) -> None:
    """Wipe the engine like a new CI runner, which has only its base image."""
    start = time.monotonic()
    engine.wipe()
    # A CI runner pulls its base image; here it is loaded, identical.
    build_base_image(engine)
    print(f"engine wiped (a fresh CI runner) in {time.monotonic() - start:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
