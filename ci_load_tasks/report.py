"""What a run did, for people (the summary) and for machines (``--report``)."""

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from .build_log import BuildLog


@dataclass
class StageResult:
    name: str
    cached: bool  # every step of the build came from cache
    seconds: float
    # [{"instruction", "cached", "seconds"}]; seconds only from BuildKit, for
    # a step that ran.
    steps: List[Dict] = field(default_factory=list)
    # False: not built, its cache image in the registry is still right.
    built: bool = True
    # In a run of several main services: the group's first service (None,
    # and left out of the report, in a run of one).
    group: Optional[str] = None

    @classmethod
    def from_log(
        cls, name: str, log: BuildLog, seconds: float, group: Optional[str] = None
    ) -> "StageResult":
        steps = [
            {"instruction": s.instruction, "cached": s.cached, "seconds": s.seconds}
            for s in log.steps
        ]
        return cls(name, log.cached, round(seconds, 3), steps, group=group)

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

    def summary(self) -> str:
        """A plain text table of the recipe and stage builds."""
        rows = [*self.recipes, *self.stages]
        if not rows:
            return ""
        names = [f"recipe {r.label}" for r in self.recipes] + [s.label for s in self.stages]
        width = max(len("stage"), *(len(n) for n in names))
        lines = [f"{'stage'.ljust(width)}  cache  seconds  steps run"]
        for name, stage in zip(names, rows):
            run = sum(1 for step in stage.steps if not step["cached"])
            steps = (
                f"{run}/{len(stage.steps)}"
                if stage.built
                else "not built: its cache image is current"
            )
            lines.append(
                f"{name.ljust(width)}  {'hit ' if stage.cached else 'miss'}   "
                f"{stage.seconds:7.1f}  {steps}"
            )
        return "\n".join(lines)
