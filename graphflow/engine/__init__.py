"""Runs a schedule: the batched forward pass, message pass and updates of the inner loop."""

from graphflow.engine.inner import Engine, NetState, StepResult

__all__ = ["Engine", "NetState", "StepResult"]
