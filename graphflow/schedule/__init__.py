"""Named passes from an explicit node graph to batched stages (plain, printable data)."""

from graphflow.schedule.passes import Schedule, Stage, schedule

__all__ = ["Schedule", "Stage", "schedule"]
