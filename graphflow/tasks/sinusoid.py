"""The sinusoid regression task family of the MPLP paper.

A task is ``y = A * sin(x + phase)`` with ``A ~ U(0.1, 0.5)``, ``phase ~ U(0, pi)`` and inputs
``x ~ U(-5, 5)``; a learner is scored on 100 evenly spaced points in ``[-5, 5]``. This module only
makes data (float32 numpy arrays); it knows nothing about graphs, learners or engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AMPLITUDE_RANGE = (0.1, 0.5)
PHASE_RANGE = (0.0, float(np.pi))
X_RANGE = (-5.0, 5.0)

__all__ = [
    "AMPLITUDE_RANGE",
    "PHASE_RANGE",
    "X_RANGE",
    "SinusoidTask",
    "sample_sinusoid_tasks",
    "sinusoid_batches",
    "sinusoid_eval_points",
    "sample_sinusoid_meta_batch",
]


def _sinusoid(x: np.ndarray, amplitude, phase) -> np.ndarray:
    """``amplitude * sin(x + phase)`` in float32; the parameters broadcast against ``x``."""
    x = np.asarray(x, dtype=np.float32)
    return (amplitude * np.sin(x + phase)).astype(np.float32)


def _draw_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(*X_RANGE, size=shape).astype(np.float32)


def _draw_task_parameters(rng: np.random.Generator, n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
    amplitude = rng.uniform(*AMPLITUDE_RANGE, size=n_tasks)
    phase = rng.uniform(*PHASE_RANGE, size=n_tasks)
    return amplitude, phase


@dataclass(frozen=True)
class SinusoidTask:
    """One sinusoid ``y = amplitude * sin(x + phase)``.

    Parameters
    ----------
    amplitude : float
        Amplitude ``A`` of the wave.
    phase : float
        Phase shift in radians.

    Examples
    --------
    >>> task = SinusoidTask(amplitude=0.5, phase=0.0)
    >>> task(np.array([[np.pi / 2]])).round(6)
    array([[0.5]], dtype=float32)
    """

    amplitude: float
    phase: float

    def __call__(self, x) -> np.ndarray:
        """Evaluate the task at ``x`` (any shape); returns float32 of the same shape."""
        return _sinusoid(x, self.amplitude, self.phase)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` points with ``x ~ U(-5, 5)``.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        n : int
            Number of points.

        Returns
        -------
        x, y : numpy.ndarray
            float32 arrays of shape ``[n, 1]``.

        Examples
        --------
        >>> x, y = SinusoidTask(0.3, 1.0).sample(np.random.default_rng(0), 4)
        >>> x.shape, y.dtype
        ((4, 1), dtype('float32'))
        """
        x = _draw_inputs(rng, (n, 1))
        return x, self(x)


def sample_sinusoid_tasks(rng: np.random.Generator, n_tasks: int) -> list[SinusoidTask]:
    """Draw tasks with ``amplitude ~ U(0.1, 0.5)`` and ``phase ~ U(0, pi)``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_tasks : int
        Number of tasks.

    Returns
    -------
    list of SinusoidTask

    Examples
    --------
    >>> tasks = sample_sinusoid_tasks(np.random.default_rng(0), 3)
    >>> len(tasks), all(0.1 <= t.amplitude <= 0.5 for t in tasks)
    (3, True)
    """
    amplitude, phase = _draw_task_parameters(rng, n_tasks)
    return [SinusoidTask(float(a), float(p)) for a, p in zip(amplitude, phase)]


def sinusoid_batches(
    task: SinusoidTask, rng: np.random.Generator, steps: int, shots: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inner-loop data: ``steps`` fresh batches of ``shots`` points each.

    Parameters
    ----------
    task : SinusoidTask
        The task to sample from.
    rng : numpy.random.Generator
        Source of randomness.
    steps : int
        Number of inner-loop steps (one batch per step).
    shots : int
        Points per batch.

    Returns
    -------
    x, y : numpy.ndarray
        float32 arrays of shape ``[steps, shots, 1]``.

    Examples
    --------
    >>> x, y = sinusoid_batches(SinusoidTask(0.2, 0.5), np.random.default_rng(0), 5, 10)
    >>> x.shape, y.shape
    ((5, 10, 1), (5, 10, 1))
    """
    x = _draw_inputs(rng, (steps, shots, 1))
    return x, task(x)


def sinusoid_eval_points(task: SinusoidTask, n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation grid: ``x = np.linspace(-5, 5, n)`` and the task's values there.

    Parameters
    ----------
    task : SinusoidTask
        The task to evaluate.
    n : int, default 100
        Number of evenly spaced points, both ends included.

    Returns
    -------
    x, y : numpy.ndarray
        float32 arrays of shape ``[n, 1]``.

    Examples
    --------
    >>> x, y = sinusoid_eval_points(SinusoidTask(0.1, 0.0), n=3)
    >>> x.ravel()
    array([-5.,  0.,  5.], dtype=float32)
    """
    x = np.linspace(*X_RANGE, n, dtype=np.float32).reshape(n, 1)
    return x, task(x)


def sample_sinusoid_meta_batch(
    rng: np.random.Generator, n_tasks: int, steps: int, shots: int, heldout: int
) -> dict[str, np.ndarray]:
    """An outer (meta-training) batch of ``n_tasks`` tasks, drawn in one vectorized go.

    Held-out points are drawn from ``U(-5, 5)`` like the inner-loop points. ``y`` and ``ye`` are
    computed from the returned float32 ``amplitude`` and ``phase``, so they can be recomputed
    exactly from them.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_tasks : int
        Number of tasks ``T``.
    steps : int
        Inner-loop steps per task.
    shots : int
        Points per inner-loop batch.
    heldout : int
        Held-out points per task, for the meta-loss.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 arrays ``x``, ``y`` ``[T, steps, shots, 1]``; ``xe``, ``ye`` ``[T, heldout, 1]``;
        ``amplitude``, ``phase`` ``[T]``.

    Examples
    --------
    >>> batch = sample_sinusoid_meta_batch(np.random.default_rng(0), 4, 5, 10, heldout=10)
    >>> batch["x"].shape, batch["xe"].shape, batch["phase"].shape
    ((4, 5, 10, 1), (4, 10, 1), (4,))
    """
    amplitude, phase = (p.astype(np.float32) for p in _draw_task_parameters(rng, n_tasks))
    x = _draw_inputs(rng, (n_tasks, steps, shots, 1))
    xe = _draw_inputs(rng, (n_tasks, heldout, 1))

    def per_task_wave(points: np.ndarray) -> np.ndarray:
        task_axis = (n_tasks,) + (1,) * (points.ndim - 1)
        return _sinusoid(points, amplitude.reshape(task_axis), phase.reshape(task_axis))

    return {
        "x": x,
        "y": per_task_wave(x),
        "xe": xe,
        "ye": per_task_wave(xe),
        "amplitude": amplitude,
        "phase": phase,
    }
