"""A small store with something on every page of the web UI, built through the real domain
calls: experiments and runs with metrics over steps, a dataset with two versions, a model
with versions, aliases and their history, a pipeline run (and a cached rerun), a deployment
with a canary, a payload log, monitoring results and alerts, automation events and a review
queue. Also: :func:`serving` (the server's application in a thread) and :func:`call` /
:func:`post` (HTTP without a browser, no redirects followed)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from servers import ServerThread, free_port

import loopml
from loopml.automation.events import record_event
from loopml.automation.review import ReviewQueue
from loopml.deployments.api import Deployments
from loopml.deployments.payload import SegmentSink
from loopml.monitoring import records as monitoring
from loopml.monitoring.reference import set_reference
from loopml.monitoring.results import MonitorReport
from loopml.pipelines import pipeline, step
from loopml.registry import records as registry

ENDPOINT = "churn-api"
T0 = 1_700_000_000_000
MINUTE = 60_000
INPUTS = {"inputs": {"columns": [{"name": "x1", "dtype": "float64"},
                                 {"name": "plan", "dtype": "string"}]}}
#: (name, params, final auc) of the runs of the "churn" experiment.
RUNS = [("rf-small", {"model": "rf", "depth": 3, "lr": 0.1}, 0.71),
        ("rf-deep", {"model": "rf", "depth": 8, "lr": 0.1}, 0.86),
        ("gb-fast", {"model": "gb", "depth": 4, "lr": 0.3}, 0.91),
        ("gb-slow", {"model": "gb", "depth": 4, "lr": 0.03}, 0.83)]


@dataclass(frozen=True)
class Seeded:
    client: loopml.Client
    run_ids: dict[str, str]
    pipeline_run: str
    cached_run: str


@step
def prepare(n: int) -> list[float]:
    print(f"preparing {n} rows")
    return [float(i) for i in range(n)]


@step
def train(rows: list[float], *, lr: float = 0.1) -> float:
    loopml.log_metric("loss", 1.0 / (1.0 + lr * len(rows)))
    return sum(rows) * lr


@step
def evaluate(model: float, rows: list[float]) -> float:
    return model / (1.0 + len(rows))


@pipeline
def churn_training(n: int = 20, lr: float = 0.1):  # type: ignore[no-untyped-def]
    rows = prepare(n)
    return evaluate(train(rows, lr=lr), rows)


def _table(rng: np.random.Generator, n: int, shift: float = 0.0) -> pa.Table:
    x1 = rng.normal(shift, 1.0, n)
    return pa.table({"x1": x1, "plan": rng.choice(["free", "pro", "team"], n).tolist(),
                     "churned": (x1 > shift).astype(np.int64)})


def _runs(client: loopml.Client) -> dict[str, str]:
    ids = {}
    for name, params, auc in RUNS:
        with client.start_run("churn", name=name) as run:
            run.log_params(params)
            for i in range(10):
                run.log_metric("auc", auc * (0.6 + 0.04 * i), step=i)
                run.log_metric("loss", 1.0 - auc * (0.5 + 0.05 * i), step=i)
            ids[name] = run.id
    with client.start_run("baseline", name="majority-class") as run:
        run.log_params({"model": "constant"})
        run.log_metric("auc", 0.5)
        ids["majority-class"] = run.id
    return ids


def _registry(client: loopml.Client, run_ids: dict[str, str]) -> None:
    with client.meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn",
                                datasets=["churn@1"], signature=INPUTS,
                                run_id=run_ids["rf-deep"], metrics={"auc": 0.86})
        registry.insert_version(conn, "churn", tree="1" * 64, flavor="sklearn",
                                datasets=["churn@2"], signature=INPUTS,
                                run_id=run_ids["gb-fast"], metrics={"auc": 0.91})
        registry.set_alias(conn, "churn", "production", 1, actor="ana", reason="first model")
        registry.set_alias(conn, "churn", "staging", 2, actor="bob", reason="candidate")
    Deployments(client.meta, actor="ana").create(ENDPOINT, model="churn@production",
                                                 canary="churn@staging=10%")


def _requests(rng: np.random.Generator) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(120):
        p = float(rng.uniform(0.3, 1.0))
        body = orjson.dumps({"dataframe_records": [{"x1": round(float(rng.normal()), 3),
                                                    "plan": "pro"}]}).decode()
        answer = orjson.dumps({"predictions": [[round(1 - p, 4), round(p, 4)]],
                               "request_id": f"r{i}"}).decode()
        status = 500 if i % 40 == 39 else 200
        rows.append((f"r{i}", T0 + i * 5_000, ENDPOINT, "churn", 1, "predict_proba", status,
                     float(rng.gamma(2.0, 4.0)), 1, body, answer, None, "primary"))
    return rows


def _monitoring(client: loopml.Client) -> None:
    with client.meta.write() as conn:
        for i in range(6):
            window = (T0 + i * 10 * MINUTE, T0 + (i + 1) * 10 * MINUTE)
            report = MonitorReport(reference="churn@1", current=f"window {i}", rows=20,
                                   drift=None, quality=None, window=window,
                                   deployment=ENDPOINT, model_version="churn/1")
            score = 0.05 + 0.06 * i
            points = [monitoring.ResultPoint("window", "", "rows", 20.0 + i),
                      monitoring.ResultPoint("drift", "", "score", score, 0.25, score <= 0.25),
                      monitoring.ResultPoint("drift", "x1", "psi", 0.02 + 0.05 * i, 0.2,
                                             0.02 + 0.05 * i <= 0.2),
                      monitoring.ResultPoint("drift", "plan", "tvd", 0.01 * i, 0.1, True),
                      monitoring.ResultPoint("performance", "", "accuracy", 0.9 - 0.03 * i,
                                             0.85, 0.9 - 0.03 * i >= 0.85),
                      monitoring.ResultPoint("quality", "", "issues", float(i % 2), 0.0,
                                             i % 2 == 0)]
            stored = monitoring.record_report(conn, endpoint=ENDPOINT, report=report,
                                              report_blob="f" * 64, points=points)
            if score > 0.25:
                monitoring.insert_alert(conn, endpoint=ENDPOINT, kind="drift",
                                        message=f"drift score {score:.2f} > 0.25 <b>x1</b>",
                                        window=window, report_id=stored.id, model="churn",
                                        version=1, column="x1", statistic="psi",
                                        value=0.02 + 0.05 * i, threshold=0.2)


def _events(client: loopml.Client, run_id: str) -> None:
    meta = client.meta
    record_event(meta, "trigger_fired", trigger="new-data", pipeline="train.py:churn",
                 model="churn", reason="1,200 new rows in churn@2 since churn@1 (>= 1,000)",
                 data={"new_rows": 1200, "threshold": 1000}, at=T0 + 61 * MINUTE)
    record_event(meta, "run_started", pipeline="train.py:churn", model="churn",
                 run_id=run_id, reason="retraining on churn@2", at=T0 + 62 * MINUTE)
    record_event(meta, "gate_passed", model="churn", version=2, run_id=run_id,
                 reason="auc 0.910 >= production's 0.860 + 0.01",
                 data={"auc": 0.91, "baseline": 0.86, "margin": 0.01}, at=T0 + 70 * MINUTE)
    record_event(meta, "rollout_started", model="churn", version=2, deployment=ENDPOINT,
                 run_id=run_id, reason="canary at 10%", data={"percent": 10},
                 at=T0 + 71 * MINUTE)
    record_event(meta, "promoted", model="churn", version=2, deployment=ENDPOINT,
                 run_id=run_id, reason="canary error rate 0.4% <= 1%",
                 data={"error_rate": 0.004, "max_error_rate": 0.01}, at=T0 + 90 * MINUTE)


def seed(home: Path) -> Seeded:
    client = loopml.Client(loopml.load_settings(home=home, progress=False, environ={},
                                                config_file=home / "none.toml"))
    rng = np.random.default_rng(7)
    run_ids = _runs(client)
    first = _table(rng, 400)
    pq.write_table(first, home.parent / "churn-1.parquet")
    client.add_dataset(home.parent / "churn-1.parquet", "churn", message="first export")
    pq.write_table(pa.concat_tables([first, _table(rng, 200, shift=1.5)]),
                   home.parent / "churn-2.parquet")
    client.add_dataset(home.parent / "churn-2.parquet", "churn", message="two more weeks")
    client.use_dataset(run_ids["rf-deep"], "churn@1")
    client.use_dataset(run_ids["gb-fast"], "churn@2")
    _registry(client, run_ids)
    set_reference("churn/1", first, target="churned", client=client)
    sink = SegmentSink(blobs=client.blobs, meta=lambda: client.meta, endpoint=ENDPOINT,
                       model="churn")
    requests = _requests(rng)
    sink("requests", requests[:60])
    sink("requests", requests[60:])
    _monitoring(client)
    first_run = churn_training.run(n=30, lr=0.2, client=client, progress=False)
    cached = churn_training.run(n=30, lr=0.2, client=client, progress=False)
    _events(client, run_ids["gb-fast"])
    ReviewQueue(ENDPOINT, client=client).refresh(uncertain=6, sample=0.0)
    return Seeded(client=client, run_ids=run_ids, pipeline_run=first_run.run_id,
                  cached_run=cached.run_id)


# -- serving the seeded store, and calling it without a browser ------------------------
@contextmanager
def serving(client: Any, *, auth: bool | None = None) -> Iterator[str]:
    """``loopml server``'s application over ``client`` on a free port, in a thread; yields
    its base URL (auth: off on a loopback address unless ``auth=True``)."""
    from loopml.server.app import ServerOptions, create_app

    port = free_port()
    app = create_app(client=client, options=ServerOptions(port=port, auth=auth))
    with ServerThread.for_app(app, port=port) as server:
        yield server.url


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def call(url: str, fields: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    """(status, body, headers) of a GET, or of a form POST with ``fields``; no redirects."""
    data = None if fields is None else urllib.parse.urlencode(fields).encode()
    sent = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers={**sent, **(headers or {})})
    try:
        with urllib.request.build_opener(NoRedirect).open(req) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def post(url: str, fields: dict[str, str], headers: dict[str, str] | None = None
          ) -> tuple[int, str]:
    status, body, _ = call(url, fields, headers)
    return status, body


