"""The gate with real scikit-learn models on generated data: a better challenger passes, a
worse one fails with the numbers, a regression on one slice fails, no champion passes on its
own checks, and a bad policy or bad data is refused with a message that names the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml
from loopml.automation.gate import (
    GatePolicy,
    evaluate_gate,
    holdout_rows,
    split_holdout,
)
from loopml.errors import InvalidArgument
from loopml.models import save_model


def _frame(rows: int, seed: int) -> pd.DataFrame:
    """Regions a and b follow f0; the small region c follows f1."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["f0", "f1", "f2"])
    frame["region"] = rng.choice(["a", "b", "c"], size=rows, p=[0.45, 0.45, 0.10])
    driver = np.where(frame["region"] == "c", frame["f1"], frame["f0"])
    frame["label"] = (driver > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> loopml.Client:
    """churn/1: logistic on f1 (right only in region c); churn/2: logistic on f0 (right in
    a and b, a coin in c); churn/3: logistic on f0, f1, f2 with a region flag."""
    home = tmp_path_factory.mktemp("gate") / ".loopml"
    client = loopml.Client(loopml.load_settings(home=home, progress=False, environ={},
                                                config_file=home / "none.toml"))
    train = _frame(600, 1)
    train["in_c"] = (train["region"] == "c").astype(float)
    train["f1_c"] = train["f1"] * train["in_c"]
    for version, columns in enumerate((["f1"], ["f0"], ["f0", "f1", "in_c", "f1_c"]), 1):
        model = LogisticRegression().fit(train[columns], train["label"])
        package = home.parent / f"package-{version}"
        save_model(model, package, input_example=train[columns].head(2),
                   options={"serializer": "pickle"}, trusted=True)
        assert client.register_model(package, "churn").version == version
    regression = LinearRegression().fit(train[["f0"]], train["f1"])
    save_model(regression, home.parent / "reg", input_example=train[["f0"]].head(2),
               options={"serializer": "pickle"}, trusted=True)
    client.register_model(home.parent / "reg", "value")
    yield client
    client.close()


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    frame = _frame(400, 2)
    frame["in_c"] = (frame["region"] == "c").astype(float)
    frame["f1_c"] = frame["f1"] * frame["in_c"]
    return frame


def _gate(client: loopml.Client, new: str, old: str | None, data: object,
          **policy: object) -> object:
    return evaluate_gate(new, old, data=data, policy=GatePolicy(**policy),  # type: ignore[arg-type]
                         client=client, trusted=True)


def test_a_better_challenger_passes_with_its_numbers(client: loopml.Client,
                                                     holdout: pd.DataFrame) -> None:
    result = evaluate_gate("churn/2", "churn/1", data=holdout, client=client, trusted=True,
                           policy=GatePolicy(metric="auc", margin=0.05,
                                             max_latency_ms=1000, max_size_mb=5))
    assert result.passed, result.reason
    assert result.challenger == "churn/2" and result.champion == "churn/1"
    assert result.rows == len(holdout)
    assert result.challenger_metrics["auc"] > result.champion_metrics["auc"] + 0.2  # type: ignore[index]
    assert {"accuracy", "f1", "log_loss"} <= set(result.challenger_metrics)
    checks = {c.name: c for c in result.checks}
    assert set(checks) == {"metric", "latency", "size"} and all(c.passed for c in checks.values())
    assert 0 < checks["latency"].value < 1000 and 0 < checks["size"].value < 5  # type: ignore[operator]
    assert result.reason.startswith("passed: auc 0.")
    assert "meets margin +0.0500" in result.reason
    assert result.to_dict()["checks"][0]["name"] == "metric"


def test_a_worse_challenger_fails_with_numbers(client: loopml.Client,
                                               holdout: pd.DataFrame) -> None:
    result = _gate(client, "churn/1", "churn/2", holdout, metric="accuracy")
    assert not result.passed  # type: ignore[attr-defined]
    [check] = result.checks  # type: ignore[attr-defined]
    assert check.name == "metric" and check.value < -0.2 and check.limit == 0
    ours = result.challenger_metrics["accuracy"]  # type: ignore[attr-defined]
    theirs = result.champion_metrics["accuracy"]  # type: ignore[attr-defined]
    assert result.reason == (  # type: ignore[attr-defined]
        f"failed: accuracy {ours:.4f} vs champion churn/2 {theirs:.4f} ({ours - theirs:+.4f}, "
        "needs margin +0.0000)")
    relative = _gate(client, "churn/3", "churn/2", holdout, metric="log_loss", margin=0.9,
                     margin_relative=True)  # lower is better: needs 90 % less loss
    assert not relative.passed and "relative" in relative.reason  # type: ignore[attr-defined]


def test_a_slice_that_regresses_fails_the_gate(client: loopml.Client,
                                               holdout: pd.DataFrame) -> None:
    result = _gate(client, "churn/2", "churn/3", holdout, metric="accuracy",
                   margin=-0.2, slices=("region",), slice_tolerance=0.05, min_slice_rows=10)
    assert not result.passed  # type: ignore[attr-defined]
    by_value = {s.value: s for s in result.slices}  # type: ignore[attr-defined]
    assert set(by_value) == {"a", "b", "c"}
    assert [s.value for s in result.slices][:2] != ["c"]  # most rows first  # type: ignore[attr-defined]
    assert by_value["c"].judged and not by_value["c"].passed and by_value["c"].change < -0.1
    assert by_value["a"].passed and by_value["b"].passed
    [slices] = [c for c in result.checks if c.name == "slices"]  # type: ignore[attr-defined]
    assert not slices.passed and "region='c'" in slices.detail
    assert "metric" not in [c.name for c in result.checks if not c.passed]  # type: ignore[attr-defined]
    small = _gate(client, "churn/2", "churn/3", holdout, metric="accuracy", margin=-0.2,
                  slices=("region",), min_slice_rows=1000)  # slices too small to judge
    assert small.passed and not any(s.judged for s in small.slices)  # type: ignore[attr-defined]


def test_no_champion_passes_on_its_own_checks(client: loopml.Client,
                                              holdout: pd.DataFrame) -> None:
    result = _gate(client, "churn/3", None, holdout, metric="f1", slices=("region",))
    assert result.passed and result.champion is None  # type: ignore[attr-defined]
    assert result.champion_metrics is None  # type: ignore[attr-defined]
    assert "no champion" in result.reason  # type: ignore[attr-defined]
    assert all(s.champion is None and not s.judged for s in result.slices)  # type: ignore[attr-defined]
    floor = _gate(client, "churn/1", None, holdout, metric="accuracy", threshold=0.9)
    assert not floor.passed and "must be at least 0.9" in floor.reason  # type: ignore[attr-defined]
    size = _gate(client, "churn/3", None, holdout, metric="accuracy", max_size_mb=1e-6)
    assert not size.passed and "MiB" in size.reason  # type: ignore[attr-defined]
    target = pd.DataFrame({"f0": holdout["f0"], "label": holdout["f1"]})
    value = _gate(client, "value/1", None, target, metric="rmse", threshold=2.0)
    assert value.passed and set(value.challenger_metrics) == {"rmse", "mae", "r2"}  # type: ignore[attr-defined]


def test_holdout_of_the_newest_dataset_version(client: loopml.Client, tmp_path: Path) -> None:
    frame = _frame(1000, 3)
    frame.to_parquet(tmp_path / "rows.parquet")
    client.add_dataset(tmp_path / "rows.parquet", "rows")
    held = holdout_rows(frame, fraction=0.2)
    assert 150 < len(held) < 250
    train, test = split_holdout(frame, fraction=0.2)
    assert len(train) + len(test) == 1000 and test.equals(held)
    more = pd.concat([frame, _frame(200, 4)], ignore_index=True)
    assert holdout_rows(more, fraction=0.2).head(len(held)).equals(held)  # rows stay put
    result = _gate(client, "churn/2", "churn/1", "rows", metric="accuracy")
    assert result.passed and result.rows == len(held)  # type: ignore[attr-defined]
    assert result.data == f"rows@1 holdout (0.2 hashed by row): {len(held)} rows"  # type: ignore[attr-defined]
    marked = frame.assign(split=np.where(frame.index < 100, "holdout", "train"))
    assert len(holdout_rows(marked)) == 100
    with pytest.raises(InvalidArgument, match="no row with split == 'holdout'"):
        holdout_rows(marked.assign(split="train"))
    by_key = holdout_rows(frame.assign(user=frame.index // 2), key="user")
    assert by_key["user"].value_counts().eq(2).all()  # one user's rows stay together


def test_bad_policy_and_data_are_refused(client: loopml.Client,
                                         holdout: pd.DataFrame) -> None:
    with pytest.raises(InvalidArgument, match="unknown gate metric 'acc'; use one of"):
        GatePolicy(metric="acc")
    with pytest.raises(InvalidArgument, match="holdout_fraction"):
        GatePolicy(metric="auc", holdout_fraction=1.5)
    with pytest.raises(InvalidArgument, match="slice_tolerance"):
        GatePolicy(metric="auc", slice_tolerance=-1)
    with pytest.raises(InvalidArgument, match="target column 'churned' is not in"):
        _gate(client, "churn/2", "churn/1", holdout, metric="auc", target="churned")
    with pytest.raises(InvalidArgument, match="slice column.*'country'"):
        _gate(client, "churn/2", "churn/1", holdout, metric="auc", slices=("country",))
    with pytest.raises(InvalidArgument, match="no rows to evaluate"):
        _gate(client, "churn/2", "churn/1", holdout.head(0), metric="auc")
    with pytest.raises(InvalidArgument, match="expects the column.*f0"):
        _gate(client, "churn/2", "churn/1", holdout.drop(columns=["f0"]), metric="auc")
    with pytest.raises(InvalidArgument, match="same version"):
        _gate(client, "churn/2", "churn/2", holdout, metric="auc")
    with pytest.raises(InvalidArgument, match="dataset reference"):
        _gate(client, "churn/2", "churn/1", [1, 2, 3], metric="auc")
    with pytest.raises(loopml.LoopmlError, match="no registered model named 'nope'"):
        _gate(client, "nope/1", None, holdout, metric="auc")


def test_trusted_types_are_names() -> None:
    from loopml.automation.rollout_policy import parse_policies

    gate, _ = parse_policies({"gate": {"metric": "auc",
                                       "trusted_types": ["sklearn.tree._tree.Tree"]}})
    assert gate.trusted_types == ("sklearn.tree._tree.Tree",)
    assert GatePolicy(metric="auc", trusted_types="a.B").trusted_types == ("a.B",)
    with pytest.raises(InvalidArgument, match="trusted_types is a list of type names"):
        GatePolicy(metric="auc", trusted_types=[3])  # type: ignore[list-item]
