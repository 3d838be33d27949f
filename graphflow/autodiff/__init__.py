"""Reverse-mode differentiation of the engine's own array code (for meta-gradients)."""

from graphflow.autodiff.tape import Tape, Var, grad, record_stage, traced_backend, unbroadcast

__all__ = ["Tape", "Var", "grad", "record_stage", "traced_backend", "unbroadcast"]
