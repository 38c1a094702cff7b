"""Run one blob operation over many items on a thread pool, with an optional progress bar.

Blob transfers wait on disks and networks, and BLAKE3 releases the GIL, so threads give
real parallelism here. The bar (rich, on stderr) is shown only when asked for and stderr
is a terminal; ``rich`` is imported only then.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["run_parallel"]

T = TypeVar("T")
R = TypeVar("R")


def run_parallel(function: Callable[[T], R], items: Sequence[T], *, workers: int,
                 progress: bool = False, description: str = "") -> list[R]:
    """``[function(item) for item in items]``, computed on up to ``workers`` threads.

    Results keep the order of ``items``. The first failure cancels the calls not yet
    started, waits for those running, and is raised.
    """
    if not items:
        return []
    with _progress_bar(description, len(items), enabled=progress) as advance:
        if workers <= 1 or len(items) == 1:
            results = []
            for item in items:
                results.append(function(item))
                advance()
            return results
        # Imported here: a command that runs nothing in parallel need not load it (~10 ms).
        from concurrent.futures import ThreadPoolExecutor, as_completed

        done: dict[int, R] = {}
        with ThreadPoolExecutor(max_workers=min(workers, len(items)),
                                thread_name_prefix="loopml-blobs") as pool:
            futures: dict[Future[R], int] = {
                pool.submit(function, item): index for index, item in enumerate(items)}
            try:
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    advance()
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
        return [done[index] for index in range(len(items))]


@contextmanager
def _progress_bar(description: str, total: int, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield a function that advances a bar by one item; a no-op when no bar is shown."""
    if not enabled or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
