"""Run search against every metadata backend: filters, ordering, pagination, NaN, deleted
runs and injection attempts. Each check runs twice, with each of the two plans that serve a
filtered search (a walk over the experiment's runs, or the runs an index says can match)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa

from loopml.errors import FilterSyntaxError, InvalidArgument
from loopml.store import MetadataStore
from loopml.tracking import search as search_module
from loopml.tracking.filter import parse_filter, parse_order_by
from loopml.tracking.search import search_run_ids
from loopml.tracking.tables import experiments, latest_metrics, params, runs, tags

NAN = math.nan
ALL = ["r1", "r2", "r3", "r4", "r5"]  # the live runs of experiment e1

#  id, experiment, name, status, start, end, parent, user, lifecycle
RUNS = [
    ("r1", "e1", "alpha", "FINISHED", 1000, 2000, None, "ann", "active"),
    ("r2", "e1", "beta", "FINISHED", 2000, 3000, None, "bob", "active"),
    ("r3", "e1", "Gamma", "RUNNING", 3000, None, "r1", "ann", "active"),
    ("r4", "e1", "delta_x", "FAILED", 4000, 4500, None, "cat", "active"),
    ("r5", "e1", "eps%", "FINISHED", 5000, 6000, None, "", "active"),
    ("r6", "e1", "zeta", "FINISHED", 6000, 7000, None, "ann", "deleted"),
    ("r7", "e2", "eta", "FINISHED", 7000, 8000, None, "ann", "active"),
]
PARAMS = {
    "r1": {"model": "rf", "lr": "0.1"},
    "r2": {"model": "gbm", "lr": "0.01", "note": "x' OR 1=1 --"},
    "r3": {"model": "rf"},
    "r4": {"model": "RF_big"},
    "r6": {"model": "rf"},
    "r7": {"model": "rf"},
}
TAGS = {
    "r1": {"team": "vision"},
    "r2": {"team": "NLP"},
    "r4": {"team": "vision", "path": "a[1]*?"},
    "r5": {"note": "50% off", "mlflow.runName": "eps%"},
}
METRICS = {
    "r1": {"auc": 0.95, "loss": 0.2},
    "r2": {"auc": 0.85, "loss": 0.3},
    "r3": {"auc": NAN, "loss": 0.1},
    "r4": {"loss": 0.5},
    "r5": {"auc": 0.95, "val loss": 1.0},
    "r6": {"auc": 0.99},
    "r7": {"auc": 0.97},
}


@pytest.fixture
def store(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    experiment_of = {run[0]: run[1] for run in RUNS}
    with store.write() as conn:
        conn.execute(experiments.insert(), [{"id": e, "name": e, "created_at": 0}
                                            for e in ("e1", "e2")])
        conn.execute(runs.insert(), [
            {"id": r, "experiment_id": e, "name": n, "status": s, "start_time": st,
             "end_time": et, "parent_run_id": p, "user": u, "lifecycle": lc}
            for r, e, n, s, st, et, p, u, lc in RUNS])
        conn.execute(params.insert(), [{"run_id": r, "key": k, "value": v}
                                       for r, kv in PARAMS.items() for k, v in kv.items()])
        conn.execute(tags.insert(), [{"run_id": r, "key": k, "value": v}
                                     for r, kv in TAGS.items() for k, v in kv.items()])
        conn.execute(latest_metrics.insert(), [
            {"run_id": r, "key": k, "experiment_id": experiment_of[r], "step": 3,
             "timestamp": 0, "value": None if math.isnan(v) else v, "is_nan": math.isnan(v)}
            for r, kv in METRICS.items() for k, v in kv.items()])
    yield store
    store.close()


@pytest.fixture(params=["walk", "candidates"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """'walk': indexed filter terms never drive the search; 'candidates': they always do."""
    limit = 0 if request.param == "walk" else 1_000_000
    monkeypatch.setattr(search_module, "CANDIDATE_LIMIT", limit)
    return str(request.param)


def search(store: MetadataStore, text: str | None = None, order: Sequence[str] = (), *,
           experiments: Sequence[str] = ("e1",), max_results: int = 100, offset: int = 0,
           include_deleted: bool = False) -> list[str]:
    with store.read() as conn:
        return search_run_ids(conn, experiment_ids=list(experiments), filter=parse_filter(text),
                              order_by=parse_order_by(order), max_results=max_results,
                              offset=offset, include_deleted=include_deleted)


FILTERS: list[tuple[str, list[str]]] = [
    ("", ALL),
    # metrics: numbers; NaN matches no comparison; a run lacking the metric matches none
    ("metrics.auc > 0.9", ["r1", "r5"]),
    ("metrics.auc >= 0.85 and metrics.auc < 0.95", ["r2"]),
    ("metrics.auc <= 0.85", ["r2"]),
    ("metrics.auc = 0.95", ["r1", "r5"]),
    ("metrics.auc == 0.95", ["r1", "r5"]),
    ("metrics.auc != 0.95", ["r2"]),
    ("metrics.auc <> 0.95", ["r2"]),
    ("metrics.auc in (0.85, 0.95)", ["r1", "r2", "r5"]),
    ("metrics.auc not in (0.85)", ["r1", "r5"]),
    ("metrics.auc is null", ["r4"]),
    ("metrics.auc is not null", ["r1", "r2", "r3", "r5"]),
    ("not metrics.auc > 0.9", ["r2", "r3", "r4"]),
    ("metrics.loss > -1", ["r1", "r2", "r3", "r4"]),
    ("metrics.loss <= -1e-3", []),
    ("metrics.loss < 1", ["r1", "r2", "r3", "r4"]),
    ("metrics.loss < 100000000000000000000000", ["r1", "r2", "r3", "r4"]),
    ("metrics.`val loss` = 1", ["r5"]),
    ('metrics."val loss" >= 1e0', ["r5"]),
    ("metric.loss = 0.1", ["r3"]),
    # params: strings, case-sensitive; LIKE is case-sensitive on every database
    ("params.model = 'rf'", ["r1", "r3"]),
    ("params.model != 'rf'", ["r2", "r4"]),
    ("not params.model = 'rf'", ["r2", "r4", "r5"]),
    ("params.model = 'RF'", []),
    ("params.model like 'rf%'", ["r1", "r3"]),
    ("params.model ilike 'rf%'", ["r1", "r3", "r4"]),
    ("params.model not like 'rf%'", ["r2", "r4"]),
    ("params.model not ilike 'RF%'", ["r2"]),
    ("params.model like '%'", ["r1", "r2", "r3", "r4"]),
    ("params.model in ('rf', 'gbm')", ["r1", "r2", "r3"]),
    ("params.model not in ('rf', 'gbm')", ["r4"]),
    ("params.model is null", ["r5"]),
    ("params.lr is not null", ["r1", "r2"]),
    ("param.lr = '0.1'", ["r1"]),
    # tags, quoted keys, wildcards and escapes
    ("tags.team = 'vision'", ["r1", "r4"]),
    ("tags.team ilike 'nlp'", ["r2"]),
    ("tags.team like 'nlp'", []),
    ("tags.`mlflow.runName` = 'eps%'", ["r5"]),
    ("tags.mlflow.runName = 'eps%'", ["r5"]),
    ("tags.path = 'a[1]*?'", ["r4"]),
    ("tags.path like 'a[1]*%'", ["r4"]),
    ("tags.path like 'a_1_*?'", ["r4"]),
    ("tags.path like 'A[1]%'", []),
    ("tags.path like 'a[12]%'", []),
    ("tags.path like 'a?1%'", []),
    ("tags.path like 'a*'", []),
    ("tags.path ilike 'A[1]%'", ["r4"]),
    (r"tags.note like '%\%%'", ["r5"]),
    (r"tags.note like '50\% off'", ["r5"]),
    (r"tags.note like '50\_off'", []),
    # attributes
    ("status = 'FINISHED'", ["r1", "r2", "r5"]),
    ("attributes.status != 'FINISHED'", ["r3", "r4"]),
    ("status in ('RUNNING', 'FAILED')", ["r3", "r4"]),
    ("attribute.status not in ('FINISHED')", ["r3", "r4"]),
    ("run_name = 'Gamma'", ["r3"]),
    ("name ilike 'gamma'", ["r3"]),
    ("attributes.run_name like 'g%'", []),
    (r"run_name like '%\_%'", ["r4"]),
    ("run_name like '%_%'", ALL),
    (r"run_name like '%\%'", ["r5"]),
    ("run_id = 'r2'", ["r2"]),
    ("id in ('r1', 'r4', 'r7')", ["r1", "r4"]),
    ("user = 'ann'", ["r1", "r3"]),
    ("parent_run_id = 'r1'", ["r3"]),
    ("not parent_run_id = 'r1'", ["r1", "r2", "r4", "r5"]),
    ("parent_run_id is null", ["r1", "r2", "r4", "r5"]),
    ("parent_run_id is not null", ["r3"]),
    ("end_time is null", ["r3"]),
    ("end_time > 2500", ["r2", "r4", "r5"]),
    ("not end_time > 2500", ["r1", "r3"]),
    ("start_time >= 3000 and start_time < 5000", ["r3", "r4"]),
    ("start_time in (1000, 2000)", ["r1", "r2"]),
    ("attributes.start_time = 1000.0", ["r1"]),
    ("start_time > 1500.5", ["r2", "r3", "r4", "r5"]),
    ("start_time < 100000000000000000000000", ALL),
    # boolean structure
    ("params.model = 'gbm' or metrics.loss < 0.15", ["r2", "r3"]),
    ("(params.model = 'rf' or params.model = 'gbm') and metrics.auc >= 0.9", ["r1"]),
    ("params.model = 'gbm' or params.model = 'rf' and metrics.auc > 0.9", ["r1", "r2"]),
    ("(params.model = 'gbm' or params.model = 'rf') and metrics.auc > 0.9", ["r1"]),
    ("not (params.model = 'rf' or tags.team = 'vision')", ["r2", "r5"]),
    ("NOT NOT params.model = 'rf'", ["r1", "r3"]),
    ("params.model = 'rf' AND tags.team = 'vision' OR run_name = 'eps%'", ["r1", "r5"]),
    ("params.model = 'rf' and metrics.auc > 0.9 and tags.team = 'vision'", ["r1"]),
    ("params.model = 'nope' and metrics.auc > 0", []),
    # injection attempts are plain values
    ("params.model = 'x'' OR 1=1 --'", []),
    ("params.note = 'x'' OR 1=1 --'", ["r2"]),
    ("run_name = 'x'' OR ''1''=''1'", []),
    ("params.`model' OR '1'='1` = 'rf'", []),
]


@pytest.mark.usefixtures("plan")
def test_filters(store: MetadataStore) -> None:
    failures = [f"{text!r}: got {got}, expected {expected}"
                for text, expected in FILTERS
                if (got := sorted(search(store, text))) != expected]
    assert not failures, "\n".join(failures)


ORDERS: list[tuple[str, list[str], list[str]]] = [
    ("", [], ["r5", "r4", "r3", "r2", "r1"]),  # newest first
    # values, then NaN, then missing; ties newest first (r5 before r1)
    ("", ["metrics.auc desc"], ["r5", "r1", "r2", "r3", "r4"]),
    ("", ["metrics.auc asc"], ["r2", "r5", "r1", "r3", "r4"]),
    ("", ["metrics.auc DESC", "start_time desc"], ["r5", "r1", "r2", "r3", "r4"]),
    ("", ["metrics.loss"], ["r3", "r1", "r2", "r4", "r5"]),
    ("", ["metrics.nothing desc"], ["r5", "r4", "r3", "r2", "r1"]),
    ("", ["params.model"], ["r4", "r2", "r3", "r1", "r5"]),  # code point order
    ("", ["params.model desc"], ["r3", "r1", "r2", "r4", "r5"]),
    ("", ["params.model desc", "start_time desc"], ["r3", "r1", "r2", "r4", "r5"]),
    ("", ["tags.team"], ["r2", "r4", "r1", "r5", "r3"]),
    ("", ["run_name"], ["r3", "r1", "r2", "r4", "r5"]),
    ("", ["attributes.end_time desc"], ["r5", "r4", "r2", "r1", "r3"]),
    ("", ["end_time"], ["r1", "r2", "r4", "r5", "r3"]),
    ("", ["status", "user desc"], ["r4", "r2", "r1", "r5", "r3"]),
    ("", ["parent_run_id desc"], ["r3", "r5", "r4", "r2", "r1"]),
    ("", ["start_time"], ["r1", "r2", "r3", "r4", "r5"]),
    ("metrics.auc > 0.5", ["metrics.auc"], ["r2", "r5", "r1"]),
    ("metrics.auc > 0.5", ["metrics.auc desc", "run_name desc"], ["r5", "r1", "r2"]),
    ("params.model = 'rf'", ["metrics.auc desc"], ["r1", "r3"]),
    ("params.model like '%'", ["metrics.auc desc"], ["r1", "r2", "r3", "r4"]),
    ("metrics.loss >= 0.1", ["metrics.auc desc"], ["r1", "r2", "r3", "r4"]),
    ("metrics.auc is null or metrics.auc < 0.9", ["metrics.auc desc"], ["r2", "r4"]),
    ("not metrics.auc > 0.9", ["metrics.auc", "params.model"], ["r2", "r3", "r4"]),
    ("params.model = 'rf' or params.model = 'gbm'", ["params.lr desc"], ["r1", "r2", "r3"]),
]


@pytest.mark.usefixtures("plan")
def test_ordering(store: MetadataStore) -> None:
    failures = [f"{text!r} {order}: got {got}, expected {expected}"
                for text, order, expected in ORDERS
                if (got := search(store, text, order)) != expected]
    assert not failures, "\n".join(failures)


@pytest.mark.usefixtures("plan")
def test_pages_concatenate_to_the_whole_result(store: MetadataStore) -> None:
    failures = []
    for text, order, expected in ORDERS:
        for size in (1, 2, 3):
            pages = [search(store, text, order, max_results=size, offset=start)
                     for start in range(0, len(expected) + 2, size)]
            if [run for page in pages for run in page] != expected:
                failures.append(f"{text!r} {order} by {size}: got {pages}")
    assert not failures, "\n".join(failures)


@pytest.mark.usefixtures("plan")
def test_offsets_across_nan_and_missing_runs(store: MetadataStore) -> None:
    order = ["metrics.auc desc"]
    assert search(store, None, order, max_results=2, offset=1) == ["r1", "r2"]
    assert search(store, None, order, max_results=2, offset=3) == ["r3", "r4"]
    assert search(store, None, order, max_results=2, offset=4) == ["r4"]
    assert search(store, None, order, max_results=2, offset=5) == []
    assert search(store, None, order, max_results=1, offset=100) == []


@pytest.mark.usefixtures("plan")
def test_full_ties_break_by_run_id(store: MetadataStore) -> None:
    with store.write() as conn:
        for run_id in ("r9", "r8"):  # stored out of id order
            conn.execute(runs.insert(), {"id": run_id, "experiment_id": "e2", "name": "eta",
                                         "status": "FINISHED", "start_time": 7000})
            conn.execute(params.insert(), {"run_id": run_id, "key": "model", "value": "rf"})
            conn.execute(latest_metrics.insert(), {
                "run_id": run_id, "key": "auc", "experiment_id": "e2", "step": 0,
                "timestamp": 0, "value": 0.97, "is_nan": False})
    for order in ([], ["metrics.auc"], ["metrics.auc desc"], ["params.model desc"],
                  ["run_name", "start_time"]):
        assert search(store, "params.model = 'rf'", order, experiments=["e2"]) == [
            "r7", "r8", "r9"], order
        assert search(store, None, order, experiments=["e2"], max_results=1, offset=1) == [
            "r8"], order


def test_deleted_runs_only_on_request(store: MetadataStore) -> None:
    assert "r6" not in search(store, "params.model = 'rf'")
    assert search(store, None, ["metrics.auc desc"], include_deleted=True) == [
        "r6", "r5", "r1", "r2", "r3", "r4"]
    assert search(store, "params.model = 'rf'", include_deleted=True) == ["r6", "r3", "r1"]


@pytest.mark.usefixtures("plan")
def test_several_experiments(store: MetadataStore) -> None:
    both = ("e1", "e2")
    assert search(store, None, ["metrics.auc desc"], experiments=both) == [
        "r7", "r5", "r1", "r2", "r3", "r4"]
    assert search(store, "params.model = 'rf'", experiments=both) == ["r7", "r3", "r1"]
    assert search(store, "params.model = 'rf'", experiments=["e2"]) == ["r7"]
    assert search(store, None, experiments=["nope"]) == []
    assert search(store, None, experiments=[]) == []


def test_max_results_zero_and_bad_arguments(store: MetadataStore) -> None:
    assert search(store, None, max_results=0) == []
    with pytest.raises(InvalidArgument, match="max_results"):
        search(store, None, max_results=-1)
    with pytest.raises(InvalidArgument, match="offset"):
        search(store, None, offset=-5)
    with store.read() as conn, pytest.raises(InvalidArgument, match="list of ids"):
        search_run_ids(conn, experiment_ids="e1", filter=None, order_by=[], max_results=1)


def test_injection_attempts_are_inert(store: MetadataStore) -> None:
    newest_first = ALL[::-1]
    assert search(store, None, ["metrics.`auc; DROP TABLE runs; --` desc"]) == newest_first
    assert search(store, None, ["params.`model\" DESC; DELETE FROM runs; --`"]) == newest_first
    with pytest.raises(FilterSyntaxError, match="position 20"):
        search(store, "tags.team = 'vision'; DROP TABLE runs")
    with pytest.raises(FilterSyntaxError):
        search(store, "params.model = 'rf' -- and metrics.auc > 2")
    with pytest.raises(InvalidArgument):
        search(store, "1=1 or params.model = 'rf'")
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 7
