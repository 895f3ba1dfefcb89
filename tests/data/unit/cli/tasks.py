"""A user's tasks.py: the ci-load collection added as the README says."""

from invoke import Collection

import ci_load_tasks

ns = Collection()
ns.add_collection(ci_load_tasks.ns)
