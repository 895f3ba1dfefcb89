"""README.md is a manual people copy from: its examples must stay true.

Every YAML block parses; every flag a README command line gives to an
``inv ci-load.*`` or ``ci-load`` task is a flag of that task (read from the
invoke collection itself); the configuration table lists every setting with
its flag, environment variable and default; and the ``tasks.py`` example runs
under invoke. Pure, except the last test, which runs ``inv --dry`` and so
needs the docker CLI and the compose plugin, but no daemon.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke import Program

import ci_load_tasks
from ci_load_tasks.cli import program as ci_load_program
from ci_load_tasks.collection import SHARED_FLAGS
from ci_load_tasks.settings import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

# A fenced block, possibly indented inside a list item: indent, language, body.
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}


def code_blocks(lang: str) -> list:
    blocks = []
    for match in _FENCE.finditer(README):
        if match["lang"] == lang:
            indent = len(match["indent"])
            body = "\n".join(line[indent:] for line in match["body"].splitlines())
            blocks.append(body + "\n")
    return blocks


def yaml_strings(node) -> list:
    """Every string in a parsed YAML document: the CI scripts are among them."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in yaml_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in yaml_strings(value)]
    return []


def shell_commands(text: str) -> list:
    """The simple commands of a shell snippet, each a list of words."""
    text = text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list = []
        for word in lexer:
            if word in _SEPARATORS:
                commands.append(command)
                command = []
            else:
                command.append(word)
        commands.append(command)
    return [c for c in commands if c]


def readme_commands() -> list:
    """Every command line of the README: shell blocks, CI scripts, inline code."""
    texts = code_blocks("sh")
    for block in code_blocks("yaml"):
        texts += yaml_strings(yaml.safe_load(block))
    texts += [span for span in _INLINE.findall(README) if _program_of(span.split()) is not None]
    commands = [c for text in texts for c in shell_commands(text)]
    variables = {}
    for command in commands:  # NAME="…" alone on a line, as the README's F=…
        if len(command) == 1 and re.fullmatch(r"[A-Z_]+=.*", command[0]):
            name, _, value = command[0].partition("=")
            variables[name] = shlex.split(value)
    expanded = []
    for command in commands:
        words = []
        for word in command:
            name = re.fullmatch(r"\$\{?([A-Z_]+)\}?", word)
            words += variables.get(name[1], [word]) if name else [word]
        expanded.append(words)
    return expanded


def _program_of(words: list):
    """('inv' or 'ci-load', the words after the program), or None."""
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the command
    if words[:1] in (["inv"], ["invoke"]):
        return "inv", words[1:]
    if words[:3] in (["python", "-m", "invoke"], ["python3", "-m", "invoke"]):
        return "inv", words[3:]
    if words[:1] == ["ci-load"]:
        return "ci-load", words[1:]
    return None


def _flags(arguments) -> dict:
    """Every spelling of each flag -> whether it takes a value."""
    flags = {}
    for argument in arguments:
        takes_value = argument.kind is not bool
        for name in argument.names:
            flags[f"--{name}" if len(name) > 1 else f"-{name}"] = takes_value
        if argument.kind is bool and argument.default is True:
            flags[f"--no-{argument.names[0]}"] = False  # invoke's inverse flag
    return flags


TASK_FLAGS = {
    name: _flags(ci_load_tasks.ns[name].get_arguments()) for name in ci_load_tasks.ns.task_names
}
CORE_FLAGS = {
    "inv": _flags(Program().core_args() + Program().task_args()),
    "ci-load": _flags(ci_load_program.core_args()),
}


def unknown_flags(program: str, words: list) -> list:
    """Flags given to a ci-load task that it does not have ('task --flag')."""
    task = None  # None: core flags; "": a task that is not ci-load's
    bad = []
    words = list(words)
    while words:
        word = words.pop(0)
        flag = word.split("=", 1)[0]
        if not word.startswith("-"):
            name = word[len("ci-load.") :] if program == "inv" else word
            if (program == "ci-load" or word.startswith("ci-load.")) and name in TASK_FLAGS:
                task = name
            elif program == "inv" and re.fullmatch(r"[\w.-]+", word) and task is None:
                task = ""  # one of the project's own tasks: not checked
            continue
        if task == "":
            continue
        known = CORE_FLAGS[program] if task is None else TASK_FLAGS[task]
        if flag in known:
            if known[flag] and "=" not in word and task is not None and words:
                words.pop(0)  # the flag's value
        else:
            bad.append(f"{task or '(core)'} {flag}")
    return bad


def test_every_yaml_block_parses():
    blocks = code_blocks("yaml")
    # invoke.yaml (twice), the GitHub workflow and the GitLab pipeline at least.
    assert len(blocks) >= 4
    for block in blocks:
        assert isinstance(yaml.safe_load(block), dict), block


def test_the_ci_configurations_run_ci_load_with_a_branch_cache_and_push():
    configs = {block.splitlines()[0]: yaml.safe_load(block) for block in code_blocks("yaml")}
    github = configs["# .github/workflows/build.yml"]
    gitlab = configs["# .gitlab-ci.yml"]
    for config, branch in [(github, "github.ref_name"), (gitlab, "$CI_COMMIT_REF_SLUG")]:
        runs = [c for s in yaml_strings(config) for c in shell_commands(s) if c[:1] == ["ci-load"]]
        assert len(runs) == 1, runs
        line = " ".join(runs[0])
        assert "--push" in runs[0] and "--report" in runs[0], line
        assert branch in line and "--other-repo" in runs[0], line
    assert "docker:27-dind" in gitlab["build"]["services"]


def test_the_commands_give_ci_load_tasks_only_their_own_flags():
    commands = [c for c in readme_commands() if _program_of(c)]
    checked = [c for c in commands if any(w.startswith("ci-load.") for w in c) or c[0] == "ci-load"]
    assert len(checked) >= 20, "the README's ci-load command lines were not found"
    bad = {" ".join(c): unknown_flags(*_program_of(c)) for c in commands}
    assert {line: flags for line, flags in bad.items() if flags} == {}


def test_the_flag_check_finds_a_flag_a_task_lacks():
    # The check above must be able to fail.
    assert unknown_flags("inv", ["ci-load.plan", "--push", "--json"]) == ["plan --push"]
    assert unknown_flags("ci-load", ["run", "--no-push", "--no-pull"]) == ["run --no-push"]
    assert unknown_flags("inv", ["--dry", "ci-load.run", "-f", "x.yml", "--retry_delay", "1"]) == [
        "run --retry_delay"
    ]


def _config_table() -> dict:
    section = README[README.index("## Configuration") : README.index("### Cache image names")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 5 else None
        if key:
            rows[key[1]] = cells[1:]
    return rows


def test_the_configuration_table_lists_every_key_with_flag_environment_and_default():
    rows = _config_table()
    assert sorted(rows) == sorted(DEFAULTS)
    for parameter, (key, _) in SHARED_FLAGS.items():
        flag, environment, default, _ = rows[key]
        assert f"`--{parameter.replace('_', '-')}`" in flag, key
        assert f"`INVOKE_CI_LOAD_{key.upper()}`" in environment, key
        if isinstance(DEFAULTS[key], str) and DEFAULTS[key]:
            assert f"`{DEFAULTS[key]}`" in default, key


def test_the_ci_load_py_table_names_only_real_flags():
    section = README[README.index("## Coming from vsi_common") : README.index("## Development")]
    new_column = [line.split("|")[2] for line in section.splitlines() if line.startswith("| `")]
    assert len(new_column) >= 17
    every_flag = {f for flags in TASK_FLAGS.values() for f in flags}
    named = {f for cell in new_column for f in re.findall(r"`(--?[\w-]+)", cell)}
    assert named and named <= every_flag, named - every_flag


def _readme_file(first_line: str, lang: str) -> str:
    (text,) = [b for b in code_blocks(lang) if b.splitlines()[0] == first_line]
    return text


@pytest.fixture
def own_tasks_project(tmp_path):
    """The bundled example with the README's tasks.py and invoke.yaml."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples", project)
    (project / "tasks.py").write_text(_readme_file("# tasks.py", "python"))
    (project / "invoke.yaml").write_text(_readme_file("# invoke.yaml, beside tasks.py", "yaml"))
    return project


def _inv(project: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=project,
        env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_own_tasks_example_lists_its_task_beside_ci_load_s(own_tasks_project):
    result = _inv(own_tasks_project, "--list")

    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()]
    assert "ci" in names and "ci-load.run" in names


def test_the_own_tasks_example_runs_ci_load_then_the_tests(own_tasks_project, docker_config):
    result = _inv(
        own_tasks_project,
        "--dry",
        "ci",
        env={"DOCKER_CONFIG": str(docker_config), "INVOKE_CI_LOAD_CACHE_VERSION": "v7"},
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The environment reaches ci-load through the project's own task.
    assert "registry.example.com/team/app-cache:v7_app_final" in output
    assert output.index("docker build") < output.index("docker run --rm --network none")
