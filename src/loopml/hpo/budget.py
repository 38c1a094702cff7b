"""The trial budget of one tune() call, shared by its workers through the metadata store.

Workers on other processes or machines take one trial at a time from the row of their
tune() call in ``hpo_tunings`` (an ``UPDATE … WHERE claimed < n_trials``, atomic on SQLite
and PostgreSQL), so together they run exactly ``n_trials`` however long each trial takes,
and a failed worker can close the budget so that the others stop after their current trial.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.hpo.tables import hpo_tunings
from loopml.store import MetadataStore
from loopml.tracking.records import now_ms

__all__ = ["claim_trial", "close_budget", "open_budget"]


def open_budget(store: MetadataStore, *, run_id: str, study: str, n_trials: int | None) -> None:
    """Record the tune() call of the tuning run ``run_id``; ``n_trials`` None: no limit."""
    with store.write() as conn:
        conn.execute(hpo_tunings.insert().values(run_id=run_id, study=study, n_trials=n_trials,
                                                 claimed=0, created_at=now_ms()))


def claim_trial(store: MetadataStore, run_id: str) -> bool:
    """Take one trial from the budget; False when it is spent (or closed)."""
    budget = hpo_tunings.c
    with store.write() as conn:
        taken = conn.execute(
            hpo_tunings.update()
            .where(budget.run_id == run_id,
                   sa.or_(budget.n_trials.is_(None), budget.claimed < budget.n_trials))
            .values(claimed=budget.claimed + 1))
        return taken.rowcount == 1


def close_budget(store: MetadataStore, run_id: str) -> None:
    """Let no more trials start: the budget becomes what has been claimed so far."""
    with store.write() as conn:
        conn.execute(hpo_tunings.update().where(hpo_tunings.c.run_id == run_id)
                     .values(n_trials=hpo_tunings.c.claimed))
