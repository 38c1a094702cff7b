"""A progress bar for a tune() call on a terminal: trials finished and the best value so far.

It reads the study itself (finished trials, best value), so it shows the same whether the
trials run in this thread or in worker processes elsewhere.
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Any

from optuna.trial import TrialState

__all__ = ["TuneProgress"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class TuneProgress:
    """Shows ``study``'s trials finished since it was opened, out of ``total`` (None: the
    call runs until its timeout). Does nothing unless ``enabled`` and stderr is a terminal."""

    def __init__(self, study: Any, total: int | None, *, enabled: bool) -> None:
        self._study = study
        self._start = self._finished() if enabled else 0
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[best]}"),
                                 console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(f"tuning {study.study_name}", total=total, best="")
            self._bar.start()

    def _finished(self) -> int:
        return len(self._study.get_trials(deepcopy=False, states=_FINISHED))

    def update(self) -> None:
        """Read the study again and redraw."""
        if self._bar is None:
            return
        best = ""
        with contextlib.suppress(ValueError):  # no completed trial yet
            best = f"best {self._study.best_value:.6g}"
        self._bar.update(self._task, completed=self._finished() - self._start, best=best)

    def __enter__(self) -> TuneProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
