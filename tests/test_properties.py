"""Property-based tests: any input gives a valid result or a clear ConfigError.

Three areas, each checked against an oracle written here from Docker's own
rules rather than from ci-load's code:

1. cache image names (``names``) against Docker's reference grammar;
2. Dockerfile parsing (``stages.parse_dockerfile``, ``needed_for``,
   ``pruned_text``) against structural invariants and, for generated
   Dockerfiles, against a model of what Docker reads;
3. ``stages.expand_args`` against a small re-implementation of BuildKit's
   shell lexer (``frontend/dockerfile/shell/lex.go``).

A failing test here is a bug report: hypothesis prints the smallest input
that breaks the property.
"""

import re
import string
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from ci_load_tasks.errors import ConfigError
from ci_load_tasks.names import CacheLocation, cache_images, fit_tag
from ci_load_tasks.stages import expand_args, parse_dockerfile, platform_args, pruned_text

PATH = "Dockerfile"
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_one_line_config_error(error: ConfigError, *mentions: str) -> None:
    message = str(error)
    assert message.strip(), "a ConfigError needs a message"
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    for mention in mentions:
        assert mention in message, f"{mention!r} not named in {message!r}"


# =============================================================================
# 1. Cache image names
# =============================================================================

# Docker's reference grammar (github.com/distribution/reference, reference.go):
#   reference       := name [ ":" tag ] [ "@" digest ]
#   name            := [domain '/'] remote-name
#   domain          := host [':' port-number]
#   host            := domain-name | IPv4address | \[ IPv6address \]
#   domain-name     := domain-component ['.' domain-component]*
#   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
#   port-number     := /[0-9]+/
#   remote-name     := path-component ['/' path-component]*
#   path-component  := alpha-numeric [separator alpha-numeric]*
#   alpha-numeric   := /[a-z0-9]+/
#   separator       := /[_.]|__|[-]+/
#   tag             := /[\w][\w.-]{0,127}/
# and a name is at most 255 characters (NameTotalLengthMax).
_ALPHA_NUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHA_NUMERIC}(?:{_SEPARATOR}{_ALPHA_NUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

TAG_RE = re.compile(_TAG, re.ASCII)
DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)
REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?", re.ASCII)
NAME_TOTAL_LENGTH_MAX = 255


def reference_problem(reference: str, length: bool = True) -> Optional[str]:
    """Why ``reference`` is not a valid Docker image reference, or None.
    ``length``: check the name's length limit too."""
    match = REFERENCE_RE.fullmatch(reference)
    if not match:
        return "does not match the reference grammar"
    name = match.group("name")
    if length and len(name) > NAME_TOTAL_LENGTH_MAX:
        return f"name is {len(name)} characters, over {NAME_TOTAL_LENGTH_MAX}"
    # docker (distribution/reference normalize.go, splitDockerDomain) reads the
    # first component as a registry when it has '.' or ':', is 'localhost' or
    # holds an upper-case letter: then it must be a valid domain.
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        if not DOMAIN_RE.fullmatch(first):
            return f"{first!r} is read as a registry host but is not a valid one"
        components = rest.split("/")
    else:
        components = name.split("/")
    bad = [c for c in components if not PATH_COMPONENT_RE.fullmatch(c)]
    if bad:
        return f"path components {bad!r} are not valid"
    return None


def assert_valid_image(image: str, length: bool = True) -> None:
    problem = reference_problem(image, length)
    assert problem is None, f"{image!r}: {problem}"
    repo, _, tag = image.rpartition(":")
    assert "/" not in tag, f"{image!r} has no tag"
    assert len(tag) <= 128, f"{image!r}: tag of {len(tag)} characters"


# -- strategies --------------------------------------------------------------

_valid_components = st.tuples(
    st.lists(st.text(alphabet="abz019", min_size=1, max_size=5), min_size=1, max_size=3),
    st.sampled_from([".", "_", "__", "-", "--"]),
).map(lambda t: t[1].join(t[0]))
_hosts = st.one_of(
    st.sampled_from(
        [
            "localhost",
            "127.0.0.1",
            "registry.example.com",
            "Registry.Example.COM",
            "[::1]",
            "[fe80::1%eth0]",
            "ghcr.io",
            "reg_istry.io",
            "-bad.io",
            "bad-.io",
            "a..b",
            "xn--bcher-kva.example",
            "bücher.example",
            "host.io.",
        ]
    ),
    st.text(alphabet="aZ0.-_", min_size=1, max_size=8),
)
_ports = st.one_of(
    st.integers(0, 99999).map(str), st.sampled_from(["", "http", "5000x", "-1", "٥٠٠٠"])
)
_components = st.one_of(
    _valid_components,
    _valid_components.map(str.upper),
    st.text(alphabet="abcXYZ019._-_ é@:\n\t", max_size=8),
    st.text(max_size=5),
)
_tags = st.one_of(
    st.text(alphabet="aZ09_.-", min_size=1, max_size=8),
    st.text(max_size=8),
    st.integers(120, 140).map(lambda n: "t" * n),
)
_digest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
    lambda h: "sha256:" + h
)
_whitespace = st.sampled_from(["", " ", "\t", "\n", " \u00a0", "\u3000"])


@st.composite
def location_texts(draw):
    parts = []
    if draw(st.booleans()):
        host = draw(_hosts)
        if draw(st.booleans()):
            host += ":" + draw(_ports)
        parts.append(host)
    parts += draw(st.lists(_components, min_size=0, max_size=4))
    text = "/".join(parts)
    suffix = draw(st.sampled_from(["", "tag", "empty", "digest", "tag+digest"]))
    if suffix in ("tag", "tag+digest"):
        text += ":" + draw(_tags)
    if suffix == "empty":
        text += ":"
    if suffix in ("digest", "tag+digest"):
        text += "@" + draw(_digest)
    return draw(_whitespace) + text + draw(_whitespace)


@st.composite
def valid_locations(draw):
    """Locations CacheLocation.parse accepts."""
    host = draw(
        st.sampled_from(
            [
                "",
                "localhost:5000/",
                "127.0.0.1:5000/",
                "Registry.Example.com/",
                "[::1]:5000/",
                "ghcr.io/",
            ]
        )
    )
    components = draw(st.lists(_valid_components, min_size=1, max_size=3))
    text = host + "/".join(components)
    if draw(st.booleans()):
        text += (
            ":"
            + draw(st.text(alphabet="aZ09_", min_size=1, max_size=3))
            + draw(st.text(alphabet="aZ09_.-", max_size=30))
        )
    try:
        return CacheLocation.parse(text)
    except ConfigError:
        assume(False)


# What reaches cache_images from a real run: docker stage names, and recipe
# names taken from tags (RECIPE_REPO:NAME).
_stage_names = st.tuples(st.sampled_from("abz"), st.text(alphabet="az09_.-", max_size=20)).map(
    "".join
)
_long_stage_names = st.tuples(_stage_names, st.integers(100, 160)).map(
    lambda t: (t[0] * t[1])[: t[1]]
)
_recipe_names = st.tuples(st.sampled_from("aZ0_"), st.text(alphabet="aZ09_.-", max_size=30)).map(
    "".join
)
_branch_names = st.one_of(
    st.sampled_from(
        [
            "feature/Login-Page",
            "main",
            "release/1.2",
            "-x",
            ".hidden",
            "dependabot/npm_and_yarn/@types/node-20.1",
            "ü/ñ",
            "a b",
            "",
        ]
    ),
    st.text(alphabet="aZ09/._+@ -", min_size=1, max_size=200),
    st.text(),
)


# -- properties ----------------------------------------------------------------


@given(text=st.one_of(location_texts(), st.text()))
@settings(max_examples=500, deadline=None)
def test_a_cache_location_is_a_valid_reference_or_a_config_error(text):
    try:
        location = CacheLocation.parse(text)
    except ConfigError as error:
        assert_one_line_config_error(error, "cache location")
        return
    assert CacheLocation.parse(text) == location  # deterministic
    assert str(location) == text.strip()  # nothing dropped or invented
    problem = reference_problem(str(location), length=False)
    assert problem is None, f"accepted {text!r} as {location}: {problem}"
    for image in cache_images(location, "app", "v1", ["deps"], ["hello"]).all():
        assert_valid_image(image, length=False)


@given(
    host=_hosts,
    port=st.one_of(st.none(), _ports),
    path=st.lists(_valid_components, min_size=1, max_size=2).map("/".join),
    tag=st.one_of(st.none(), st.just("main")),
)
def test_a_registry_host_is_valid_or_a_config_error(host, port, path, tag):
    text = host + ("" if port is None else f":{port}") + "/" + path
    text += f":{tag}" if tag else ""
    try:
        location = CacheLocation.parse(text)
    except ConfigError as error:
        assert_one_line_config_error(error, "cache location")
        return
    problem = reference_problem(str(location))
    assert problem is None, f"accepted {text!r}: {problem}"


@given(
    components=st.lists(st.integers(1, 120).map(lambda n: "a" * n), min_size=1, max_size=5),
    prefix=st.one_of(st.none(), st.just("main")),
)
def test_a_cache_location_whose_name_docker_refuses_as_too_long_is_a_config_error(
    components, prefix
):
    text = "/".join(components) + (f":{prefix}" if prefix else "")
    try:
        location = CacheLocation.parse(text)
    except ConfigError as error:
        assert_one_line_config_error(error, "cache location")
        return
    assert len(location.repo) <= NAME_TOTAL_LENGTH_MAX, (
        f"accepted a repository name of {len(location.repo)} characters; docker "
        f"refuses names over {NAME_TOTAL_LENGTH_MAX}"
    )


@given(
    location=valid_locations(),
    data=st.data(),
    character=st.sampled_from(["\n", "\r", "\t", " ", "\x00", "\x0b", "\u2028", "\u00a0"]),
)
@settings(max_examples=300)
def test_a_cache_location_with_a_control_character_inside_is_a_config_error(
    location, data, character
):
    text = str(location)
    # Anywhere, or where one part of the name ends (before a '/' or ':').
    ends = [i for i, c in enumerate(text) if c in "/:"]
    at = data.draw(st.one_of(st.integers(0, len(text)), st.sampled_from(ends or [0])))
    text = text[:at] + character + text[at:]
    assume(text.strip() != str(location))  # white space around is allowed
    with pytest.raises(ConfigError) as error:
        CacheLocation.parse(text)

    assert_one_line_config_error(error.value, "cache location")


@given(
    location=valid_locations(),
    service=st.one_of(st.sampled_from(["app", "Web-API", "svc_1"]), st.text()),
    version=st.one_of(st.none(), _branch_names),
    stages=st.lists(st.one_of(_stage_names, _long_stage_names, st.text()), max_size=5),
    recipes=st.lists(st.one_of(_recipe_names, st.text()), max_size=3),
)
@SLOW
def test_cache_images_are_valid_references_or_a_config_error(
    location, service, version, stages, recipes
):
    try:
        images = cache_images(location, service, version, stages, recipes)
    except ConfigError as error:
        assert_one_line_config_error(error)
        return
    assert cache_images(location, service, version, stages, recipes) == images
    for image in images.all():
        assert_valid_image(image)
        assert image.startswith(location.repo + ":")
    assert set(images.stages) == set(stages) and set(images.recipes) == set(recipes)
    for tag, image in images.shortened:
        assert len(tag) > 128 and image in images.all()


@given(
    location=valid_locations(),
    service=st.sampled_from(["app", "web", "x" * 100]),
    version=st.one_of(st.none(), _branch_names),
    stages=st.lists(st.one_of(_stage_names, _long_stage_names), unique=True, max_size=6),
    recipes=st.lists(_recipe_names, unique=True, max_size=4),
)
@SLOW
def test_distinct_stages_and_recipes_get_distinct_images(
    location, service, version, stages, recipes
):
    images = cache_images(location, service, version, stages, recipes)

    everything = images.all()
    assert len(set(everything)) == len(everything), everything


@given(
    tag=st.one_of(
        st.text(),
        st.text(max_size=300),
        _branch_names,
        st.integers(120, 300).map(lambda n: "t" * n),
    )
)
def test_fit_tag_always_gives_a_valid_tag_the_same_way(tag):
    fitted = fit_tag(tag)

    assert TAG_RE.fullmatch(fitted), f"fit_tag({tag!r}) == {fitted!r} is not a tag"
    assert len(fitted) <= 128
    assert fit_tag(tag) == fitted
    assert fit_tag(fitted) == fitted  # a valid tag is kept as it is


# =============================================================================
# 3 (used by 2). A reference implementation of Docker's variable expansion
# =============================================================================

_NAME_START = set(string.ascii_letters + "_")
_NAME_CHARS = _NAME_START | set(string.digits)


class DockerRefuses(Exception):
    """BuildKit's lexer would stop with an error here."""


class NotSupported(Exception):
    """A form Docker expands but ci-load promises to refuse (ConfigError)."""


def docker_expand(text: str, env: Dict[str, str]) -> str:
    """Expand ``text`` as BuildKit's shell lexer does for the forms generated
    here: ``$N``, ``${N}``, ``${N:-w}``, ``${N-w}``, ``${N:+w}``, ``${N+w}``
    with ``w`` itself any such text, and ``$`` before a non-name character
    kept as it is. ASCII names only; no quotes or escapes."""
    value, _ = _expand(text, 0, env, stop=None)
    return value


def _expand(text, i, env, stop):
    out = []
    while i < len(text):
        ch = text[i]
        if stop is not None and ch == stop:
            return "".join(out), i
        if ch == "$":
            piece, i = _dollar(text, i + 1, env)
            out.append(piece)
        else:
            out.append(ch)
            i += 1
    if stop is not None:
        raise DockerRefuses("syntax error: missing '}'")
    return "".join(out), i


def _name_end(text, i):
    if i < len(text) and text[i] in _NAME_START:
        i += 1
        while i < len(text) and text[i] in _NAME_CHARS:
            i += 1
    return i


def _dollar(text, i, env):
    if i >= len(text) or text[i] != "{":
        end = _name_end(text, i)
        if end == i:
            return "$", i
        return env.get(text[i:end], ""), end
    i += 1
    if i >= len(text):
        raise DockerRefuses("syntax error: missing '}'")
    if text[i] in "{}:":
        raise DockerRefuses("syntax error: bad substitution")
    end = _name_end(text, i)
    name = text[i:end]
    if end >= len(text):
        raise DockerRefuses("syntax error: missing '}'")
    if text[end] == "}":
        return env.get(name, ""), end + 1
    for op in (":-", ":+", "-", "+"):
        if text.startswith(op, end):
            word, close = _expand(text, end + len(op), env, stop="}")
            is_set, value = name in env, env.get(name, "")
            result = {
                ":-": value or word,
                "-": value if is_set else word,
                ":+": word if value else "",
                "+": word if is_set else "",
            }[op]
            return result, close + 1
    raise NotSupported(text[end:])


# -- strategies for expressions ------------------------------------------------

VAR_NAMES = ["A", "B", "EMPTY", "X_1", "_u", "UNSET", "TARGETARCH"]
_SUPPORTED_OPS = [":-", "-", ":+", "+"]
# Forms Docker has (or refuses) that ci-load does not expand.
_UNSUPPORTED_OPS = [":?", "?", "#", "##", "%", "%%", "/", "//", ":=", "=", "^", ":"]
_literals = st.text(alphabet="ab09/:._-@}", max_size=4)  # never '$' or '{'
_words = st.text(alphabet="ab09/:._-@", max_size=4)  # no '}' either
# '$' before a character that starts no name and no special parameter.
_lone_dollars = st.sampled_from(["$/", "$:", "$.", "$}"])


def _variable(words):
    return st.one_of(
        st.sampled_from(VAR_NAMES).map(lambda n: "$" + n),
        st.sampled_from(VAR_NAMES).map(lambda n: "${%s}" % n),
        st.tuples(st.sampled_from(VAR_NAMES), st.sampled_from(_SUPPORTED_OPS), words).map(
            lambda t: "${%s%s%s}" % t
        ),
    )


def _joined(piece, max_size=6):
    return st.lists(piece, max_size=max_size).map("".join)


flat_expressions = _joined(st.one_of(_literals, _variable(_words)))
nested_expressions = st.recursive(
    _variable(_words),
    lambda inner: _variable(_joined(st.one_of(_words, inner), max_size=3)),
    max_leaves=6,
).flatmap(lambda v: _joined(st.one_of(_literals, st.just(v)), max_size=4))

_values = st.one_of(st.just(""), st.text(alphabet="ab09/:._-${}", max_size=6), st.text(max_size=4))
envs = st.dictionaries(st.sampled_from([n for n in VAR_NAMES if n != "UNSET"]), _values)


@given(expression=flat_expressions, env=envs)
def test_expand_args_agrees_with_docker_on_the_supported_forms(expression, env):
    assert expand_args(expression, env, "Dockerfile:1") == docker_expand(expression, env)


@given(
    expression=st.one_of(flat_expressions, _joined(st.one_of(_literals, _lone_dollars))), env=envs
)
def test_a_dollar_that_starts_no_variable_is_kept(expression, env):
    assert expand_args(expression, env, "Dockerfile:1") == docker_expand(expression, env)


@given(expression=nested_expressions, env=envs)
def test_expand_args_agrees_with_docker_on_a_variable_inside_a_default(expression, env):
    # Docker documents it: "word can be any string, including additional
    # environment variables" (${A:-${B}}). Refusing the form is fine too;
    # a different result is not.
    expected = docker_expand(expression, env)
    try:
        got = expand_args(expression, env, "Dockerfile:1")
    except ConfigError as error:
        assert_one_line_config_error(error, "Dockerfile:1")
        return
    assert got == expected


@given(
    before=flat_expressions,
    name=st.sampled_from(VAR_NAMES),
    op=st.sampled_from(_UNSUPPORTED_OPS),
    word=_words,
    after=flat_expressions,
    env=envs,
)
def test_an_unsupported_form_is_a_config_error_naming_it(before, name, op, word, after, env):
    form = "${%s%s%s}" % (name, op, word)
    expression = before + form + after
    try:
        docker_expand(expression, env)
    except (DockerRefuses, NotSupported):
        pass  # the oracle agrees it is not a plain form
    else:
        assume(False)  # e.g. ':' followed by a word starting with '-': ${A:-w}

    with pytest.raises(ConfigError) as error:
        expand_args(expression, env, "Dockerfile:7")

    assert_one_line_config_error(error.value, "Dockerfile:7")


@given(
    before=flat_expressions,
    broken=st.sampled_from(["${", "${A", "${A:-x", "${A-", "${}", "${:-x}", "${{A}}"]),
    env=envs,
)
def test_an_expression_docker_refuses_is_a_config_error(before, broken, env):
    expression = before + broken
    with pytest.raises(DockerRefuses):
        docker_expand(expression, env)

    with pytest.raises(ConfigError) as error:
        expand_args(expression, env, "Dockerfile:3")

    assert_one_line_config_error(error.value, "Dockerfile:3")


# =============================================================================
# 2. Dockerfile parsing
# =============================================================================

CONTEXT_SETS = [(), ("tools",), ("Build", "ctx")]
OPTIONS = st.fixed_dictionaries(
    {
        "reused_names": st.booleans(),
        "platform": st.sampled_from([None, platform_args("linux", "amd64")]),
        "contexts": st.sampled_from(CONTEXT_SETS),
    }
)
BUILD_ARGS = st.dictionaries(
    st.sampled_from(["REG", "TAG", "BASE", "EMPTY", "STAGE", "UNDECLARED"]),
    st.one_of(
        st.none(),
        st.sampled_from(["", "busybox:1.36", "base", "127.0.0.1:5000"]),
        st.text(alphabet="abc/:.-${}", max_size=8),
    ),
    max_size=3,
)


def count_lines(text: str) -> int:
    """Lines as BuildKit counts them: ended by '\\n' only."""
    return len(re.split(r"(?<=\n)", text)) - (1 if text.endswith("\n") or not text else 0)


def check_dockerfile(text, dockerfile, options, build_args):
    """The invariants every parsed Dockerfile keeps."""
    stages = dockerfile.stages
    assert stages, "a parsed Dockerfile has a stage"
    assert dockerfile.path == PATH
    keys = [s.key for s in stages]
    assert len(set(keys)) == len(keys), f"stage keys repeat: {keys}"
    for position, stage in enumerate(stages):
        assert stage.index == position
        if stage.name is None:
            assert stage.key == f"#{stage.index}"
        else:
            assert re.fullmatch(r"[a-z][a-z0-9_.-]*", stage.name), stage.name
            assert stage.key == stage.name
        assert stage.base, f"stage {stage.key} has no base"
        earlier = {s.key for s in stages[:position]}
        assert set(stage.needs) <= earlier, (
            f"stage {stage.key} needs {stage.needs}, not all earlier ({sorted(earlier)})"
        )
        assert len(set(stage.needs)) == len(stage.needs)
        assert 1 <= stage.line <= stage.end_line, (stage.key, stage.line, stage.end_line)
    for before, after in zip(stages, stages[1:]):
        assert before.end_line < after.line, (before, after)
    assert stages[-1].end_line <= max(count_lines(text), 1)
    # Every stage is found by its key, and a named one by its name in any case.
    for stage in stages:
        assert dockerfile.find(stage.key) == stage
        if stage.name:
            assert dockerfile.find(stage.name.upper()) == stage
    assert dockerfile.last == stages[-1]

    # needed_for: the closure of the targets under needs, in file order.
    by_key = {s.key: s for s in stages}
    for target in stages:
        needed = dockerfile.needed_for([target])
        closure, todo = set(), [target.key]
        while todo:
            key = todo.pop()
            if key not in closure:
                closure.add(key)
                todo.extend(by_key[key].needs)
        assert [s.key for s in needed] == [s.key for s in stages if s.key in closure]
        assert needed[-1] == target
        for stage in needed:
            assert set(stage.needs) <= {s.key for s in needed}
        check_pruned(text, dockerfile, needed, options, build_args)
    several = dockerfile.needed_for(stages[::2])
    assert [s.index for s in several] == sorted({s.index for s in several})


def check_pruned(text, dockerfile, keep, options, build_args):
    result = pruned_text(text, dockerfile, keep)
    if result is None:
        return
    note(f"pruned to {[s.key for s in keep]}:\n{result}")
    again = parse_dockerfile(result, PATH, build_args, **options)
    assert len(again.stages) == len(keep), (
        f"pruned text has {[s.key for s in again.stages]}, not {[s.key for s in keep]}"
    )
    got = [(s.name, s.base) for s in again.stages]
    wanted = [(s.name, s.base) for s in keep]
    if options["reused_names"]:
        # A stage renamed because a later one took its name gets it back once
        # the later one is dropped; the name is not what is compared then.
        got = [(g[0] if k.name else None, g[1]) for g, k in zip(got, keep)]
    assert got == wanted, f"pruned text reads as {got}, not {wanted}"
    # Each kept stage needs the same stages, by position among the kept.
    position_of = {s.key: i for i, s in enumerate(keep)}
    again_position = {s.key: i for i, s in enumerate(again.stages)}
    assert [sorted(again_position[k] for k in s.needs) for s in again.stages] == [
        sorted(position_of[k] for k in s.needs) for s in keep
    ]


def parse_or_config_error(text, build_args, options):
    try:
        dockerfile = parse_dockerfile(text, PATH, build_args, **options)
    except ConfigError as error:
        assert_one_line_config_error(error)
        assert str(error).startswith(PATH), f"error does not name the file: {error}"
        return None
    check_dockerfile(text, dockerfile, options, build_args)
    return dockerfile


# -- arbitrary text -------------------------------------------------------------

_FRAGMENTS = [
    "FROM busybox",
    "FROM busybox AS a",
    "FROM a AS b",
    "from A as C",
    "FROM",
    "FROM a AS",
    "FROM a AS b c",
    "FROM ${BASE}",
    "FROM ${X:?no}",
    "FROM $TARGETARCH",
    "FROM 0",
    "FROM --platform=$BUILDPLATFORM busybox AS p",
    "ARG BASE=busybox",
    "ARG X",
    "ARG A=${B:-c}",
    "COPY --from=a /a /b",
    "COPY --from=0 /a /b",
    "COPY --from=9 /a /b",
    "RUN --mount=type=bind,from=a,target=/x true",
    "RUN --mount=from=1 x",
    "RUN echo \\",
    "RUN echo `",
    "RUN <<EOF",
    "EOF",
    "COPY <<EOT /x",
    "EOT",
    "# escape=`",
    "# escape=\\",
    "# syntax=docker/dockerfile:1",
    "# comment",
    "",
    "  FROM busybox AS indented",
    'RUN ["a", "b"]',
    "ONBUILD COPY --from=a / /",
]
_line_endings = st.sampled_from(["\n", "\r\n", "\r", ""])


_DIRECTIVES = [
    "# escape=`",
    "# escape=\\",
    "# escape=x",
    "# syntax=docker/dockerfile:1",
    "#escape =  `  ",
    "# check=skip=all",
]


@st.composite
def line_soup(draw):
    lines = draw(
        st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)), max_size=12)
    )
    lines = draw(st.lists(st.sampled_from(_DIRECTIVES), max_size=2)) + lines
    ending = draw(_line_endings)
    return "".join(line + (draw(_line_endings) if not ending else ending) for line in lines)


@given(text=st.one_of(st.text(), line_soup()), build_args=BUILD_ARGS, options=OPTIONS)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_parses_to_consistent_stages_or_a_config_error(text, build_args, options):
    parse_or_config_error(text, build_args, options)


# -- generated Dockerfiles, with a model of what Docker reads -------------------

STAGE_NAMES = ["base", "build", "Build", "tools", "s1", "s-2", "test.x", "a_b"]
IMAGES = [
    "busybox:1.36",
    "alpine:3.19",
    "127.0.0.1:5000/team/img:v1",
    "0",
    "ghcr.io/o/r@sha256:" + "a" * 64,
]
ARG_NAMES = ["REG", "TAG", "BASE", "EMPTY", "STAGE", "TARGETARCH"]
_arg_literals = st.text(alphabet="abz09.:/-", min_size=1, max_size=6)
_arg_words = st.text(alphabet="abz09.:/-", max_size=4)
_arg_variables = st.one_of(
    st.sampled_from(ARG_NAMES).map(lambda n: "$" + n),
    st.sampled_from(ARG_NAMES).map(lambda n: "${%s}" % n),
    st.tuples(st.sampled_from(ARG_NAMES), st.sampled_from(_SUPPORTED_OPS), _arg_words).map(
        lambda t: "${%s%s%s}" % t
    ),
)
_arg_expressions = (
    st.lists(st.one_of(_arg_literals, _arg_variables), min_size=1, max_size=3)
    .map("".join)
    .map(lambda e: "x" + e if e.startswith("-") else e)
)  # "--x" would be a flag
# Text a RUN can hold on one line: no line break, escape character or heredoc.
# (No NUL: it has a test of its own below, and would hide every other failure.)
_run_text = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\\`<"),
        max_size=12,
    ),
    # control and odd white-space characters
    st.text(alphabet=st.sampled_from("\r\t\x0b\x0c\x1b\x7f\x85\u00a0\u2028\ufeffé"), max_size=3),
)
# --from values that are no stage: numbers in other scripts, odd names. Up to
# U+07FF here; any character is tried by the test of flags below.
_odd_refs = st.one_of(
    st.text(
        alphabet=st.characters(whitelist_categories=("Nd", "No", "Nl"), max_codepoint=0x7FF),
        min_size=1,
        max_size=2,
    ),
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Z", "Cc"),
            blacklist_characters=",=\"'\\`<$#",
            max_codepoint=0x7FF,
        ),
        min_size=1,
        max_size=6,
    ),
)


@dataclass
class Model:
    """What Docker reads from the generated file."""

    lines: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    stages: List[dict] = field(default_factory=list)
    error: Optional[str] = None  # why ci-load must refuse the file
    ambiguous: bool = False  # a reference to a reused name: needs not modelled

    def add(self, *lines):
        self.lines.extend(lines)
        return len(self.lines) - len(lines) + 1  # the first line's number

    def expect_error(self, why):
        self.error = self.error or why

    def resolve(self, reused_names, contexts):
        """Names and needs of the stages, once every stage is known."""
        names = [s["written"] for s in self.stages]
        superseded = set()
        if reused_names:
            for i, name in enumerate(names):
                if name is not None and name in names[i + 1 :]:
                    names[i] = None  # BuildKit builds the later stage of a name
                    superseded.add(name)
        shadowed = {c.lower() for c in contexts}
        for stage, name in zip(self.stages, names):
            stage["name"] = name
            needs = []
            for kind, ref in stage["refs"]:
                if kind == "index":
                    needs.append(int(ref))
                    continue
                wanted = ref.lower()
                if wanted in shadowed:
                    continue
                if wanted in superseded:
                    self.ambiguous = True
                for earlier in range(stage["index"]):
                    if names[earlier] == wanted:
                        needs.append(earlier)
                        break
            stage["needs"] = list(dict.fromkeys(needs))
        if not reused_names:
            named = [n for n in names if n is not None]
            if len(set(named)) != len(named):
                self.expect_error("two stages of one name")


def _from_ref(model, stage, ref):
    """A --from value: an ASCII number is a stage index, anything else a name."""
    if ref.isascii() and ref.isdigit():
        if int(ref) >= stage["index"]:
            model.expect_error(f"--from={ref} in stage {stage['index']}")
        else:
            stage["refs"].append(("index", ref))
    else:
        stage["refs"].append(("name", ref))


@st.composite
def dockerfiles(draw):
    options = draw(OPTIONS)
    build_args = draw(BUILD_ARGS)
    contexts = options["contexts"]
    model = Model(env=dict(options["platform"] or {}))
    escape = draw(st.sampled_from(["\\", "`"]))
    if draw(st.booleans()):
        model.add("# syntax=docker/dockerfile:1")
    if escape == "`" or draw(st.booleans()):
        model.add(f"# escape={escape}")

    # Global ARGs.
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(ARG_NAMES))
        default = draw(
            st.one_of(st.none(), _arg_expressions, st.sampled_from(STAGE_NAMES + IMAGES[:3]))
        )
        if default is None and name in model.env:
            continue  # redeclaring without a default: BuildKit versions differ
        quote = draw(st.sampled_from(["", '"', "'"])) if default is not None else ""
        if quote == "'" and "$" in default:
            quote = ""  # single quotes stop expansion: not modelled
        model.add(f"ARG {name}" + ("" if default is None else f"={quote}{default}{quote}"))
        given_value = build_args.get(name)
        if given_value is not None:
            model.env[name] = given_value
        elif default is not None:
            model.env[name] = docker_expand(default, model.env)
        else:
            model.env.setdefault(name, "")
        if draw(st.booleans()):
            model.add(draw(st.sampled_from(["", "# a comment", "   "])))

    written = []
    for index in range(draw(st.integers(1, 5))):
        # FROM [--platform=…] base [AS name]
        base_kind = draw(st.sampled_from(["image", "stage", "arg", "context", "unsupported"]))
        if base_kind == "stage" and any(written):
            word = draw(st.sampled_from([n for n in written if n]))
            word = draw(st.sampled_from([word, word.upper(), word.capitalize()]))
        elif base_kind == "arg":
            word = draw(_arg_expressions)
        elif base_kind == "context" and contexts:
            word = draw(st.sampled_from(contexts))
        elif base_kind == "unsupported" and draw(st.integers(0, 4)) == 4:
            word = "${BASE:?give BASE}"
        else:
            word = draw(st.sampled_from(IMAGES))
        name = draw(st.one_of(st.none(), st.sampled_from(STAGE_NAMES)))
        keyword = draw(st.sampled_from(["FROM", "from", "From"]))
        platform = draw(
            st.sampled_from(["", "--platform=linux/amd64 ", "--platform=$BUILDPLATFORM "])
        )
        as_part = "" if name is None else f" {draw(st.sampled_from(['AS', 'as']))} {name}"
        if draw(st.integers(0, 4)) == 4:  # FROM continued on the next line
            line = model.add(f"{keyword} {platform}{escape}", f"    {word}{as_part}")
        else:
            line = model.add(f"{keyword} {platform}{word}{as_part}")
        try:
            base = docker_expand(word, model.env)
        except NotSupported:
            model.expect_error(f"unsupported form in FROM at line {line}")
            base = word
        if not base:
            model.expect_error(f"FROM at line {line} names no image")
        stage = {
            "index": index,
            "written": None if name is None else name.lower(),
            "base": base,
            "refs": [],
            "line": line,
            "heredocs": [],
            "mounts": [],
        }
        written.append(stage["written"])
        if not base.isdigit():  # FROM 0 is an image
            stage["refs"].append(("name", base))
        model.stages.append(stage)

        for _ in range(draw(st.integers(0, 4))):
            kind = draw(
                st.sampled_from(
                    [
                        "run",
                        "continued",
                        "heredoc",
                        "copy",
                        "mount",
                        "cache",
                        "comment",
                        "blank",
                        "env",
                        "arg",
                    ]
                )
            )
            if kind == "run":
                model.add("RUN echo " + draw(_run_text))
            elif kind == "continued":
                tail = draw(
                    st.sampled_from(
                        ["from busybox as not-a-stage", "FROM busybox AS nor-this", "&& true"]
                    )
                )
                model.add(f"RUN echo one {escape}", f"  {tail}")
            elif kind == "heredoc":
                at = model.add(
                    draw(st.sampled_from(["RUN <<EOF", "COPY <<EOF /x"])),
                    "FROM busybox AS in-heredoc",
                    "echo hi",
                    "EOF",
                )
                stage["heredocs"].append(at)
            elif kind in ("copy", "mount"):
                ref = draw(
                    st.one_of(
                        st.sampled_from([n for n in written if n] or ["busybox"]).flatmap(
                            lambda n: st.sampled_from([n, n.upper()])
                        ),
                        st.sampled_from([str(i) for i in range(6)]),
                        st.sampled_from(["alpine:3.19", "tools", "ctx", "Build"]),
                        _odd_refs,
                    )
                )
                if kind == "copy":
                    model.add(f"COPY --from={ref} /a /b")
                else:
                    fields = [f"from={ref}", "type=bind", "target=/x"]
                    at = model.add(
                        "RUN --mount=" + ",".join(draw(st.permutations(fields))) + " true"
                    )
                    stage["mounts"].append(at)
                _from_ref(model, stage, ref)
            elif kind == "cache":
                at = model.add("RUN --mount=type=cache,target=/c true")
                stage["mounts"].append(at)
            elif kind == "comment":
                model.add(draw(st.sampled_from(["# FROM fake AS c", "  # from x as y"])))
            elif kind == "blank":
                model.add("")
            elif kind == "env":
                model.add("ENV X=1")
            else:
                model.add("ARG IN_STAGE=" + draw(_arg_literals))

    model.resolve(options["reused_names"], contexts)
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(model.lines)
    if draw(st.booleans()):
        text += ending
    return text, model, build_args, options


@given(case=dockerfiles())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_generated_dockerfile_reads_as_docker_reads_it(case):
    text, model, build_args, options = case
    note(text)
    note(f"model: {model.stages}; error expected: {model.error}")
    dockerfile = parse_or_config_error(text, build_args, options)
    if model.error:
        assert dockerfile is None, f"accepted a Dockerfile docker refuses: {model.error}"
        return
    assert dockerfile is not None, "refused a Dockerfile docker reads"

    key = {s["index"]: (s["name"] or f"#{s['index']}") for s in model.stages}
    assert [(s.name, s.base, s.line) for s in dockerfile.stages] == [
        (s["name"], s["base"], s["line"]) for s in model.stages
    ]
    if not model.ambiguous:
        assert [list(s.needs) for s in dockerfile.stages] == [
            [key[i] for i in s["needs"]] for s in model.stages
        ]
    assert dockerfile.last.end_line == count_lines(text)
    for stage, modelled in zip(dockerfile.stages, model.stages):
        for line in modelled["heredocs"]:
            assert any(b.startswith(f"line {line}: a heredoc") for b in stage.buildkit_only)
        for line in modelled["mounts"]:
            assert f"line {line}: RUN --mount" in stage.buildkit_only


@given(
    run=st.one_of(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\\`<"),
            max_size=10,
        ),
        # control, format and white-space characters
        st.text(
            alphabet=st.characters(
                whitelist_categories=("Cc", "Cf", "Zs", "Zl", "Zp"), blacklist_characters="\n"
            ),
            max_size=10,
        ),
    ),
    options=OPTIONS,
)
def test_any_characters_in_a_run_line_leave_the_stages_as_they_are(run, options):
    text = f"FROM busybox:1.36 AS a\nRUN echo {run}\nFROM a AS b\nCOPY --from=a /a /b\n"
    note(repr(text))
    dockerfile = parse_or_config_error(text, {}, options)
    if "\x00" in run:
        # The parser would read no further than a NUL: refused, naming the line.
        assert dockerfile is None
        return
    assert dockerfile is not None
    assert [(s.key, s.base, s.needs, s.line, s.end_line) for s in dockerfile.stages] == [
        ("a", "busybox:1.36", (), 1, 2),
        ("b", "a", ("a",), 3, 4),
    ]


@given(
    flag=st.sampled_from(
        [
            "COPY --from={} /a /b",
            "RUN --mount=type=bind,from={},target=/x true",
            "RUN --mount=type=cache,target=/c/{} true",
            "COPY --chown={} a b",
            "FROM --platform={} busybox AS p",
        ]
    ),
    value=st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Z", "Cc"), blacklist_characters=",=\"'\\`<$#"
        ),
        min_size=1,
        max_size=4,
    ),
    options=OPTIONS,
)
@settings(max_examples=300, deadline=None)
def test_a_flag_with_any_characters_parses_or_is_a_config_error(flag, value, options):
    text = "FROM busybox AS a\n" + flag.format(value) + "\nFROM a\n"
    note(text)
    parse_or_config_error(text, {}, options)


# -- a crash is not a ConfigError -------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    from ci_load_tasks.errors import ConfigError
    from ci_load_tasks.stages import parse_dockerfile
    text = sys.stdin.read().encode("ascii").decode("unicode_escape")
    try:
        parse_dockerfile(text, "Dockerfile", {})
    except ConfigError as error:
        print("ConfigError:", error)
    else:
        print("parsed")
""")


@given(
    prefix=st.sampled_from(["", "FROM busybox\n", "FROM busybox AS a\nRUN echo "]),
    surrogate=st.sampled_from(["\udc80", "\ud800", "\udfff"]),
)
@settings(max_examples=3, deadline=None)
def test_text_that_is_not_utf_8_is_a_config_error_not_a_crash(prefix, surrogate):
    # A str with a lone surrogate (json.loads('"\\udc80"'), a surrogateescape
    # decode) cannot be encoded for the Go parser. Run in a child process:
    # a crash there must not take the test run down.
    text = prefix + surrogate + "\n"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=text.encode("unicode_escape").decode("ascii"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and child.stdout.startswith(("ConfigError:", "parsed")), (
        f"parse_dockerfile({text!r}) exited {child.returncode}: "
        f"{(child.stderr.strip().splitlines() or [''])[0]}"
    )
