"""Render the compose files ci-load generates from ``templates/``.

Templates are ``string.Template`` text: ``${name}`` placeholders, filled with
``substitute`` so a missing value fails the render instead of leaving a hole.
Compose reads ``${VAR}`` too, so every value put into a template must already
be YAML (see ``scalar`` and ``block``) with any literal ``$`` written ``$$``.
"""

import json
import string
from functools import lru_cache
from pathlib import Path

import yaml


@lru_cache(maxsize=None)
def load(name: str) -> string.Template:
    here = Path(__file__).resolve().parent
    # A wheel carries the templates inside the package; a source checkout
    # has them at the top of the repo (pyproject.toml copies them over).
    # Plain paths, not importlib.resources: ci-load is never run from a zip,
    # and that import alone costs more than the rest of this module.
    packaged = here / "templates" / name
    path = packaged if packaged.is_file() else here.parent / "templates" / name
    return string.Template(path.read_text(encoding="utf-8"))


def render(template: str, **values: str) -> str:
    return load(template).substitute(values)


def scalar(value) -> str:
    """One YAML flow value; JSON is a subset of YAML and quotes everything."""
    return json.dumps(value)


def block(value, indent: int) -> str:
    """A YAML block for a mapping or list, every line indented by ``indent``."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=10_000)
    pad = " " * indent
    return "\n".join(pad + line for line in text.rstrip("\n").split("\n"))
