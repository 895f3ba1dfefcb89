"""The stages of a Dockerfile and what each one needs.

Parsing is BuildKit's own parser (the ``dockerfile`` package binds it), so
escape directives, continuations, heredocs and keyword case come out exactly
as Docker reads them; this module only interprets the instructions.
"""

import difflib
import re
import shlex
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import dockerfile as buildkit_parser

from .errors import ConfigError


@dataclass(frozen=True)
class Stage:
    index: int
    name: Optional[str]  # as Docker stores it: lower case; None when unnamed
    base: str  # the FROM image or stage, build args substituted
    needs: Tuple[str, ...]  # keys of earlier stages this one uses
    line: int  # of its FROM
    end_line: int = 0  # its last line: the line before the next FROM, or the file's last
    # "line N: what": syntax in this stage that only BuildKit builds.
    buildkit_only: Tuple[str, ...] = ()
    uses_index: bool = False  # refers to an earlier stage by number (COPY --from=0)

    @property
    def key(self) -> str:
        """The stage's name, or ``#N`` for an unnamed one."""
        return self.name if self.name else f"#{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: str
    stages: Tuple[Stage, ...]
    # "line N: what": syntax only BuildKit builds (RUN --mount, heredocs, …).
    buildkit_only: Tuple[str, ...] = ()
    header_buildkit_only: Tuple[str, ...] = ()  # the part before the first FROM
    notes: Tuple[str, ...] = ()  # what the plan should warn about

    def find(self, ref: str) -> Optional[Stage]:
        """The stage a ``--from`` value (a name or an index) or a key (``#N``) names."""
        ref = ref.strip()
        if ref.startswith("#"):
            return next((s for s in self.stages if s.key == ref), None)
        return _find(self.stages, ref)

    @property
    def last(self) -> Stage:
        return self.stages[-1]

    @property
    def header_end(self) -> int:
        """The last line before the first FROM (directives, global ARGs)."""
        return self.stages[0].line - 1

    def buildkit_only_in(self, stages: Iterable[Stage]) -> Tuple[str, ...]:
        """BuildKit-only syntax in the global part and in ``stages``."""
        found = [*self.header_buildkit_only]
        for stage in stages:
            found += stage.buildkit_only
        return tuple(dict.fromkeys(found))

    def needed_for(self, targets: Iterable[Stage]) -> List[Stage]:
        """Every stage the ``targets`` need, themselves included, in file order.

        File order is a valid build order: a stage can only use earlier ones.
        """
        by_key = {s.key: s for s in self.stages}
        wanted = set()
        todo = [t.key for t in targets]
        while todo:
            key = todo.pop()
            if key not in wanted:
                wanted.add(key)
                todo.extend(by_key[key].needs)
        return [s for s in self.stages if s.key in wanted]


def parse_dockerfile(
    text: str,
    path: str,
    build_args: Mapping[str, Optional[str]],
    platform: Optional[Mapping[str, str]] = None,
    contexts: Iterable[str] = (),
    reused_names: bool = False,
) -> Dockerfile:
    """Read the stages of Dockerfile ``text`` (read from ``path``).

    ``build_args`` are the compose build args: they override the defaults of
    the global ``ARG``s before the first ``FROM``, as ``docker build`` does.
    ``platform`` gives the ARGs BuildKit fills in by itself (``TARGETARCH``
    …, see ``platform_args``); the classic builder has none. ``contexts``
    are the names of the build's named contexts (compose
    ``additional_contexts``): ``FROM name`` or ``--from=name`` then reads
    that context, even where a stage has the same name, so it needs no stage.
    Two stages of one name are an error (the classic builder refuses them)
    unless ``reused_names``: BuildKit takes the later one for the name, so
    the earlier one is kept as an unnamed stage (``#N``), named in ``notes``.
    """
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigError(
            f"{path}:{line}: the Dockerfile holds a NUL character; "
            "remove it (docker cannot read such a file either)"
        )
    try:
        commands = buildkit_parser.parse_string(_ascii_only(text))
    except buildkit_parser.GoParseError as error:
        reason = " ".join(str(error).split())  # one line, whatever the parser said
        raise ConfigError(f"{path}: cannot parse the Dockerfile: {reason}") from None

    frontend = _syntax_directive(text)
    if frontend is None:
        _check_instructions(commands, path)
    global_args: Dict[str, str] = dict(platform or {})
    # Reference lookups see no stage that a named context stands in for.
    shadowed = {name.lower() for name in contexts}
    stages: List[Stage] = []
    notes: List[str] = []
    reused = _reused_names(commands) if reused_names else {}
    header_buildkit_only: List[str] = []
    current = None  # the stage being read, as a dict of Stage fields
    for command in commands:
        instruction = command.cmd.upper()
        buildkit_only = _buildkit_only(command, instruction)
        if instruction == "FROM":
            if current:
                stages.append(_finish(current, command.start_line - 1))
            current = _read_from(command, len(stages), global_args, stages, path, shadowed)
            notes.extend(current.pop("notes"))
            later = reused.get((current["name"], command.start_line))
            if later:
                notes.append(
                    f"{path}:{command.start_line}: stage name {current['name']!r} is used "
                    f"again at line {later}; BuildKit builds the later stage for that "
                    f"name, so this one is stage #{current['index']}"
                )
                current["name"] = None
            buildkit_only += _platform_args_used(command, global_args)
        elif current is None and instruction == "ARG":
            _declare_args(command.value, build_args, global_args)
        elif current is not None:
            needs, by_index = _stages_used(command, stages, path, shadowed, notes)
            current["needs"].extend(needs)
            current["uses_index"] = current["uses_index"] or by_index
        (current["buildkit_only"] if current else header_buildkit_only).extend(buildkit_only)
    if current is None:
        raise ConfigError(f"{path}: no FROM instruction: a Dockerfile must start a stage with FROM")
    stages.append(_finish(current, len(_lines(text))))
    _check_unique_names(stages, path)
    if frontend is not None:
        notes.append(
            f"{path}:{frontend[0]}: '# syntax={frontend[1]}' asks BuildKit to build with "
            "that frontend image, which it pulls from its registry at build time: the "
            "daemon must reach it (the classic builder ignores the line)"
        )
    return Dockerfile(
        path=path,
        stages=tuple(stages),
        notes=tuple(notes),
        buildkit_only=tuple(
            dict.fromkeys([*header_buildkit_only, *(b for s in stages for b in s.buildkit_only)])
        ),
        header_buildkit_only=tuple(header_buildkit_only),
    )


#: Every instruction Docker's own Dockerfile frontend knows.
INSTRUCTIONS = frozenset(
    "ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER ONBUILD "
    "RUN SHELL STOPSIGNAL USER VOLUME WORKDIR".split()
)

# Parser directives stand in the first lines, before any other line or comment.
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(\S+)\s*$")


def _syntax_directive(text: str) -> Optional[Tuple[int, str]]:
    """Line and frontend image of a ``# syntax=`` directive, if the file has one."""
    for number, line in enumerate(_lines(text), start=1):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return None
        if match.group(1).lower() == "syntax":
            return number, match.group(2)
    return None


def _check_instructions(commands, path: str) -> None:
    """Refuse an instruction docker does not know, before any docker work.

    BuildKit's parser passes any word through (``npm run build`` is an
    instruction ``npm`` to it), and docker stops only when it builds. A
    custom frontend (``# syntax=``) may know more, so it is not checked then.
    """
    for command in commands:
        if command.cmd.upper() not in INSTRUCTIONS:
            raise ConfigError(
                f"{path}:{command.start_line}: unknown instruction {command.cmd!r}; docker "
                "refuses it: fix the line (a continued line missing its trailing '\\'?)"
            )


def _ascii_only(text: str) -> str:
    """``text`` with each non-ASCII character as ``?``.

    NOTE: the parser binding garbles non-ASCII text in flags (``--from=ü``
    came back as ``--from=Ã¼``), fails on some of it, and aborts the process
    on a lone surrogate. What ci-load reads (stage names, image references,
    flag names) is ASCII in any Dockerfile docker builds, and one character
    for one keeps every line and column where it was.
    """
    return text if text.isascii() else re.sub(r"[^\x00-\x7f]", "?", text)


def platform_args(os_name: str, arch: str, variant: str = "") -> Dict[str, str]:
    """The platform ARGs BuildKit predefines, for building on and for one platform.

    ci-load never cross-builds, so the build and target platform are the
    daemon's own.
    """
    platform = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
    found = {}
    for prefix in ("BUILD", "TARGET"):
        found.update(
            {
                f"{prefix}PLATFORM": platform,
                f"{prefix}OS": os_name,
                f"{prefix}ARCH": arch,
                f"{prefix}VARIANT": variant,
            }
        )
    return found


def pruned_text(text: str, dockerfile: Dockerfile, keep: Iterable[Stage]) -> Optional[str]:
    """``text`` with only the global part and the stages in ``keep``.

    The classic builder builds every stage before its target; a Dockerfile
    without the stages the target does not need keeps it from building them.
    Each kept stage is its lines as written, so its instructions, and with
    them its layer cache, stay the same. None when it cannot be done safely:
    a kept stage names an earlier one by number, and dropping stages would
    renumber them.
    """
    keep = list(keep)
    kept_keys = {s.key for s in keep}
    if len(keep) == len(dockerfile.stages):
        return None  # nothing to drop
    first_dropped = min(s.index for s in dockerfile.stages if s.key not in kept_keys)
    if any(s.uses_index and s.index > first_dropped for s in keep):
        return None
    lines = _lines(text)
    chosen = lines[: dockerfile.header_end]
    for stage in keep:
        chosen += lines[stage.line - 1 : stage.end_line]
    if chosen and not chosen[-1].endswith(("\n", "\r")):
        chosen[-1] += "\n"
    return "".join(chosen)


def _lines(text: str) -> List[str]:
    """The lines of a Dockerfile as BuildKit counts them: ended by \\n only
    (a \\r stays with its line; form feeds and the like are not breaks)."""
    lines = re.split(r"(?<=\n)", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _finish(current: dict, end_line: int) -> Stage:
    return Stage(
        index=current["index"],
        name=current["name"],
        base=current["base"],
        needs=tuple(dict.fromkeys(current["needs"])),
        line=current["line"],
        end_line=end_line,
        buildkit_only=tuple(dict.fromkeys(current["buildkit_only"])),
        uses_index=current["uses_index"],
    )


# Flags the classic builder refuses ("… requires BuildKit"), per instruction.
_BUILDKIT_FLAGS = {
    "RUN": ("--mount", "--network", "--security"),
    "COPY": ("--link", "--chmod", "--parents", "--exclude"),
    "ADD": ("--link", "--chmod", "--checksum", "--keep-git-dir", "--exclude"),
}


def _buildkit_only(command, instruction: str) -> List[str]:
    found = []
    where = f"line {command.start_line}"
    if command.heredocs:
        found.append(f"{where}: a heredoc ({instruction} <<{command.heredocs[0].name})")
    for flag in command.flags:
        option = flag.partition("=")[0].lower()
        if option in _BUILDKIT_FLAGS.get(instruction, ()):
            found.append(f"{where}: {instruction} {option}")
        elif instruction == "FROM" and option == "--platform" and "$" in flag:
            # BuildKit fills $BUILDPLATFORM and friends; the classic builder
            # leaves them empty and fails.
            found.append(f"{where}: FROM {flag}")
    return found


# ARGs BuildKit fills in by itself; the classic builder leaves them empty
# unless the Dockerfile declares them (checked here with dockerd 20.10).
# Planning for BuildKit gives them values (platform_args).
_PLATFORM_ARGS = {
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
}


def _platform_args_used(command, global_args) -> List[str]:
    image = command.value[0] if command.value else ""
    # Only a use without a default: ${TARGETARCH:-amd64} builds either way.
    names = {
        m.group("braced") or m.group("plain")
        for m in _VARIABLE.finditer(image)
        if not (m.group("rest") or "").startswith((":-", "-"))
    }
    return [
        f"line {command.start_line}: FROM uses ${name}, which only BuildKit fills in"
        for name in sorted(names & _PLATFORM_ARGS - set(global_args))
    ]


def _reused_names(commands) -> Dict[Tuple[str, int], int]:
    """(name, line of its FROM) -> line of the last FROM giving that name,
    for every stage whose name a later stage takes again."""
    last = {}
    named = []
    for command in commands:
        words = list(command.value)
        if command.cmd.upper() == "FROM" and len(words) == 3 and words[1].upper() == "AS":
            name = words[2].strip().lower()
            named.append((name, command.start_line))
            last[name] = command.start_line
    return {(name, line): last[name] for name, line in named if last[name] != line}


def _check_unique_names(stages, path) -> None:
    seen: Dict[str, int] = {}
    for stage in stages:
        if stage.name is None:
            continue
        if stage.name in seen:
            raise ConfigError(
                f"{path}:{stage.line}: stage name {stage.name!r} is already used at line "
                f"{seen[stage.name]}; docker refuses a Dockerfile with two stages of one name"
            )
        seen[stage.name] = stage.line


def _read_from(command, index, global_args, earlier, path, shadowed=frozenset()):
    words = list(command.value)
    name = None
    if len(words) == 3 and words[1].upper() == "AS":
        name = words[2].strip().lower()
        words = words[:1]
        if not _STAGE_NAME.match(name):
            raise ConfigError(
                f"{path}:{command.start_line}: {words[0]!r} AS {name!r}: a stage name "
                "must start with a letter and hold only letters, digits, '-', '_' "
                "and '.'; docker would refuse it"
            )
    if len(words) != 1:
        raise ConfigError(
            f"{path}:{command.start_line}: cannot read {command.original!r}: "
            "expected FROM [--platform=…] IMAGE [AS NAME]"
        )
    base = _unquote_image(expand_args(words[0], global_args, f"{path}:{command.start_line}"))
    if not base:
        raise ConfigError(
            f"{path}:{command.start_line}: {command.original!r} names no image once its "
            "variables are filled in; give the build arg it uses a value"
        )
    needs = []
    # FROM names an earlier stage by name only; "FROM 0" would be an image.
    stage = None if base.isdigit() else _find(earlier, base, shadowed)
    if stage is not None:
        needs.append(stage.key)
    notes = []
    if stage is None and "/" not in base and ":" not in base and "@" not in base:
        # A bare name one letter away from a stage is far likelier a typo than
        # an image of Docker Hub's library; docker would only fail on the pull.
        names = [s.name for s in earlier if s.name]
        close = difflib.get_close_matches(base.lower(), names, n=1, cutoff=0.75)
        if close:
            notes.append(
                f"{path}:{command.start_line}: FROM {base} names no earlier stage, so docker "
                f"pulls it as an image; did you mean stage {close[0]!r}?"
            )
    return {
        "notes": notes,
        "index": index,
        "name": name,
        "base": base,
        "needs": needs,
        "line": command.start_line,
        "buildkit_only": [],
        "uses_index": False,
    }


# What docker accepts as a stage name (after lower-casing it).
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


def _stages_used(command, earlier, path, shadowed, notes: List[str]) -> Tuple[List[str], bool]:
    """Keys of earlier stages that ``COPY --from`` or ``RUN --mount`` reads,
    and whether one of them is named by its number; a bare name that is no
    stage is noted in ``notes`` (see ``_not_a_stage``)."""
    refs = []
    for flag in command.flags:
        option, _, value = flag.partition("=")
        option = option.lower()
        if option == "--from" and command.cmd.upper() in ("COPY", "ADD"):
            refs.append(value)
        elif option == "--mount":
            for field in value.split(","):
                key, _, field_value = field.partition("=")
                if key.strip().lower() == "from":
                    refs.append(field_value.strip())
    used = []
    by_index = False
    for ref in refs:
        stage = _find(earlier, ref, shadowed)
        if stage is not None:
            used.append(stage.key)
            by_index = by_index or ref.strip().isdigit()
        elif ref.isdigit():
            raise ConfigError(
                f"{path}:{command.start_line}: {command.original!r} refers to stage "
                f"{ref}, which is not an earlier stage"
            )
        # Anything else is an image (``COPY --from=busybox``), not a stage.
        elif ref.lower() not in shadowed:
            notes.extend(_not_a_stage(ref, earlier, f"{path}:{command.start_line}"))
    return used, by_index


def _not_a_stage(ref: str, earlier, where: str) -> List[str]:
    """A note for a bare ``--from`` name that is no earlier stage: docker
    takes it for an image of Docker Hub's library and fails only when it
    cannot pull it, with an error that names no stage. A name with a
    registry, tag or digest is plainly an image and gets none.

    NOTE: a stage defined further down is not among ``earlier``: the note
    then lists the stages before it, without saying that one comes later.
    """
    if any(mark in ref for mark in "/:@$"):
        return []
    names = [stage.name for stage in earlier if stage.name]
    close = difflib.get_close_matches(ref.lower(), names, n=1, cutoff=0.75)
    guess = (
        f"did you mean stage {close[0]!r}?"
        if close
        else (
            f"if a stage was meant, the earlier ones are {', '.join(names)}"
            if names
            else "no stage comes before it"
        )
    )
    return [
        f"{where}: --from={ref} names no earlier stage, so docker pulls it as an image; {guess}"
    ]


def _find(stages, ref, shadowed=frozenset()):
    """The stage ``ref`` names: a number, or a name no named context in
    ``shadowed`` replaces."""
    ref = ref.strip()
    if ref.isdigit():
        index = int(ref)
        return stages[index] if index < len(stages) else None
    if ref.lower() in shadowed:
        return None
    for stage in stages:
        if stage.name is not None and stage.name == ref.lower():
            return stage
    return None


def _declare_args(values, build_args, global_args):
    for declaration in values:
        name, has_default, default = declaration.partition("=")
        if name in build_args and build_args[name] is not None:
            global_args[name] = build_args[name]
        elif has_default:
            global_args[name] = expand_args(_unquote(default), global_args, name)
        else:
            global_args.setdefault(name, "")


def _unquote_image(value: str) -> str:
    """Drop shell quotes as Docker does: ``debian:"12-slim"`` is ``debian:12-slim``."""
    if '"' not in value and "'" not in value:
        return value
    try:
        words = shlex.split(value)
    except ValueError:
        return value  # unbalanced quotes: leave it for docker to refuse
    return words[0] if len(words) == 1 else value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)
_OPERATORS = (":-", ":+", "-", "+")  # the ones Docker allows in FROM


def expand_args(text: str, values: Mapping[str, str], where: str = "") -> str:
    """Substitute ``$NAME``, ``${NAME}``, ``${NAME:-word}``, ``${NAME-word}``,
    ``${NAME:+word}`` and ``${NAME+word}``, the forms Docker allows in ``FROM``;
    a word may hold variables of its own (``${A:-${B}}``).

    An unknown name becomes empty, as in Docker; a ``$`` before anything but
    a name or ``{`` stays. Another form (``${X:?msg}``, ``${X#prefix}``) or an
    unclosed ``${`` is refused rather than guessed at.
    """
    found = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            found.append(text[i])
            i += 1
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            if end is None:
                raise ConfigError(
                    f"{where}: {text[i:]!r} has no closing '}}'; close the "
                    "variable with '}' as docker requires"
                )
            found.append(_expand_braced(text[i : end + 1], values, where))
            i = end + 1
        else:
            name = _NAME.match(text, i + 1)
            if name:
                found.append(values.get(name.group(0), ""))
                i = name.end()
            else:
                found.append("$")
                i += 1
    return "".join(found)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _closing_brace(text: str, start: int) -> Optional[int]:
    """Where the ``}`` closing a ``${`` opened just before ``start`` is."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _expand_braced(expression: str, values: Mapping[str, str], where: str) -> str:
    """One ``${…}`` expression, its braces included."""
    inner = expression[2:-1]
    name = _NAME.match(inner)
    if not name:
        raise ConfigError(f"{where}: {expression!r} names no variable; write ${{NAME}}")
    rest = inner[name.end() :]
    op = next((o for o in _OPERATORS if rest.startswith(o)), "")
    if rest and not op:
        raise ConfigError(
            f"{where}: {expression!r} uses a form of variable ci-load does "
            "not expand; use $NAME, ${NAME}, ${NAME:-default} or ${NAME:+alt}"
        )
    word = expand_args(rest[len(op) :], values, where) if op else ""
    is_set = name.group(0) in values
    value = values.get(name.group(0), "")
    if op == ":-":
        return value or word
    if op == "-":
        return value if is_set else word
    if op == ":+":
        return word if value else ""
    if op == "+":
        return word if is_set else ""
    return value
