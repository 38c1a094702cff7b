"""The study journal in the metadata store, on SQLite and PostgreSQL: order, offsets,
concurrent writers (threads and processes), and Optuna studies that survive their process."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import threading
from collections import defaultdict
from typing import Any

import optuna
import pytest

from loopml.config import load_settings
from loopml.hpo.storage import DatabaseJournalBackend, list_studies, open_study_storage
from loopml.store import MetadataStore

optuna.logging.set_verbosity(optuna.logging.WARNING)

WRITER = """
import sys
from loopml.store import MetadataStore
from loopml.hpo.storage import DatabaseJournalBackend
url, study, writer, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
backend = DatabaseJournalBackend(MetadataStore(url), study)
for i in range(count):
    backend.append_logs([{"writer": writer, "i": i}])
"""


@pytest.fixture
def store(database_url: str) -> Any:
    opened = MetadataStore(database_url)
    yield opened
    opened.close()


def test_logs_come_back_in_order_from_any_offset(store: MetadataStore) -> None:
    backend = DatabaseJournalBackend(store, "s")
    assert list(backend.read_logs(0)) == []
    backend.append_logs([{"i": 0}, {"i": 1}])
    backend.append_logs([{"i": 2, "value": math.inf, "nan": math.nan}])
    logs = list(backend.read_logs(0))
    assert [log["i"] for log in logs] == [0, 1, 2]
    assert logs[2]["value"] == math.inf and math.isnan(logs[2]["nan"])
    assert [log["i"] for log in backend.read_logs(1)] == [1, 2]
    assert list(backend.read_logs(3)) == []
    other = DatabaseJournalBackend(store, "another study")
    other.append_logs([{"i": 99}])
    assert [log["i"] for log in other.read_logs(0)] == [99]  # numbered per study
    assert list_studies(store) == ["another study", "s"]
    backend.close()
    other.close()


def test_an_append_hands_over_what_other_workers_wrote(store: MetadataStore) -> None:
    first, second = DatabaseJournalBackend(store, "s"), DatabaseJournalBackend(store, "s")
    assert list(first.read_logs(0)) == []
    second.append_logs([{"by": "second"}])
    first.append_logs([{"by": "first"}])  # reads the missed log in the same transaction
    assert [log["by"] for log in first.read_logs(0)] == ["second", "first"]
    assert [log["by"] for log in first.read_logs(1)] == ["first"]  # not from the cache
    first.close()
    second.close()


def test_backend_pickles_to_a_working_copy(store: MetadataStore) -> None:
    backend = DatabaseJournalBackend(store, "s")
    backend.append_logs([{"i": 0}])
    copy = pickle.loads(pickle.dumps(backend))
    copy.append_logs([{"i": 1}])
    assert [log["i"] for log in copy.read_logs(0)] == [0, 1]
    assert [log["i"] for log in backend.read_logs(0)] == [0]  # as of its own append
    assert [log["i"] for log in backend.read_logs(1)] == [1]  # then what came after
    backend.close()
    copy.close()


def _check_total_order(logs: list[dict[str, Any]], writers: int, count: int) -> None:
    assert len(logs) == writers * count
    seen: dict[int, list[int]] = defaultdict(list)
    for log in logs:
        seen[log["writer"]].append(log["i"])
    assert {w: seen[w] for w in range(writers)} == {w: list(range(count))
                                                   for w in range(writers)}


def test_concurrent_threads_keep_one_dense_order(store: MetadataStore) -> None:
    writers, count = 4, 50
    backends = [DatabaseJournalBackend(MetadataStore(store.url), "s") for _ in range(writers)]
    reads: list[list[dict[str, Any]]] = [[] for _ in range(writers)]

    def write(w: int) -> None:
        backend = backends[w]
        for i in range(count):
            backend.append_logs([{"writer": w, "i": i}])
            reads[w].extend(backend.read_logs(len(reads[w])))  # as JournalStorage does

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = list(backends[0].read_logs(0))
    _check_total_order(final, writers, count)
    for seen in reads:  # every writer saw a prefix of the one order, never a fork
        assert seen == final[:len(seen)]
    for backend in backends:
        backend.close()


def test_concurrent_processes_keep_one_dense_order(store: MetadataStore) -> None:
    writers, count = 2, 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, store.url, "s", str(w),
                               str(count)]) for w in range(writers)]
    assert [proc.wait(timeout=60) for proc in procs] == [0] * writers
    backend = DatabaseJournalBackend(store, "s")
    _check_total_order(list(backend.read_logs(0)), writers, count)
    backend.close()


def test_an_optuna_study_outlives_its_storage_object(database_url: str) -> None:
    settings = load_settings(database_url=database_url)
    storage = open_study_storage(settings, "quadratic")
    study = optuna.create_study(study_name="quadratic", storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=5)
    reopened = optuna.load_study(study_name="quadratic",
                                 storage=open_study_storage(settings, "quadratic"))
    assert len(reopened.trials) == 5
    assert reopened.best_trial.params == study.best_trial.params


def test_parallel_optuna_workers_share_the_study(database_url: str) -> None:
    settings = load_settings(database_url=database_url)
    optuna.create_study(study_name="shared", storage=open_study_storage(settings, "shared"))

    def work(seed: int) -> None:
        study = optuna.load_study(study_name="shared",
                                  storage=open_study_storage(settings, "shared"),
                                  sampler=optuna.samplers.RandomSampler(seed=seed))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=8)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = optuna.load_study(study_name="shared",
                               storage=open_study_storage(settings, "shared")).trials
    assert sorted(t.number for t in trials) == list(range(24))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
