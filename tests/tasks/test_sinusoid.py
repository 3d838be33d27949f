import numpy as np
import pytest

from graphflow.tasks.sinusoid import (
    SinusoidTask,
    sample_sinusoid_meta_batch,
    sample_sinusoid_tasks,
    sinusoid_batches,
    sinusoid_eval_points,
)


def test_task_is_a_shifted_scaled_sine():
    task = SinusoidTask(amplitude=0.4, phase=1.2)
    x = np.linspace(-5, 5, 7, dtype=np.float32)
    y = task(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 0.4 * np.sin(x.astype(np.float64) + 1.2), atol=1e-6)


def test_task_sample_shapes_and_range():
    x, y = SinusoidTask(0.3, 0.5).sample(np.random.default_rng(0), 50)
    assert x.shape == y.shape == (50, 1)
    assert x.dtype == y.dtype == np.float32
    assert np.all((x >= -5) & (x <= 5))
    np.testing.assert_array_equal(y, SinusoidTask(0.3, 0.5)(x))


def test_task_parameters_follow_the_paper_distributions():
    tasks = sample_sinusoid_tasks(np.random.default_rng(0), 20_000)
    amplitude = np.array([t.amplitude for t in tasks])
    phase = np.array([t.phase for t in tasks])
    assert amplitude.min() >= 0.1 and amplitude.max() <= 0.5
    assert phase.min() >= 0.0 and phase.max() <= np.pi
    # Uniform means and standard deviations, to within a few standard errors.
    assert amplitude.mean() == pytest.approx(0.3, abs=0.003)
    assert amplitude.std() == pytest.approx(0.4 / np.sqrt(12), abs=0.003)
    assert phase.mean() == pytest.approx(np.pi / 2, abs=0.03)
    assert phase.std() == pytest.approx(np.pi / np.sqrt(12), abs=0.03)


def test_batches_shapes_values_and_input_distribution():
    task = SinusoidTask(0.25, 2.0)
    x, y = sinusoid_batches(task, np.random.default_rng(1), steps=5, shots=10)
    assert x.shape == y.shape == (5, 10, 1)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(y, task(x))
    big_x, _ = sinusoid_batches(task, np.random.default_rng(2), steps=100, shots=200)
    assert big_x.min() >= -5 and big_x.max() <= 5
    assert big_x.mean() == pytest.approx(0.0, abs=0.05)
    assert big_x.std() == pytest.approx(10 / np.sqrt(12), abs=0.05)


def test_seeded_rng_is_deterministic():
    def draw(seed):
        rng = np.random.default_rng(seed)
        tasks = sample_sinusoid_tasks(rng, 3)
        return tasks, sinusoid_batches(tasks[0], rng, 5, 10)

    (tasks_a, (x_a, y_a)), (tasks_b, (x_b, y_b)) = draw(7), draw(7)
    assert tasks_a == tasks_b
    np.testing.assert_array_equal(x_a, x_b)
    np.testing.assert_array_equal(y_a, y_b)
    assert draw(8)[0] != tasks_a


def test_eval_points_are_an_even_grid():
    task = SinusoidTask(0.2, 0.7)
    x, y = sinusoid_eval_points(task)
    assert x.shape == y.shape == (100, 1)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], np.linspace(-5, 5, 100, dtype=np.float32))
    np.testing.assert_array_equal(y, task(x))
    assert sinusoid_eval_points(task, n=11)[0][5, 0] == 0.0


def test_meta_batch_shapes_dtypes_and_consistency():
    batch = sample_sinusoid_meta_batch(np.random.default_rng(3), 4, steps=5, shots=10, heldout=7)
    expected_shapes = {
        "x": (4, 5, 10, 1),
        "y": (4, 5, 10, 1),
        "xe": (4, 7, 1),
        "ye": (4, 7, 1),
        "amplitude": (4,),
        "phase": (4,),
    }
    assert {key: value.shape for key, value in batch.items()} == expected_shapes
    assert all(value.dtype == np.float32 for value in batch.values())
    for t in range(4):
        task = SinusoidTask(float(batch["amplitude"][t]), float(batch["phase"][t]))
        np.testing.assert_allclose(batch["y"][t], task(batch["x"][t]), atol=1e-7)
        np.testing.assert_allclose(batch["ye"][t], task(batch["xe"][t]), atol=1e-7)
    assert np.all((batch["xe"] >= -5) & (batch["xe"] <= 5))


def test_meta_batch_is_deterministic_and_its_tasks_vary():
    first = sample_sinusoid_meta_batch(np.random.default_rng(4), 64, 2, 3, 4)
    again = sample_sinusoid_meta_batch(np.random.default_rng(4), 64, 2, 3, 4)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert np.all((first["amplitude"] >= 0.1) & (first["amplitude"] <= 0.5))
    assert np.all((first["phase"] >= 0) & (first["phase"] <= np.float32(np.pi)))
    assert len(np.unique(first["amplitude"])) == 64
