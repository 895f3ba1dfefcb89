"""How a command is shown to people: as a line they can paste into a shell."""

import shlex
from typing import Mapping, Optional, Sequence


def shell_line(argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> str:
    assignments = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    return " ".join([*assignments, shlex.join(argv)])
