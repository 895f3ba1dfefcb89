"""This repo's tasks: the ci-load collection, as a user adds it, plus dev tasks.

``inv ci-load.<step>`` runs ci-load itself; ``inv test`` runs the test suite,
``inv lint`` the code-health checks (ruff, mypy), ``inv demo`` runs the
pipeline on ``examples/`` against a private Docker engine and registry, and
``inv sandbox`` keeps such a pair running for trying the tasks by hand (see
README.md).
"""

import os
import sys
from pathlib import Path

from invoke import Collection, task

import ci_load_tasks

REPO = Path(__file__).resolve().parent


@task(help={"args": "extra pytest arguments, e.g. '-k plan -x'"})
def test(c, args=""):
    """Run the whole test suite, end-to-end tests included.

    The end-to-end tests start their own dockerd and registry; they need root
    and the packages devkit/setup.sh installs. Under CI they never skip.
    """
    with c.cd(REPO):
        c.run(f"{sys.executable} -m pytest {args}", pty=False)


@task
def lint(c):
    """Check code health: ruff (lint and format) over the repo, mypy over the package."""
    with c.cd(REPO):
        c.run(f"{sys.executable} -m ruff check .", pty=False)
        c.run(f"{sys.executable} -m ruff format --check .", pty=False)
        c.run(f"{sys.executable} -m mypy", pty=False)


@task
def demo(c):
    """Run ci-load on examples/ twice, cold then warm on a wiped engine, and time both."""
    with c.cd(REPO):
        c.run(f"{sys.executable} -m devkit.demo", pty=False)


@task
def sandbox(c):
    """Start a private dockerd and registry for trying the tasks by hand; Ctrl-C stops them."""
    # This process becomes the sandbox: Ctrl-C then reaches it alone, instead
    # of also invoke, which answers it by writing to the child's stdin (a
    # traceback when that is closed).
    os.chdir(REPO)
    os.execv(sys.executable, [sys.executable, "-m", "devkit.sandbox"])


ns = Collection(test, lint, demo, sandbox)
ns.add_collection(ci_load_tasks.ns)
