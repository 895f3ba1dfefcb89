"""What a run did, for people (the summary) and for machines (``--report``)."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .build_log import BuildLog, BuildStep


def step_entry(step: BuildStep) -> Dict:
    """A step as the report lists it."""
    return {"instruction": step.instruction, "cached": step.cached, "seconds": step.seconds}


@dataclass
class StageResult:
    name: str
    cached: bool  # every step of the build came from cache
    seconds: float
    # [{"instruction", "cached", "seconds"}]; seconds only from BuildKit, for
    # a step that ran.
    steps: List[Dict] = field(default_factory=list)
    # False: no image made: not built, its cache image in the registry is
    # still right; or (``failed``) its build failed.
    built: bool = True
    # In a run of several main services: the group's first service (None,
    # and left out of the report, in a run of one).
    group: Optional[str] = None
    # Its build failed (the run's ``error`` says how): it has no image, and
    # nothing of it is pushed.
    failed: bool = False

    @classmethod
    def from_log(
        cls, name: str, log: BuildLog, seconds: float, group: Optional[str] = None
    ) -> "StageResult":
        return cls(
            name, log.cached, round(seconds, 3), [step_entry(s) for s in log.steps], group=group
        )

    @property
    def label(self) -> str:
        return f"{self.group}: {self.name}" if self.group else self.name


@dataclass
class Report:
    stages: List[StageResult] = field(default_factory=list)  # the service's build last
    recipes: List[StageResult] = field(default_factory=list)
    tagged: List[str] = field(default_factory=list)
    pushed: List[str] = field(default_factory=list)
    push_skipped: List[str] = field(default_factory=list)  # the registry had them already
    retries: Dict[str, int] = field(default_factory=dict)  # step -> retries it needed
    pulled: List[str] = field(default_factory=list)  # cache images found after pull
    missing: List[str] = field(default_factory=list)  # cache images no location had
    registry_checked: bool = False  # ``missing`` is known (the pull step ran)
    builder: Optional[str] = None  # classic or buildkit
    step_seconds: Dict[str, float] = field(default_factory=dict)
    dry: bool = False  # a dry run: nothing was built, tagged or pushed
    error: Optional[str] = None  # why the run stopped, when it failed

    def __post_init__(self) -> None:
        # Commands a step started (by name: what Runner.start_all returned)
        # and a later step waits for, so their time overlaps a build. Not a
        # field: never in the JSON.
        self.pending: Dict[str, Any] = {}

    def as_dict(self) -> dict:
        data = asdict(self)
        for result in (*data["stages"], *data["recipes"]):
            if result["group"] is None:
                del result["group"]
        return data

    def write(self, path: Optional[str]) -> None:
        if not path:
            return
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.as_dict(), file, indent=2)
            file.write("\n")

    def rows(self, cache_images: Optional[Mapping[str, str]] = None) -> List["SummaryRow"]:
        """One row per recipe and stage build, in build order.

        ``cache_images`` maps a row's name (``recipe <name>`` for a recipe;
        ``<group>: <name>`` in a run of several groups) to its cache image, to
        tell whether the run pushed it.
        """
        images = dict(cache_images or {})
        names = [f"recipe {r.label}" for r in self.recipes] + [s.label for s in self.stages]
        rows = []
        for name, stage in zip(names, [*self.recipes, *self.stages]):
            if stage.failed:  # no image, so nothing pushed, whatever its name
                rows.append(SummaryRow(name, "FAILED", stage.seconds, "-", "not pushed"))
                continue
            run = sum(1 for step in stage.steps if not step["cached"])
            image = images.get(name)
            if not stage.built or image in self.push_skipped:
                # A stage not built was left out because the registry's copy is current.
                pushed = "already in registry"
            elif image in self.pushed:
                pushed = "pushed"
            else:
                pushed = "not pushed"
            rows.append(
                SummaryRow(
                    name=name,
                    cache="hit" if stage.cached else "miss",
                    seconds=stage.seconds,
                    steps=f"{run}/{len(stage.steps)}" if stage.built else "not built",
                    pushed=pushed,
                )
            )
        return rows

    def summary(self, cache_images: Optional[Mapping[str, str]] = None) -> str:
        """A plain text table of the recipe and stage builds."""
        rows = self.rows(cache_images)
        if not rows:
            return ""
        table = [SUMMARY_HEADER, *(row.cells() for row in rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(SUMMARY_HEADER))]
        lines = []
        for line in table:
            cells = [
                # seconds read best right-aligned, everything else left.
                cell.rjust(width) if column == 2 else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths))
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def markdown(self, cache_images: Optional[Mapping[str, str]] = None, title: str = "") -> str:
        """The summary as a Markdown table (for GitHub's job summary), and the
        error when the run failed."""
        lines = [f"### {title}", ""] if title else []
        rows = self.rows(cache_images)
        if rows:
            lines += [
                "| " + " | ".join(SUMMARY_HEADER) + " |",
                "| --- | --- | ---: | --- | --- |",
                *("| " + " | ".join(_markdown_cell(c) for c in row.cells()) + " |" for row in rows),
            ]
        else:
            lines.append("No image was built.")
        if self.error:
            lines += ["", f"**Error:** {_markdown_cell(self.error)}"]
        return "\n".join(lines) + "\n"


SUMMARY_HEADER = ("stage", "cache", "seconds", "steps run", "cache image")


@dataclass(frozen=True)
class SummaryRow:
    name: str  # the stage, or "recipe <name>"
    cache: str  # hit: every step came from the cache; miss; FAILED
    seconds: float
    steps: str  # "<run>/<all>", "not built", or "-" (failed)
    pushed: str  # pushed, already in registry, or not pushed

    def cells(self) -> Tuple[str, ...]:
        return (self.name, self.cache, f"{self.seconds:.1f}", self.steps, self.pushed)


def _markdown_cell(text: str) -> str:
    """Text that stays inside one Markdown table cell, shown as it is."""
    text = " ".join(str(text).split())  # a cell is one line
    for char in "\\|`*_[]<>":
        text = text.replace(char, "\\" + char)
    return text
