"""Errors users see. Each names the node, layer, block or field at fault."""


class GraphflowError(Exception):
    """Base class of graphflow's own errors."""


class SpecError(GraphflowError, ValueError):
    """A spec (graph, learner, experiment) is malformed: wrong field, unknown kind, bad value."""


class GraphError(GraphflowError, ValueError):
    """A graph is structurally invalid: cycle, dangling or duplicate node, fan-in mismatch, ..."""


class GraphWarning(UserWarning):
    """A graph is valid but probably not what was meant (a cross-entropy loss on no softmax)."""


class DataError(GraphflowError, ValueError):
    """Data handed to the engine or the meta-gradient has the wrong shape, is empty, or names an unknown block."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file or folder (MNIST IDX files, ...) is missing."""
