"""The UI's pure parts: JSON made safe for a script element, the graph layout, chart specs,
event chains and which deployments serve which versions."""

from __future__ import annotations

import math

import orjson
import pytest

from loopml.automation.events import Event
from loopml.cli.output import format_duration
from loopml.deployments.policy import Canary, TrafficPolicy
from loopml.deployments.records import Deployment
from loopml.registry.entities import ModelVersion
from loopml.ui import charts
from loopml.ui.automation import chains, lane
from loopml.ui.graphs import Box, layout
from loopml.ui.models import served_by
from loopml.ui.render import fmt_number, json_script


def test_json_script_cannot_close_its_element_and_has_no_nan() -> None:
    text = str(json_script({"name": "</script><script>alert(1)</script>", "x": [1.0, math.nan,
                                                                              math.inf]}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert orjson.loads(text) == {"name": "</script><script>alert(1)</script>",
                                  "x": [1.0, None, None]}


def test_numbers_and_durations_read_well() -> None:
    assert [fmt_number(v) for v in (None, 1234567, 0.123456, 1e-5, math.nan, True)] == \
        ["-", "1,234,567", "0.1235", "1.000e-05", "NaN", "true"]
    assert [format_duration(s) for s in (None, 1.234, 75.0, 3725.0)] == \
        ["-", "1.23 s", "1 min 15 s", "1 h 02 min"]


def test_layout_puts_each_node_after_its_longest_path() -> None:
    boxes = [Box(n, n) for n in ("a", "b", "c", "d")]
    drawn = layout(boxes, [("a", "b"), ("b", "c"), ("a", "c"), ("a", "zzz"), ("d", "d")])
    x = {p.box.id: p.x for p in drawn.nodes}
    assert x["a"] == x["d"] < x["b"] < x["c"]
    assert len(drawn.edges) == 3 and all(e.startswith("M") for e in drawn.edges)
    assert drawn.width > x["c"] and drawn.height > max(p.y for p in drawn.nodes)
    cyclic = layout([Box("a", "a"), Box("b", "b")], [("a", "b"), ("b", "a")])  # ends anyway
    assert len(cyclic.nodes) == 2
    assert layout([], []).nodes == ()


def test_chart_specs_are_plain_data() -> None:
    spec = charts.lines({"auc": ([0, 1, 2], [0.5, 0.6, None])}, title="auc",
                        thresholds={"max": 0.9}, whole_x=True, from_zero=True)
    assert spec["data"][0]["y"] == [0.5, 0.6, None] and spec["layout"]["shapes"][0]["y0"] == 0.9
    assert spec["layout"]["xaxis"]["dtick"] == 1
    parallel = charts.parallel_coordinates(
        [{"params.model": "rf", "metrics.auc": 0.8}, {"params.model": "gb", "metrics.auc": 0.9}],
        ["params.model", "metrics.auc"], color="metrics.auc", title="t")
    model, auc = parallel["data"][0]["dimensions"]
    assert model["ticktext"] == ["gb", "rf"] and model["values"] == [1, 0]
    assert auc["values"] == [0.8, 0.9] and parallel["data"][0]["line"]["color"] == [0.8, 0.9]
    histogram = charts.histogram([0.0, 1.0, 2.0], [3, 4], title="x")
    assert histogram["data"][0]["x"] == [0.5, 1.5] and histogram["data"][0]["width"] == [1, 1]
    orjson.dumps(spec)


def test_events_of_one_run_form_a_chain() -> None:
    def event(i: int, kind: str, run: str | None) -> Event:
        return Event(id=i, at=i, kind=kind, run_id=run)

    events = [event(1, "trigger_fired", None), event(2, "run_started", "r1"),
              event(3, "alert_drift", None), event(4, "gate_passed", "r1"),
              event(5, "promoted", "r1")]
    assert [(run, [e.id for e in group]) for run, group in chains(events)] == \
        [(None, [1]), ("r1", [2, 4, 5]), (None, [3])]
    assert [lane(k) for k in ("trigger_fired", "run_failed", "gate_failed", "rejected",
                              "rollout_started", "promoted", "rolled_back", "deploy_rollback",
                              "deploy_created", "alert_quality", "labels_added", "custom")] == \
        ["trigger", "run", "gate", "gate", "rollout", "promote", "rollback", "rollback",
         "deploy", "alert", "labels", "custom"]


def _version(number: int, *aliases: str, status: str = "active") -> ModelVersion:
    return ModelVersion(id=str(number), model="churn", version=number, tree="0" * 64,
                        flavor="sklearn", run_id=None, source_version_id=None, status=status,
                        description="", signature=None, metrics={}, params={}, datasets=[],
                        created_at=0, created_by="", aliases=aliases)


@pytest.mark.parametrize(("policy", "expected"), [
    (TrafficPolicy(model="churn@production"), [("primary", 1, 100.0)]),
    (TrafficPolicy(model="churn@production", canary=Canary(model="churn@staging", percent=25),
                   shadow="churn/3"),
     [("primary", 1, 75.0), ("canary", 2, 25.0), ("shadow", 3, 0.0)]),
    (TrafficPolicy(model="churn@production", pinned=3), [("primary", 3, 100.0)]),
    (TrafficPolicy(model="churn"), [("primary", 2, 100.0)]),  # the latest active version
    (TrafficPolicy(model="other@production"), []),
])
def test_served_by_resolves_aliases_pins_and_shares(policy: TrafficPolicy,
                                                    expected: list[tuple[str, int, float]]
                                                    ) -> None:
    versions = [_version(1, "production"), _version(2, "staging"),
                _version(3, status="archived")]
    deployment = Deployment(id="d", name="api", policy=policy, revision=1, created_at=0,
                            updated_at=0)
    found = served_by([deployment], "churn", versions)
    assert [(s.role, s.version, s.percent) for s in found] == expected
