"""Tables of hyperparameter tuning (created by migration 0006).

``hpo_journal`` holds every Optuna study as an append-only journal of operations, one
journal per study name, numbered 0, 1, 2, … without gaps (see :mod:`loopml.hpo.storage`).
``hpo_tunings`` records each call of :func:`loopml.hpo.tune`: its parent run, the study it
continued and how many trials its workers have claimed, so that parallel workers run exactly
the trials asked for.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["hpo_journal", "hpo_tunings"]

hpo_journal = sa.Table(
    "hpo_journal", metadata,
    sa.Column("study", sa.String(256), primary_key=True),
    # The log number Optuna's JournalStorage reads from: dense, starting at 0 per study.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # One journal operation as JSON (Optuna's own encoding, NaN and Infinity included).
    sa.Column("log", sa.Text, nullable=False),
)

hpo_tunings = sa.Table(
    "hpo_tunings", metadata,
    # The parent ("tuning") run of one tune() call; its trials are child runs.
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("study", sa.String(256), nullable=False),
    # Trials this call asked for (None: until the timeout) and trials its workers claimed.
    sa.Column("n_trials", sa.Integer, nullable=True),
    sa.Column("claimed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index(None, "study", "created_at"),
)
