"""Automation: triggers that start pipelines, the gate and rollout that promote or reject what
they produce, the agent that runs the loop, the audit timeline, and the human review queue.

::

    loopml agent                      # triggers in loopml.yaml → retrain → gate → rollout
    loopml events --since 1d          # trigger fired → run → gate → canary → promoted

``triggers``, ``schedule`` and ``project`` declare when to retrain; ``agent`` and ``lease``
run the loop (one leader among several agents); ``gate`` and ``rollout`` decide what a new
model version becomes; ``events`` is the timeline of every decision with its numbers;
``review`` turns a person's labels into data and feedback. Names are imported on first
access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["Agent", "CodeChangeTrigger", "CronSchedule", "DecayTrigger", "DriftTrigger", "Event",
           "GatePolicy", "GateResult", "ManualTrigger", "NewDataTrigger", "Project",
           "ReviewQueue", "Rollout", "RolloutPolicy", "ScheduleTrigger", "Trigger",
           "evaluate_gate", "fire_trigger", "list_events", "load_project", "on_candidate",
           "record_event", "resume_rollouts", "start_rollout"]

_EXPORTS = {
    **{name: "loopml.automation.triggers" for name in (
        "CodeChangeTrigger", "DecayTrigger", "DriftTrigger", "ManualTrigger", "NewDataTrigger",
        "ScheduleTrigger", "Trigger")},
    **{name: "loopml.automation.rollout" for name in (
        "Rollout", "RolloutPolicy", "on_candidate", "resume_rollouts", "start_rollout")},
    **{name: "loopml.automation.gate" for name in ("GatePolicy", "GateResult", "evaluate_gate")},
    **{name: "loopml.automation.events" for name in ("Event", "list_events", "record_event")},
    **{name: "loopml.automation.agent" for name in ("Agent", "fire_trigger")},
    **{name: "loopml.automation.project" for name in ("Project", "load_project")},
    "CronSchedule": "loopml.automation.schedule",
    "ReviewQueue": "loopml.automation.review",
}

if TYPE_CHECKING:
    from loopml.automation.agent import Agent, fire_trigger
    from loopml.automation.events import Event, list_events, record_event
    from loopml.automation.gate import GatePolicy, GateResult, evaluate_gate
    from loopml.automation.project import Project, load_project
    from loopml.automation.review import ReviewQueue
    from loopml.automation.rollout import (
        Rollout,
        RolloutPolicy,
        on_candidate,
        resume_rollouts,
        start_rollout,
    )
    from loopml.automation.schedule import CronSchedule
    from loopml.automation.triggers import (
        CodeChangeTrigger,
        DecayTrigger,
        DriftTrigger,
        ManualTrigger,
        NewDataTrigger,
        ScheduleTrigger,
        Trigger,
    )


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
