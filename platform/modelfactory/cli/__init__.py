"""`modelfactory`: the command line. Thin: each command parses, calls one module, prints.

modelfactory new         a new model project from templates, in model_projects/
modelfactory check       a model's contract tests and its own tests (pytest), for the inner loop
modelfactory dev         train what has no champion yet, then the Dagster UI, MLflow UI, endpoint
modelfactory serve       the prediction endpoint for every model (canary-aware)
modelfactory seed        write the example data of projects that have a simulator
modelfactory train       materialize a model's graph, raw through champion
modelfactory predict     batch-score a model with its champion(s), by day for daily predictions
modelfactory status      champion, metric and last verdict of every model
modelfactory approve     promote the evaluated candidate a person reviewed (policy manual)
modelfactory rollback    put the previous champion back
modelfactory history     the audit trail of a model; --at: which version served then, and why
modelfactory reproduce   retrain a version from its data snapshot and params; does it match?
modelfactory diff        why a model changed between two versions, in one screen
modelfactory demo        a story told step by step: `--drift` shows monitoring retrain a model

The commands live in modules by group: project.py (new, check), train.py (seed, train,
predict), reports.py (status, history, reproduce, diff), registry.py (rollback, approve),
serve.py, dev.py (dev, demo); common.py holds what they share and group.py registers them
on the root group. This module only names `main`, the console script `modelfactory.cli:main`.
"""

from __future__ import annotations

from modelfactory.cli.group import main

__all__ = ["main"]
