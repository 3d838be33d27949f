"""Errors users see. Each names the node, layer, block or field at fault."""


class GraphflowError(Exception):
    """Base class of graphflow's own errors."""


class SpecError(GraphflowError, ValueError):
    """A spec (graph, learner, experiment) is malformed: wrong field, unknown kind, bad value."""


class GraphError(GraphflowError, ValueError):
    """A graph is structurally invalid: cycle, dangling or duplicate node, fan-in mismatch, ..."""
