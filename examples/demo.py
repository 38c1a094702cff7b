"""The loopml demo: a churn model that learns over time with no one pushing buttons.

A synthetic stream of telecom customers (examples/churn_stream.py) changes at known weeks: in
week 11 prices rise and a competitor opens in the south (a concept drift), in week 15 the
company opens a new region. The demo runs the whole loop on the embedded default store of a
fresh workspace (a new temporary directory, or ``--workdir DIR``; its ``.loopml`` holds the
SQLite database and the blobs, so the demo runs the same on a fresh clone and every time):

1. weeks 1-10 of labelled customers become dataset ``churn@1``; the retraining pipeline
   (examples/churn_pipeline.py) trains and registers ``churn`` v1, which passes its gate
   and becomes ``churn@production``; deployment ``churn-api`` serves it over HTTP;
2. week 10's requests look like the training data: monitoring finds no drift;
3. week 11's requests drift: monitoring of the payload log raises alerts and writes the
   HTML report;
4. the customers' outcomes since the change arrive (``churn@2``), and the agent (the
   triggers of the workspace's ``loopml.yaml``, evaluated once as ``loopml agent --once``
   does) retrains on the drift alert, gates the challenger against the champion on the
   same held-out rows and starts a canary;
5. the canary answers a quarter of the traffic, then is promoted;
6. a deliberately weaker model, fired by hand, fails its gate and is rejected;
7. a code change adds features that cannot handle the new region: it passes its gate, but
   as a canary it fails on live requests; the server rolls it back by itself and no client
   request fails.

It prints the timeline of every decision with its numbers, and exits 1 if any step of the
loop did not happen. Time is compressed: a canary lasts seconds here, not minutes.

    make demo          # or: python examples/demo.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import churn_stream as stream
from demo_loop import (
    DemoFailed,
    Server,
    Workspace,
    check,
    describe_answers,
    events_since,
    expect_kinds,
    make_workspace,
    print_events,
    say,
    send,
    step,
    wait_logged,
)

import loopml
import loopml.monitoring
from loopml.automation.agent import Agent, TickResult, fire_trigger
from loopml.automation.project import Project, load_project
from loopml.automation.rollout import Rollout, list_rollouts, on_candidate
from loopml.client.fluent import set_default_client
from loopml.deployments.api import Deployments
from loopml.tracking.records import now_ms

SEED = 0
MODEL, DEPLOYMENT, DATASET = "churn", "churn-api", "churn"
GATE = "{metric: auc, target: churned, margin: 0.005, slices: [region], threshold: 0.65}"

PROJECT = f"""\
# The triggers of the churn model and how the versions they build go live (written by
# examples/demo.py). Try: loopml trigger list; loopml events; loopml agent --once
defaults:
  pipeline: churn_pipeline.py:retrain
  model: {MODEL}
  deployment: {DEPLOYMENT}
  min_interval: 10m
  policy:
    # the challenger must beat the champion's AUC by 0.005 on the held-out rows of the
    # newest data, and lose no more than 0.02 in any region
    gate: {GATE}
    # a canary of a quarter of the traffic (seconds here, minutes in production), rolled
    # back by the server as soon as more than 5% of its answers fail
    rollout: {{mode: canary, deployment: {DEPLOYMENT}, percent: 25, minutes: 0.1,
              max_error_rate: 0.05, window_s: 10, min_requests: 10}}
triggers:
  drift:       {{kind: drift, kinds: [drift, prediction_drift]}}
  more-data:   {{kind: new_data, dataset: {DATASET}, min_rows: 2000}}
  code:        {{kind: code_change}}
  small-model: {{kind: manual, params: {{features: small}}}}
"""


class Demo:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.client = loopml.Client(workspace.settings())
        set_default_client(self.client)  # Dataset("churn@latest") & co
        self.project: Project = load_project(workspace.project)
        self.start = now_ms()
        self.server: Server | None = None
        self.sent: Counter[tuple[int, int | None]] = Counter()  # (status, version) answers

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.client.close()

    # -- the agent -------------------------------------------------------------------------
    def agent(self, what: str, *, show_waiting: bool = False) -> TickResult:
        """One evaluation of every trigger, as ``loopml agent --once`` does: fire, run the
        pipelines, hand their versions to the gate and rollout policy, advance rollouts."""
        mark = now_ms()
        with self.ws.log.open("a") as log:
            result = Agent(self.project, client=self.client,
                           log=lambda line: print(f"agent: {line}", file=log, flush=True)
                           ).run(once=True)
        say(f"agent ({what}):")
        print_events([e for e in events_since(self.client, mark) if e.source == "automation"],
                     self.start, skip=("candidate",), brief=True)
        waited: dict[str, list[str]] = {}
        for name, why in result.waiting.items() if show_waiting else ():
            waited.setdefault(why.replace(f"{self.ws.root}/", ""), []).append(name)
        for why, names in waited.items():
            say(f"({', '.join(names)} waited: {why})", indent=10)
        return result

    def production(self) -> int:
        return self.client.get_model_version(f"{MODEL}@production").version

    def rollout(self, version: int) -> Rollout:
        found = [r for r in list_rollouts(model=MODEL, client=self.client)
                 if r.challenger == version]
        check(len(found) == 1, f"expected one rollout of {MODEL} v{version}, found {found}")
        return found[0]

    # -- the story ---------------------------------------------------------------------------
    def first_model(self) -> None:
        with step("1. Weeks 1-10: the first model, gated, promoted, deployed and served"):
            history = stream.history(range(1, stream.DRIFT_WEEK), 250, seed=SEED)
            path = self.ws.data("weeks-01-10.parquet")
            history.to_parquet(path)
            data = self.client.add_dataset(path, DATASET, message="labelled weeks 1-10")
            say(f"dataset {data.ref}: {data.rows:,} labelled customers, churn rate "
                f"{history[stream.TARGET].mean():.1%}")
            retrain = self.project.trigger("code").pipeline  # the workspace's pipeline file
            from loopml.pipelines.loading import load_object

            run = load_object(retrain).run(client=self.client, progress=False)
            first = self.client.get_model_version(f"{MODEL}/1")
            say(f"pipeline run {run.run_id[:8]} registered {first.ref} "
                f"(val_auc {first.metrics['val_auc']:.4f})")
            # The same gate as loopml.yaml's (no champion yet: judged on its threshold), and
            # a direct rollout: the first version goes straight to production.
            on_candidate(first.ref, "first-model", client=self.client, policy={
                "gate": self.project.triggers[0].policy["gate"],
                "rollout": {"mode": "direct"}})
            check(self.production() == 1, "churn v1 did not become churn@production")
            loopml.monitoring.set_reference(first.ref, data.ref, predict=True,
                                            target=stream.TARGET, client=self.client)
            Deployments(self.client.meta, actor="demo").create(
                DEPLOYMENT, model=f"{MODEL}@production", reason="the first churn model")
            self.server = Server(DEPLOYMENT, self.ws.settings(), self.ws.log)
            print_events(events_since(self.client, self.start), self.start, brief=True)
            say(f"{MODEL}@production is v1; deployment {DEPLOYMENT} serves it at "
                f"{self.server.url}")

    def traffic(self, week: int, rows: int) -> int:
        assert self.server is not None
        requests = stream.requests(week, rows, seed=SEED)
        counts = send(self.server.port, requests)
        self.sent.update(counts)
        check(set(s for s, _ in counts) == {200}, f"week {week}: requests failed: {counts}")
        return sum(counts.values())

    def monitoring(self) -> None:
        sent = 0
        with step(f"2. Week {stream.DRIFT_WEEK - 1}: business as usual"):
            sent += self.traffic(stream.DRIFT_WEEK - 1, 400)
            wait_logged(self.client, DEPLOYMENT, sent)
            report = loopml.monitoring.monitor(DEPLOYMENT, last=400, client=self.client)
            drift = report.drift
            check(drift is not None and not drift.drifted,
                  f"week {stream.DRIFT_WEEK - 1} should not drift: {report.failed_checks}")
            assert drift is not None
            say(f"400 requests answered; monitoring of the payload log: drift score "
                f"{drift.score:.2f} (alert at {drift.threshold:g}), no column drifted")
        with step(f"3. Week {stream.DRIFT_WEEK}: prices rise, a competitor opens in the "
                  "south (the drift)"):
            sent += self.traffic(stream.DRIFT_WEEK, 400)
            wait_logged(self.client, DEPLOYMENT, sent)
            html = self.ws.root / f"monitoring-week-{stream.DRIFT_WEEK}.html"
            report = loopml.monitoring.monitor(DEPLOYMENT, last=400, html=html,
                                               client=self.client)
            drift = report.drift
            check(drift is not None and drift.drifted,
                  f"week {stream.DRIFT_WEEK} should drift: {report.to_dict()['drift']}")
            assert drift is not None
            say(f"drift score {drift.score:.2f}; drifted: {', '.join(drift.drifted_columns)}; "
                f"HTML report: {html}")
            alerts = loopml.monitoring.list_alerts(DEPLOYMENT, client=self.client)
            check(bool(alerts), "monitoring raised no alert")
            for alert in alerts:
                say(f"alert ({alert.kind}): {alert.message}", indent=6)

    def retrain_on_drift(self) -> None:
        with step(f"4. Outcomes of weeks {stream.DRIFT_WEEK}-{stream.DRIFT_WEEK + 2} arrive; "
                  "the agent retrains"):
            fresh = stream.history(range(stream.DRIFT_WEEK, stream.DRIFT_WEEK + 3), 1200,
                                   seed=SEED)
            path = self.ws.data(f"weeks-{stream.DRIFT_WEEK}-{stream.DRIFT_WEEK + 2}.parquet")
            fresh.to_parquet(path)
            data = self.client.append_dataset(DATASET, path, message="outcomes since the "
                                              "price rise")
            say(f"dataset {data.ref}: {data.rows:,} rows (+{len(fresh):,}), churn rate of "
                f"the new customers {fresh[stream.TARGET].mean():.1%}")
            mark = now_ms()
            self.agent("a drift alert and new data", show_waiting=True)
            expect_kinds(events_since(self.client, mark),
                         ["trigger_fired", "run_started", "run_succeeded", "gate_passed",
                          "rollout_started", "deploy_updated"], "retrain on drift")
            check(self.rollout(2).stage == "canary", "churn v2 is not a canary")

        with step(f"5. Week {stream.DRIFT_WEEK + 3}: the canary answers 25% of the traffic"):
            assert self.server is not None
            requests = stream.requests(stream.DRIFT_WEEK + 3, 400, seed=SEED)
            deadline = self.rollout(2).deadline_at or 0
            counts = send(self.server.port, requests,
                          seconds=max(1.0, (deadline - now_ms()) / 1000 + 0.5))
            self.sent.update(counts)
            say(describe_answers(counts))
            check(set(s for s, _ in counts) == {200}, f"canary requests failed: {counts}")
            check(any(v == 2 for _, v in counts), "the canary answered no request")
            time.sleep(0.6)  # the server writes its payload log every half second
            self.agent("the canary's time is up")
            check(self.rollout(2).outcome == "promoted", "churn v2 was not promoted")
            check(self.production() == 2, "churn@production is not v2")

    def rejected(self) -> None:
        with step("6. A teammate tries a cheaper model: loopml trigger fire small-model"):
            fire_trigger("small-model", project=self.project, client=self.client, by="demo")
            self.agent("fired by hand")
            check(self.rollout(3).outcome == "rejected", "churn v3 was not rejected")
            check(self.production() == 2, "churn@production moved away from v2")

    def rolled_back(self) -> None:
        week = stream.NEW_REGION_WEEK
        with step(f"7. Week {week}: a code change (region x contract features) and a new "
                  "region, central"):
            source = self.ws.pipeline.read_text()
            changed = source.replace("    region_x_contract = False",
                                     "    region_x_contract = True")
            check(changed != source, "the pipeline has no region_x_contract switch")
            self.ws.pipeline.write_text(changed)
            say(f"edited {self.ws.pipeline.name}: region_x_contract = True")
            self.agent("the pipeline's code changed")
            check(self.rollout(4).stage == "canary", "churn v4 is not a canary")
            assert self.server is not None
            deploys = Deployments(self.client.meta)

            def rolled_back() -> bool:
                return deploys.history(DEPLOYMENT)[-1].kind == "auto-rollback"

            requests = stream.requests(week, 400, seed=SEED)
            counts = send(self.server.port, requests, until=rolled_back, seconds=30)
            check(rolled_back(), "the server did not roll the failing canary back")
            counts.update(send(self.server.port, requests[:100]))  # after the rollback
            central = sum(r["region"] == "central" for r in requests) / len(requests)
            say(f"{describe_answers(counts)}; {central:.0%} of this week's customers are in "
                "central, which v4 cannot score")
            self.sent.update(counts)
            check(set(s for s, _ in counts) == {200}, f"client requests failed: {counts}")
            self.agent("after the server's rollback")
            check(self.rollout(4).outcome == "rolled_back", "churn v4 was not rolled back")
            check(self.production() == 2, "churn@production is not v2")
            check(deploys.get(DEPLOYMENT).policy.canary is None, "the canary was not removed")

    def timeline(self) -> None:
        events = events_since(self.client, self.start)
        expect_kinds(events, [
            "gate_passed", "promoted", "deploy_created", "alert_drift", "trigger_fired",
            "run_succeeded", "gate_passed", "rollout_started", "promoted", "trigger_fired",
            "gate_failed", "rejected", "trigger_fired", "gate_passed", "rollout_started",
            "deploy_auto-rollback", "rolled_back"], "the whole loop")
        check(set(s for s, _ in self.sent) == {200}, f"client requests failed: {self.sent}")
        print(f"\n== The timeline (seconds since the start; `loopml events` in "
              f"{self.ws.root} shows it again)")
        print_events(events, self.start, skip=("candidate",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="a new or empty directory for the workspace (default: a new "
                             "temporary directory)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        workspace = make_workspace(args.workdir, PROJECT)
    except DemoFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"workspace: {workspace.root} (store: .loopml; triggers: loopml.yaml; "
          f"logs: {workspace.log.name})")
    demo = Demo(workspace)
    try:
        demo.first_model()
        demo.monitoring()
        demo.retrain_on_drift()
        demo.rejected()
        demo.rolled_back()
        demo.timeline()
    except (DemoFailed, loopml.LoopmlError) as exc:
        print(f"\nthe loop did not complete: {exc}\n(see {workspace.log})", file=sys.stderr)
        return 1
    finally:
        demo.close()
    print(f"\nThe loop completed in {time.monotonic() - started:.0f} s: {MODEL}@production is "
          f"v2, the drift retrain; v3 was rejected by its gate, v4 rolled back by the server.")
    print(f"Client requests: {describe_answers(demo.sent)}.")
    print(f"HTML monitoring report: {workspace.root}/monitoring-week-{stream.DRIFT_WEEK}.html")
    print(f"Look around: cd {workspace.root} && loopml events && loopml trigger list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
