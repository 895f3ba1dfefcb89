"""Tell, from what ``docker build`` printed, which build steps came from the cache.

ci-load reports per stage build whether every step was a cache hit.  The only
source that both builders share is their output, so this module reads it; it never
runs docker.  Two formats are understood, and told apart automatically:

Legacy builder (any client; the 28.x one adds a deprecation banner, the 20.10 one
does not, neither matters here)::

    Step 4/23 : RUN sleep 2 && make
     ---> Using cache            <- only printed for a cache hit
     ---> 3ae3b90aeddc

BuildKit with ``--progress=plain``::

    #11 [toolchain 3/3] RUN sleep 2 && make
    #11 sha256:5d91...
    #11 CACHED                   <- or "#11 DONE 2.1s" when it ran

What counts as a step, for both: the instructions that the builder executes or
finds in its cache.  ``FROM`` lines only resolve an image, and ``ARG`` lines before
the first ``FROM`` only declare variables, so neither is a step.

ONBUILD triggers are steps of the ``FROM`` line that pulls them in, one step per
trigger.  BuildKit prints each trigger that needs work as a vertex of its own
(``[hello 2/1] RUN ...``), so nothing special is needed there.  The legacy builder
prints ``# Executing N build triggers`` under the ``FROM`` step and then only
a ``---> Using cache`` line per cached trigger (a trigger that runs prints
``---> Running in ...``, or nothing for ``COPY``), never the triggers' text.  As the
cache stops matching at the first trigger that misses, the first k triggers are the
cached ones, k being the count of ``Using cache`` lines; their steps are named
after the ``FROM`` line, e.g. ``FROM cilocal/recipe:hello AS hello (build trigger
1/2)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildStep:
    instruction: str  # as docker printed it, e.g. "RUN sleep 2"
    cached: bool
    # The stage BuildKit names the step with ("stage-5" for an unnamed one);
    # None from the legacy builder, which prints no stage.
    stage: str | None = None
    # How long it ran, as BuildKit prints it ("#11 DONE 2.1s"); None from the
    # legacy builder, which prints no times, and for a cached step.
    seconds: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BuildLog:
    steps: tuple[BuildStep, ...]
    # Whether the text is the log of a build that finished: legacy
    # "Successfully built", BuildKit "writing image". A stage that is only a
    # FROM line has no step but is such a log.
    recognised: bool = True

    @property
    def cached(self) -> bool:
        """Whether the whole build came from the cache: nothing was executed.

        An empty or unreadable log must not pass for a cache hit, so this is
        false unless the log was recognised; a recognised build with no step
        (a stage that is only a FROM line) ran nothing and counts as cached.
        """
        return self.recognised and all(step.cached for step in self.steps)

    @property
    def executed(self) -> tuple[BuildStep, ...]:
        """The steps that were not found in the cache."""
        return tuple(step for step in self.steps if not step.cached)


def parse_build_output(text: str) -> BuildLog:
    """Parse the output of ``docker build``, legacy or BuildKit plain progress."""
    lines = text.splitlines()
    # BuildKit prefixes every line of a build step's output with "#N <seconds>", so
    # a line starting with "Step N/M : " can only come from the legacy builder.
    finished = any(_FINISHED.match(line) for line in lines)
    if any(_LEGACY_STEP.match(line) for line in lines):
        return BuildLog(tuple(_parse_legacy(lines)), finished)
    return BuildLog(tuple(_parse_buildkit(lines)), finished)


def _keyword(instruction: str) -> str:
    return instruction.split(maxsplit=1)[0].upper() if instruction.strip() else ""


# -- legacy builder --------------------------------------------------------------

_LEGACY_STEP = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_TRIGGERS = re.compile(r"^# Executing (\d+) build triggers?$")
_USING_CACHE = "---> Using cache"


def _parse_legacy(lines: list[str]) -> list[BuildStep]:
    steps: list[BuildStep] = []
    # The step being read: its instruction and the "--->" status lines under it.
    instruction: str | None = None
    statuses: list[str] = []
    triggers = 0
    seen_from = False

    def finish() -> None:
        if instruction is None:
            return
        if triggers:
            hits = statuses.count(_USING_CACHE)
            steps.extend(
                BuildStep(f"{instruction} (build trigger {i}/{triggers})", i <= hits)
                for i in range(1, triggers + 1)
            )
        elif _keyword(instruction) != "FROM":
            # A cache hit prints "Using cache" before the image id; a step that
            # runs prints "Running in <container>" or just the new image id.
            steps.append(BuildStep(instruction, statuses[:1] == [_USING_CACHE]))

    for line in lines:
        step = _LEGACY_STEP.match(line)
        if step:
            finish()
            number, instruction = int(step[1]), step[2]
            statuses, triggers = [], 0
            if number == 1:  # a new build, e.g. the next service's under compose
                seen_from = False
            if _keyword(instruction) == "FROM":
                seen_from = True
            elif not seen_from:
                instruction = None  # a global ARG: declares, builds nothing
            continue
        stripped = line.strip()
        if stripped.startswith("---> "):
            statuses.append(stripped)
        elif triggered := _TRIGGERS.match(stripped):
            triggers = int(triggered[1])
    finish()
    return steps


# -- BuildKit plain progress -----------------------------------------------------

# "#7 [build 2/3] RUN make": the bracket holds an optional stage name (with the
# compose service before it under compose) and the step's place in its stage.
# Vertices without "i/n" are not instructions: "[internal] load ...", "exporting to
# image", "importing cache manifest from ...", "resolve image config ...".
_FINISHED = re.compile(r"^(Successfully built [0-9a-f]+|#\d+ writing image sha256:)")
_VERTEX = re.compile(r"^#(\d+) \[(?:[^\]]*?(\S+)\s)?\d+/\d+\] (.+)$")
_CACHED = re.compile(r"^#(\d+) CACHED\s*$")
_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s\s*$")


def _parse_buildkit(lines: list[str]) -> list[BuildStep]:
    # A vertex is printed again each time the printer switches back to it, so
    # steps are keyed on the vertex number, in the order they first appear.
    instructions: dict[str, tuple[str | None, str]] = {}
    cached: set[str] = set()
    seconds: dict[str, float] = {}
    for line in lines:
        vertex = _VERTEX.match(line)
        if vertex:
            instructions.setdefault(vertex[1], (vertex[2], vertex[3]))
            continue
        hit = _CACHED.match(line)
        if hit:
            cached.add(hit[1])
            continue
        done = _DONE.match(line)
        if done:
            seconds[done[1]] = float(done[2])
    return [
        BuildStep(
            instruction, number in cached, stage, None if number in cached else seconds.get(number)
        )
        for number, (stage, instruction) in instructions.items()
        if _keyword(instruction) != "FROM"
    ]
