"""The learners f and g (stateless MLPs or a stateful GRU-like cell), their normalization, and the
:class:`Protocol` that holds every learner group's parameters for a graph."""

from graphflow.learners.protocol import ParamKey, Protocol, SlotLayout, slot_layout

__all__ = ["ParamKey", "Protocol", "SlotLayout", "slot_layout"]
