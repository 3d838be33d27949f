"""Reverse-mode differentiation of the engine's own array code (for meta-gradients)."""

from graphflow.autodiff.tape import Tape, Var, grad, traced_backend

__all__ = ["Tape", "Var", "grad", "traced_backend"]
