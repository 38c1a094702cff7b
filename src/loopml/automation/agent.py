"""The controller: :class:`Agent`, the loop behind ``loopml agent``.

::

    lease (one leader among agents) ─► evaluate each trigger ─► debounce ─► fire:
        trigger_fired ─► pipeline run on the executor (a thread per retrain) ─► run_started
        ─► run_succeeded ─► the new model version, handed to rollout.on_candidate
        └► run_failed ─► retried per the trigger's max_retries (resuming the failed run)

Only the lease holder acts, and it checks the lease before every action: an agent that
loses it stops starting retrains and handing candidates, and lets the new leader go on.
Everything it decides is a row in the database before it acts — a firing is one
transaction with the trigger's state (see :mod:`loopml.automation.records`), a retrain is
a row that names its driver — so an agent that restarts neither loses a firing nor repeats
one: retrains whose driver is gone are resumed from their failed or interrupted pipeline
run, and registered versions not yet handed to the rollout policy are handed then. A
candidate whose rollout policy fails (a deployment missing, the database away) is recorded
(``candidate_failed``, with the reason) and handed again on the next evaluation, up to
:data:`CANDIDATE_ATTEMPTS` times; it is never dropped silently. Unfinished rollouts are
advanced on every evaluation, whoever handles the candidates (see
:mod:`loopml.automation.retrain` for the driver of one retrain).

A stop (SIGTERM) finishes the tick, waits ``stop_timeout`` for the running pipelines (their
steps are recorded as they end, so a run cut short is resumable), releases the lease and
records ``agent_stopped``.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopml.automation import records
from loopml.automation.events import record_event
from loopml.automation.lease import Lease, LeaseKeeper
from loopml.automation.project import Project, load_project
from loopml.automation.records import AutomationRun, StoreContext, TriggerState
from loopml.automation.retrain import Retrain
from loopml.automation.triggers import CodeChangeTrigger, Firing, Trigger, source_hashes
from loopml.errors import LoopmlError, NotFound
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.client.embedded import Client
    from loopml.pipelines.entities import PipelineRun
    from loopml.registry.entities import ModelVersion
    from loopml.store import MetadataStore

__all__ = ["CANDIDATE_ATTEMPTS", "Agent", "TickResult", "fire_trigger"]

#: How many times a candidate is handed to the rollout policy before the agent gives up.
CANDIDATE_ATTEMPTS = 3
#: Holders of the agents of this process that still drive retrains: a retrain row naming
#: this process but none of them was left by an earlier agent here and can be taken over.
_LOCAL_HOLDERS: set[str] = set()


@dataclass(frozen=True, slots=True)
class TickResult:
    """One evaluation of the triggers: what fired, and why the others did not act."""

    fired: tuple[Firing, ...] = ()
    waiting: dict[str, str] = field(default_factory=dict)


def fire_trigger(name: str, *, project: Project | None = None,
                 client: Client | None = None, by: str | None = None) -> TriggerState:
    """Ask the agent to fire trigger ``name`` on its next evaluation (whatever its
    condition and minimum interval; still one retrain at a time per pipeline)."""
    from loopml.identity import current_user

    project = project if project is not None else load_project()
    project.trigger(name)
    client = client or _client()
    with client.meta.write() as conn:
        return records.request_fire(conn, name, by=by if by is not None else current_user())


def _client() -> Client:
    from loopml.client.fluent import default_client

    return default_client()


def _rollout_function(name: str) -> Callable[..., Any] | None:
    """``on_candidate`` or ``resume_rollouts`` of :mod:`loopml.automation.rollout`."""
    try:
        from loopml.automation import rollout
    except ImportError:
        return None
    function = getattr(rollout, name, None)
    return function if callable(function) else None


class Agent:
    """Evaluates ``project``'s triggers and drives the retrains they start (see the module
    docstring). ``clock`` gives the evaluation time in ms (tests pass their own);
    ``on_candidate(version, trigger)`` defaults to ``loopml.automation.rollout``'s."""

    def __init__(self, project: Project, *, client: Client | None = None,
                 executor: str | None = None, interval: float | None = None,
                 lease_ttl: float | None = None, holder: str | None = None,
                 clock: Callable[[], int] | None = None,
                 on_candidate: Callable[..., Any] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.project = project
        self.client = client or _client()
        settings = self.client.settings
        self.interval = interval or project.agent.interval or settings.agent_interval
        self.executor = executor or project.agent.executor or None
        ttl = lease_ttl or project.agent.lease_ttl or settings.agent_lease_ttl
        self.lease = Lease(self.client.meta, name=project.agent.lease, holder=holder, ttl=ttl)
        self.holder = self.lease.holder
        _LOCAL_HOLDERS.add(self.holder)
        self.clock = clock or now_ms
        self.on_candidate = on_candidate
        self.log = log or (lambda line: None)
        self._jobs: dict[str, Retrain] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()

    @property
    def meta(self) -> MetadataStore:
        return self.client.meta

    # -- the loop --------------------------------------------------------------------------
    def run(self, *, once: bool = False) -> TickResult:
        """Run until :meth:`stop` (or, with ``once``, evaluate once, wait for the retrains it
        started and hand their candidates). Returns the last tick's result."""
        keeper = LeaseKeeper(self.lease, on_change=self._leadership)
        keeper.start()
        result = TickResult()
        try:
            if not once:
                self.event("agent_started", reason=f"agent {self.holder} started with "
                           f"{len(self.project.triggers)} trigger(s), every "
                           f"{self.interval:g} s",
                           data={"triggers": [t.name for t in self.project.triggers],
                                 "interval": self.interval, "executor": self.executor})
            if once:
                if not self.lease.held:
                    self.log(f"another agent holds the lease {self.lease.name!r} "
                             f"({self._holder_text()}); nothing done")
                    return result
                result = self.tick()
                while self._jobs_alive() and not self._stop.is_set():
                    self._wake.wait(1.0)
                    self._wake.clear()
                self._hand_candidates()
                self._advance_rollouts()
                return result
            while not self._stop.is_set():
                if self.lease.held:
                    try:
                        result = self.tick()
                    except LoopmlError as exc:  # e.g. the database is away: try next tick
                        self.log(f"this evaluation failed: {exc}")
                self._wake.wait(self.interval)
                self._wake.clear()
        finally:
            self._shut_down(keeper, once=once)
        return result

    def stop(self) -> None:
        """Ask the loop to stop (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """End the current wait of the loop early (a retrain finished)."""
        self._wake.set()

    def wait_stopping(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the agent is asked to stop."""
        return self._stop.wait(seconds)

    def _jobs_alive(self) -> bool:
        return any(job.is_alive() for job in list(self._jobs.values()))

    def _leadership(self, held: bool) -> None:
        self.log(f"leader: {self.holder}" if held else f"not the leader ({self._holder_text()})")
        self._wake.set()

    def _holder_text(self) -> str:
        try:
            info = self.lease.info()
        except LoopmlError as exc:
            return f"the lease cannot be read: {exc}"
        if info is None or not info.holder:
            return "no holder"
        until = datetime.fromtimestamp(info.expires_at / 1000, tz=UTC).strftime("%H:%M:%S")
        return f"held by {info.holder} until {until} UTC"

    def _shut_down(self, keeper: LeaseKeeper, *, once: bool) -> None:
        stop_timeout = self.project.agent.stop_timeout
        left = self.wait_for_runs(timeout=stop_timeout)
        if not left:
            _LOCAL_HOLDERS.discard(self.holder)
        keeper.stop(release=True)
        if not once:
            reason = f"agent {self.holder} stopped"
            if left:
                reason += (f"; {len(left)} retrain(s) still running after {stop_timeout:g} s "
                           "are left to the next agent, which resumes them")
            self.event("agent_stopped", reason=reason, data={"left_running": left})

    def wait_for_runs(self, timeout: float | None = None) -> list[str]:
        """Wait for the retrains this agent drives; the pipeline runs still going after
        ``timeout`` seconds (their automation ids) are returned."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in list(self._jobs.values()):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            job.join(remaining)
        return [key for key, job in self._jobs.items() if job.is_alive()]

    # -- one evaluation --------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Evaluate every trigger once (as the leader) and start what fires."""
        self._jobs = {k: j for k, j in self._jobs.items() if j.is_alive()}
        if not self.lease.held:
            return TickResult(waiting={t.name: "not the leader" for t in self.project.triggers})
        self._recover()
        self._hand_candidates()
        self._advance_rollouts()
        fired: list[Firing] = []
        waiting: dict[str, str] = {}
        now = self.clock()
        for trigger in self.project.triggers:
            if self._stop.is_set() or not self.lease.held:
                waiting[trigger.name] = "stopping" if self._stop.is_set() else "lost the lease"
                continue
            outcome = self._consider(trigger, now)
            if isinstance(outcome, Firing):
                fired.append(outcome)
            elif outcome:
                waiting[trigger.name] = outcome
        return TickResult(fired=tuple(fired), waiting=waiting)

    def _min_interval(self, trigger: Trigger) -> float:
        if trigger.min_interval is not None:
            return trigger.min_interval
        return self.client.settings.trigger_min_interval

    def _consider(self, trigger: Trigger, now: int) -> Firing | str | None:
        key = trigger.pipeline_ref
        with self.meta.write() as conn:
            state = records.load_state(conn, trigger.name, now=now)
            running = records.running_run(conn, key)
        if running is not None:
            return f"a retrain of {key} is running (run {running.run_id or 'starting'})"
        manual = state.fire_requested_at is not None
        wait_ms = self._min_interval(trigger) * 1000
        if not manual and state.last_fired_at is not None \
                and now - state.last_fired_at < wait_ms:
            return (f"fired {(now - state.last_fired_at) / 1000:.0f} s ago; minimum interval "
                    f"{wait_ms / 1000:g} s")
        context = StoreContext(self.meta, state, now)
        firing = self._evaluate(trigger, state, context, manual)
        if context.updates and firing is None:
            with self.meta.write() as conn:
                records.merge_baseline(conn, trigger.name, context.updates)
        if firing is None:
            return None
        return self._fire(trigger, state, firing, context.updates, now)

    def _evaluate(self, trigger: Trigger, state: TriggerState, context: StoreContext,
                  manual: bool) -> Firing | None:
        try:
            if manual:
                when = datetime.fromtimestamp((state.fire_requested_at or 0) / 1000, tz=UTC)
                return Firing(trigger=trigger.name, manual=True,
                              reason=f"fired by hand by {state.fire_requested_by or 'someone'} "
                                     f"at {when:%Y-%m-%d %H:%M:%S} UTC",
                              data={"requested_by": state.fire_requested_by,
                                    "requested_at": state.fire_requested_at})
            firing = trigger.evaluate(context)
        except Exception as exc:  # one bad trigger must not stop the others
            message = str(exc) if isinstance(exc, LoopmlError) else \
                f"{type(exc).__name__}: {exc}"
            with self.meta.write() as conn:
                if records.set_error(conn, trigger.name, message):
                    self.event("trigger_error", conn=conn, trigger=trigger, reason=message)
            self.log(f"trigger {trigger.name}: {message}")
            return None
        if state.last_error is not None:
            with self.meta.write() as conn:
                records.set_error(conn, trigger.name, None)
        return firing

    def _fire(self, trigger: Trigger, state: TriggerState, firing: Firing,
              updates: Mapping[str, Any], now: int) -> Firing | str:
        code = self._code_snapshot(trigger)
        with self.meta.write() as conn:
            current = records.get_state(conn, trigger.name) or state  # a retrain recorded
            baseline = {**current.baseline, **updates, **(firing.baseline or {})}
            run = records.claim_firing(
                conn, state, pipeline=trigger.pipeline_ref, holder=self.holder,
                max_attempts=trigger.max_retries + 1, model=trigger.model or "", now=now,
                manual=firing.manual, last_alert_id=firing.last_alert_id, baseline=baseline)
            if run is None:
                return "another agent fired it first, or a retrain of its pipeline started"
            self.event("trigger_fired", conn=conn, trigger=trigger, reason=firing.reason,
                       data={**firing.data, "kind": trigger.kind, "retrain": run.id})
        self.log(f"fired {trigger.name}: {firing.reason}")
        self._start(run, trigger, code=code)
        return firing

    def _code_snapshot(self, firing: Trigger) -> dict[str, dict[str, Any]]:
        """The contents of the code each code-change trigger of the model watches, now
        (before the retrain runs): what the version it registers is built from."""
        snapshot: dict[str, dict[str, Any]] = {}
        for trigger in self.project.triggers:
            if not isinstance(trigger, CodeChangeTrigger) or not trigger.model \
                    or firing.model not in (None, trigger.model):
                continue
            try:
                files = source_hashes(trigger.watched())
            except (LoopmlError, OSError) as exc:  # its own evaluation reports the problem
                self.log(f"trigger {trigger.name}: its code cannot be read: {exc}")
                continue
            snapshot[trigger.name] = {"model": trigger.model, "files": files}
        return snapshot

    def _start(self, run: AutomationRun, trigger: Trigger, *, resume_from: str | None = None,
               attempt: int = 1, code: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        job = Retrain(self, run, trigger, resume_from=resume_from, attempt=attempt, code=code)
        self._jobs[run.id] = job
        job.start()

    # -- events ----------------------------------------------------------------------------
    def event(self, kind: str, *, conn: Any = None, trigger: Trigger | None = None,
               **fields: Any) -> None:
        if trigger is not None:
            fields.setdefault("trigger", trigger.name)
            fields.setdefault("pipeline", trigger.pipeline_ref)
            fields.setdefault("model", trigger.model or "")
            fields.setdefault("deployment", trigger.deployment or "")
        fields.setdefault("actor", self.holder)
        record_event(conn if conn is not None else self.meta, kind, **fields)

    # -- after a restart -------------------------------------------------------------------
    def _recover(self) -> None:
        """Retrains left running by an agent that is gone (after a restart, or another
        agent's crash): finish their bookkeeping, or resume them (a new attempt, from their
        interrupted pipeline run)."""
        with self.meta.read() as conn:
            running = records.list_runs(conn, status="running", limit=1000)
        for run in running:
            if not self.lease.held:
                return
            if run.id in self._jobs or run.holder == self.holder or not self._gone(run):
                continue
            with self.meta.write() as conn:
                if not records.take_over_run(conn, run, holder=self.holder):
                    continue
                taken = records.get_run(conn, run.id)
            self._resume(taken, gone=run.holder)

    def _gone(self, run: AutomationRun) -> bool:
        """Whether the agent driving ``run`` is gone (its process, on this host; elsewhere:
        its pipeline run ended, or it never recorded one within three lease lifetimes)."""
        if run.host == socket.gethostname() and run.pid is not None:
            if run.pid == os.getpid():
                return run.holder not in _LOCAL_HOLDERS
            try:
                os.kill(run.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        pipeline_run = self._pipeline_run(run.run_id)
        if pipeline_run is not None:
            return pipeline_run.status != "RUNNING"
        return now_ms() - run.started_at > 3 * self.lease.ttl * 1000

    def _pipeline_run(self, run_id: str | None) -> PipelineRun | None:
        if run_id is None:
            return None
        from loopml.pipelines import records as pipelines

        with self.meta.read() as conn:
            try:
                return pipelines.get_pipeline_run(conn, run_id)
            except NotFound:
                return None

    def _resume(self, run: AutomationRun, *, gone: str) -> None:
        trigger = self._trigger_of(run)
        previous = self._pipeline_run(run.run_id)
        if previous is not None and previous.status == "FINISHED" and trigger is not None:
            Retrain(self, run, trigger, attempt=run.attempt).conclude(previous)
            return
        what = f"pipeline run {run.run_id}" if run.run_id else "its pipeline run"
        reason = (f"the agent driving this retrain ({gone}) is gone; {what} was "
                  f"interrupted (attempt {run.attempt} of {run.max_attempts})")
        if trigger is None or run.attempt >= run.max_attempts:
            why = reason + ("; its trigger is no longer declared" if trigger is None else "")
            with self.meta.write() as conn:
                if records.finish_run(conn, run, holder=self.holder, succeeded=False,
                                      run_id=run.run_id, error=why):
                    self.event("run_failed", conn=conn, trigger=trigger, run_id=run.run_id,
                               reason=why, data={"attempt": run.attempt, "retrain": run.id})
            return
        self.event("run_failed", trigger=trigger, run_id=run.run_id,
                   reason=reason + "; resuming it", data={"attempt": run.attempt,
                                                          "retrain": run.id})
        resumable = previous is not None and previous.status != "FINISHED"
        self._start(run, trigger, resume_from=run.run_id if resumable else None,
                    attempt=run.attempt + 1)

    def _trigger_of(self, run: AutomationRun) -> Trigger | None:
        try:
            return self.project.trigger(run.trigger)
        except NotFound:
            return None

    # -- candidates ------------------------------------------------------------------------
    def _hand_candidates(self) -> None:
        with self.meta.read() as conn:
            waiting = records.waiting_candidates(conn)
        for run in reversed(waiting):  # oldest first
            if not self.lease.held or self._stop.is_set():
                return
            with self.meta.write() as conn:
                if not records.take_candidate(conn, run):
                    continue
            self._hand(run, attempt=records.candidate_failures(run) + 1)

    def _advance_rollouts(self) -> None:
        """Move unfinished rollouts on (shadow or canary periods that ended, a restart),
        whether the candidates go to the rollout policy or to a hook of the caller."""
        advance = _rollout_function("resume_rollouts")
        if advance is None:
            return
        try:
            advance(client=self.client)
        except Exception as exc:
            self.log(f"advancing the rollouts failed: {type(exc).__name__}: {exc}")

    def _hand(self, run: AutomationRun, *, attempt: int) -> None:
        from loopml.registry import records as registry
        from loopml.registry.refs import ModelRef

        trigger = self._trigger_of(run)
        hook = self.on_candidate or _rollout_function("on_candidate")
        unruled = self.on_candidate is None and trigger is not None and trigger.policy is None
        try:
            with self.meta.read() as conn:
                version = registry.resolve(conn, ModelRef(run.model, version=run.version))
        except LoopmlError as exc:  # e.g. deleted since: say so; nothing to retry for
            self._candidate_failed(run, trigger, attempt, exc, final=isinstance(exc, NotFound))
            return
        if attempt == 1:
            where = "the rollout policy" if hook is not None else "nobody"
            reason = (f"{run.model} v{run.version} from pipeline run {run.run_id} is a "
                      f"candidate, handed to {where}")
            if hook is None:
                reason += " (loopml.automation.rollout is not installed); nothing was promoted"
            elif trigger is None:
                reason += (f", but its trigger {run.trigger!r} is no longer declared in the "
                           "project; nothing was promoted")
            elif unruled:
                reason = (f"{run.model} v{run.version} from pipeline run {run.run_id} is a "
                          f"candidate, but trigger {run.trigger!r} declares no promotion "
                          "policy, so nothing was promoted; declare one (policy: {gate: "
                          "{metric: auc}, rollout: {mode: direct}} in loopml.yaml) to gate "
                          "and roll out its versions")
            self.event("candidate", trigger=trigger, model=run.model, version=run.version,
                       run_id=run.run_id, reason=reason,
                       data={"retrain": run.id, "metrics": version.metrics})
        if hook is None or trigger is None or unruled:
            return
        try:
            _call_hook(hook, version, trigger, self.client)
        except Exception as exc:
            self._candidate_failed(run, trigger, attempt, exc)

    def _candidate_failed(self, run: AutomationRun, trigger: Trigger | None, attempt: int,
                          exc: Exception, *, final: bool = False) -> None:
        """Record why handing a candidate failed, and give it back to be handed again on
        the next evaluation (up to :data:`CANDIDATE_ATTEMPTS` attempts)."""
        message = str(exc) if isinstance(exc, LoopmlError) else f"{type(exc).__name__}: {exc}"
        last = final or attempt >= CANDIDATE_ATTEMPTS
        then = (f"giving up: nothing was promoted; hand it again with loopml.automation."
                f"on_candidate('{run.model}/{run.version}', '{run.trigger}')" if last
                else "handing it again on the next evaluation")
        reason = (f"the rollout policy failed on {run.model} v{run.version} (attempt "
                  f"{attempt} of {CANDIDATE_ATTEMPTS}): {message}; {then}")
        self.log(reason)
        try:
            with self.meta.write() as conn:
                records.return_candidate(conn, run, failures=attempt, give_up=last)
                self.event("candidate_failed", conn=conn, trigger=trigger, model=run.model,
                           version=run.version, run_id=run.run_id, reason=reason,
                           data={"retrain": run.id, "error": message, "attempt": attempt,
                                 "max_attempts": CANDIDATE_ATTEMPTS, "gave_up": last})
        except LoopmlError as error:  # the database itself is away: say so at least
            self.log(f"the failure could not be recorded ({error}); {run.model} "
                     f"v{run.version} stays handed")


def _call_hook(hook: Callable[..., Any], version: ModelVersion, trigger: Trigger,
               client: Client) -> None:
    """``hook(version, trigger)``, with ``client=`` when the hook takes it."""
    try:
        parameters = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    accepts = "client" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if accepts:
        hook(version, trigger, client=client)
    else:
        hook(version, trigger)
