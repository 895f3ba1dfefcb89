"""A private dockerd and registry to try ci-load's tasks by hand.

    python -m devkit.sandbox            (or: python -m invoke sandbox)

Starts them as the demo does (own data root, socket and docker config under a
temporary directory, no bridge network), builds the base image the examples
use, prints what to export in another shell, and keeps both running until
Ctrl-C or SIGTERM, which stops them and removes the directory. Your own
Docker's images, containers and settings are never touched.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devkit.engine import DevkitError, Engine, Registry, build_base_image


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def instructions(engine: Engine, registry: Registry, work: Path) -> str:
    """What to type in another shell to use them (printed once they answer)."""
    env = engine.env({})
    exports = " ".join(
        f"{name}={shlex.quote(env[name])}" for name in ("DOCKER_HOST", "DOCKER_CONFIG")
    )
    return "\n".join(
        [
            "private dockerd and registry ready; in another shell, from this checkout:",
            "",
            f"  export {exports}",
            f"  export R={registry.address}   # the registry: --cache-repo $R/example/cache",
            "",
            "(the README's task examples use $R). Unset DOCKER_HOST and DOCKER_CONFIG",
            f"to go back to your own Docker. Ctrl-C here stops both and removes {work}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.sandbox", description=__doc__.splitlines()[0]
    )
    parser.parse_args(argv)
    # SIGTERM as an interrupt: the `with` blocks then stop dockerd and the
    # registry instead of leaving them running. SIGINT set too: started with
    # `&` from a script, Python inherits it ignored, and Ctrl-C would do nothing.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with tempfile.TemporaryDirectory(prefix="ci-load-sandbox-") as tmp:
        work = Path(tmp)
        try:
            with (
                Engine.start(work / "engine") as engine,
                Registry.start(work / "registry") as registry,
            ):
                build_base_image(engine)
                print(instructions(engine, registry, work), flush=True)
                signal.pause()
        except DevkitError as exc:
            print(f"sandbox: FAILED: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            # The `with` above has stopped dockerd and the registry by now.
            print("sandbox: stopped", file=sys.stderr)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
