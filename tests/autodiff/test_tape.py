"""Every primitive of the tape against central finite differences (float64).

Each check differentiates ``sum(cot * op(inputs))`` with a random cotangent ``cot``, so every
entry of the op's Jacobian takes part. Inputs of kinked functions (abs, maximum, clip, max) are
drawn at least 0.1 away from their kinks: a central difference with eps = 1e-6 cannot cross a
kink from there, so tape and differences must agree to rounding. Exactly at a kink the tape
takes a documented subgradient; those points get their own tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphflow.autodiff import Tape, Var, grad, traced_backend
from graphflow.autodiff.gradcheck import check_gradients, tape_gradient
from graphflow.backend import get_backend

BE = traced_backend(get_backend("numpy", np.float64))
xp = BE.xp


def rand(rng, *shape, away_from=None, margin=0.1):
    """Normal draws, pushed at least ``margin`` away from the values in ``away_from``."""
    a = rng.normal(size=shape)
    for kink in away_from or ():
        near = np.abs(a - kink) < margin
        a = np.where(near, kink + np.sign(a - kink + 1e-300) * margin * (1 + rng.random(shape)), a)
    return a


def check(fn, inputs, seed=0, **kw):
    """Check d sum(cot * fn(inputs)) / d inputs against central differences."""
    rng = np.random.default_rng(seed)
    plain = fn({k: np.asarray(v) for k, v in inputs.items()})
    cot = rng.normal(size=np.shape(plain))
    result = check_gradients(lambda v: xp.sum(fn(v) * cot), inputs, BE, **kw)
    result.assert_ok()
    return result


# ----------------------------------------------------------------------------------------------
# arithmetic, with broadcasting on either side

SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)), ((3, 4), ())]
OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_arithmetic_broadcasts_both_ways(op, shapes):
    rng = np.random.default_rng(1)
    a, b = rand(rng, *shapes[0]), rand(rng, *shapes[1])
    if op == "div":
        b = np.sign(b) * (0.5 + np.abs(b))  # keep the divisor away from 0
    check(lambda v: OPS[op](v["a"], v["b"]), {"a": a, "b": b})


@pytest.mark.parametrize("op", list(OPS))
def test_reflected_arithmetic_with_constants_on_the_left(op):
    rng = np.random.default_rng(2)
    const = 1.0 + rng.random((2, 3))
    x = 0.5 + rng.random((3,))
    check(lambda v: OPS[op](const, v["x"]), {"x": x})  # numpy array on the left: __array_ufunc__ = None
    check(lambda v: OPS[op](1.5, v["x"]), {"x": x})
    check(lambda v: OPS[op](np.float64(-0.7), v["x"]), {"x": x})


def test_negation_and_one_var_used_many_times():
    rng = np.random.default_rng(3)
    check(lambda v: -v["x"] * v["x"] + v["x"] / (2.0 + v["x"] * v["x"]), {"x": rand(rng, 5)})


# ----------------------------------------------------------------------------------------------
# matmul: every rank combination (the engine uses [T,B,N]@[T,N,M] and [...,F]@[F,H])

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),           # plain matrices
    ((2, 3, 4), (2, 4, 5)),     # per task: inputs [T, B, N] @ weights [T, N, M]
    ((2, 3, 4), (1, 4, 5)),     # a batch axis broadcast on the right
    ((1, 3, 4), (2, 4, 5)),     # ... and on the left
    ((2, 3, 1, 2, 4), (4, 5)),  # learner streams [T, B, *nodes, F] @ one kernel [F, H]
    ((3, 4), (2, 4, 5)),        # one matrix against a stack
    ((4,), (4, 5)),             # vector @ matrix
    ((4,), (2, 4, 5)),          # vector @ stack of matrices
    ((3, 4), (4,)),             # matrix @ vector
    ((2, 3, 4), (4,)),          # stack @ vector
    ((4,), (4,)),               # dot product
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_of_every_rank_combination(shapes):
    rng = np.random.default_rng(4)
    a, b = rand(rng, *shapes[0]), rand(rng, *shapes[1])
    check(lambda v: v["a"] @ v["b"], {"a": a, "b": b})
    check(lambda v: a @ v["b"], {"b": b})  # constant on the left: __rmatmul__
    check(lambda v: v["a"] @ b, {"a": a})


# ----------------------------------------------------------------------------------------------
# indexing and shapes

BASIC_INDICES = [
    (slice(1, 3),), (0,), (-1,), (Ellipsis, 0), (slice(None), None), (Ellipsis, slice(0, 1)),
    (slice(None, None, -1),), (1, slice(None), 2), (None, Ellipsis, None),
]


@pytest.mark.parametrize("idx", BASIC_INDICES, ids=str)
def test_basic_indexing(idx):
    check(lambda v: v["x"][idx], {"x": rand(np.random.default_rng(5), 3, 4, 5)})


def test_fancy_gathers_accumulate_repeated_indices():
    """The engine's gathers (sparse weights' inputs, replication by edge, bias permutations) read
    one element many times; the vector-Jacobian product must add, not overwrite."""
    rng = np.random.default_rng(6)
    x = rand(rng, 2, 3, 4)
    rep = np.array([0, 3, 3, 1, 0, 3])
    check(lambda v: v["x"][..., rep], {"x": x})                 # values[...][..., src_idx]
    check(lambda v: v["x"][:, :, rep], {"x": x})                # incoming[:, :, dst_idx]
    check(lambda v: v["x"][np.array([1, 1, 0])], {"x": x})      # leading axis
    check(lambda v: v["x"][..., np.array([2, 0, 2]), :], {"x": x})  # current[..., perm, :]
    check(lambda v: v["x"][np.array([0, 1, 1]), :, np.array([3, 3, 3])], {"x": x})  # paired arrays
    check(lambda v: v["x"][..., np.array([[0, 1], [1, 1]])], {"x": x})  # a 2-D index array
    _, g = tape_gradient(lambda v: v["x"][..., rep].sum(), {"x": x}, BE)
    assert g["x"][0, 0].tolist() == [2.0, 1.0, 0.0, 3.0]


def test_reshape_moveaxis_broadcast_to_concatenate():
    rng = np.random.default_rng(7)
    x, y = rand(rng, 2, 3, 4), rand(rng, 2, 1, 4)
    check(lambda v: v["x"].reshape(6, 4), {"x": x})
    check(lambda v: v["x"].reshape((4, 6)), {"x": x})
    check(lambda v: xp.moveaxis(v["x"], 2, 0), {"x": x})
    check(lambda v: xp.moveaxis(v["x"], -1, 1), {"x": x})
    check(lambda v: xp.broadcast_to(v["y"], (5, 2, 3, 4)), {"y": y})
    check(lambda v: xp.concatenate([v["x"], v["y"]], axis=1), {"x": x, "y": y})
    check(lambda v: xp.concatenate([v["y"], np.ones((2, 1, 2)), v["y"]], axis=-1), {"y": y})  # a Var twice


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (-2, -1)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_mean_over_any_axes(axis, keepdims):
    x = rand(np.random.default_rng(8), 2, 3, 4)
    check(lambda v: v["x"].sum(axis=axis, keepdims=keepdims), {"x": x})
    check(lambda v: xp.sum(v["x"], axis=axis, keepdims=keepdims), {"x": x})
    check(lambda v: v["x"].mean(axis=axis, keepdims=keepdims), {"x": x})


# ----------------------------------------------------------------------------------------------
# elementwise functions


def test_smooth_functions():
    rng = np.random.default_rng(9)
    x = rand(rng, 3, 4)
    check(lambda v: xp.tanh(v["x"]), {"x": x})
    check(lambda v: xp.exp(v["x"]), {"x": x})
    check(lambda v: xp.log(v["x"]), {"x": 0.1 + np.abs(x)})


def test_kinked_functions_away_from_their_kinks():
    rng = np.random.default_rng(10)
    x = rand(rng, 3, 4, away_from=[0.0])
    y = x + np.where(rng.random(x.shape) < 0.5, -1, 1) * (0.1 + rng.random(x.shape))  # |x - y| >= 0.1
    check(lambda v: xp.abs(v["x"]), {"x": x})
    check(lambda v: xp.maximum(v["x"], 0), {"x": x})             # relu
    check(lambda v: xp.maximum(0.0, v["x"]), {"x": x})
    check(lambda v: xp.maximum(v["x"], v["y"]), {"x": x, "y": y})
    check(lambda v: xp.maximum(v["x"], y[0]), {"x": x})          # broadcast constant
    z = rand(rng, 3, 4, away_from=[-0.5, 0.5])
    r = check(lambda v: xp.clip(v["z"], -0.5, 0.5), {"z": z})
    assert np.any(r.numeric == 0) and np.any(r.numeric != 0)     # both sides of the clip were seen


def test_kinks_take_the_documented_subgradient():
    """At a kink: abs has slope 0, maximum passes the gradient to its first argument, clip is
    open (slope 1 at its bounds). The engine never relies on these values for learning."""
    x = np.array([0.0, 1.0, -1.0])
    assert tape_gradient(lambda v: xp.abs(v["x"]).sum(), {"x": x}, BE)[1]["x"].tolist() == [0.0, 1.0, -1.0]
    _, g = tape_gradient(lambda v: xp.maximum(v["a"], v["b"]).sum(), {"a": x, "b": x}, BE)
    assert g["a"].tolist() == [1.0, 1.0, 1.0] and g["b"].tolist() == [0.0, 0.0, 0.0]
    _, g = tape_gradient(lambda v: xp.clip(v["x"], -1.0, 0.0).sum(), {"x": x}, BE)
    assert g["x"].tolist() == [1.0, 0.0, 1.0]


def test_where_with_broadcast_condition_and_constants():
    rng = np.random.default_rng(11)
    a, b = rand(rng, 3, 4), rand(rng, 1, 4)
    cond = rng.random((3, 4)) < 0.5
    check(lambda v: xp.where(cond, v["a"], v["b"]), {"a": a, "b": b})
    check(lambda v: xp.where(cond[0], v["a"], 0.0), {"a": a})     # the engine's mixed activations
    check(lambda v: xp.where(cond, 2.0, v["b"]), {"b": b})


def test_step_is_a_constant():
    """``astype`` and comparisons leave the tape: the step activation has zero gradient."""
    x = np.array([-0.5, 0.3, 2.0])
    value, g = tape_gradient(lambda v: ((v["x"] > 0).astype(np.float64) * 3.0).sum(), {"x": x}, BE)
    assert value == 6.0 and g["x"].tolist() == [0.0, 0.0, 0.0]
    with Tape(BE) as tape:
        w = tape.var(x)
        assert not isinstance(w > 0, Var) and not isinstance(w.astype(np.float32), Var)
        assert (w <= 0.3).tolist() == [True, True, False] and (w >= 0.3).tolist() == [False, True, True]


# ----------------------------------------------------------------------------------------------
# max, with and without ties


@pytest.mark.parametrize("axis,keepdims", [(None, False), (-1, True), (-1, False), (0, False), ((0, 1), False)])
def test_max_without_ties(axis, keepdims):
    x = rand(np.random.default_rng(12), 3, 4)  # continuous draws: no ties
    check(lambda v: xp.max(v["x"], axis=axis, keepdims=keepdims), {"x": x})


def test_max_with_a_two_way_tie_matches_central_differences():
    """At a two-way tie, moving one tied entry up raises the max (slope 1) and moving it down does
    not (slope 0): the central difference is 1/2, which is exactly the tape's even split."""
    x = np.array([[0.3, 1.0, 1.0, -2.0], [0.5, 0.1, 0.5, 0.2]])
    check(lambda v: xp.max(v["x"], axis=-1), {"x": x})


def test_max_with_a_three_way_tie_splits_evenly_and_is_exact_along_the_tie():
    """With three or more tied entries no single-entry difference is 1/k, but moving all tied
    entries together is a smooth direction; there the tape's directional derivative must be exact."""
    x = np.array([2.0, 0.0, 2.0, 2.0])
    _, g = tape_gradient(lambda v: xp.max(v["x"]), {"x": x}, BE)
    np.testing.assert_allclose(g["x"], [1 / 3, 0, 1 / 3, 1 / 3])
    tied = (x == 2.0).astype(float)
    direction = tied * np.array([0.7, 0.0, 0.7, 0.7]) + np.array([0.0, 0.4, 0.0, 0.0])
    eps = 1e-6
    f = lambda t: float(np.max(x + t * direction))  # noqa: E731
    assert abs(g["x"] @ direction - (f(eps) - f(-eps)) / (2 * eps)) < 1e-9
    # the softmax's shift: z - max(z) is invariant along the all-ones direction, ties or not
    check(lambda v: v["x"] - xp.max(v["x"], axis=-1, keepdims=True), {"x": np.array([[1.0, 1.0, 0.2]])},
          entries=None)


# ----------------------------------------------------------------------------------------------
# the tape itself


def test_grad_accumulates_fan_out_and_ignores_unused_leaves():
    with Tape(BE) as tape:
        a = tape.var(np.array([2.0, 3.0]))
        unused = tape.var(np.array([1.0]))
        y = (a * a + a).sum()
    ga, gu = grad(tape, y, [a, unused])
    assert ga.tolist() == [5.0, 7.0] and gu.tolist() == [0.0]


def test_grad_of_several_outputs_with_seeds_is_the_sum_of_their_vjps():
    rng = np.random.default_rng(13)
    x0 = rand(rng, 4)
    seed_y = rng.normal(size=4)
    with Tape(BE) as tape:
        x = tape.var(x0)
        y = xp.tanh(x) * 2.0
        s = (y * x).sum()
    (both,) = grad(tape, [s, y], [x], seed=[None, seed_y])
    (gs,) = grad(tape, s, [x])
    (gy,) = grad(tape, y, [x], seed=seed_y)
    np.testing.assert_allclose(both, gs + gy, rtol=1e-14)
    (twice,) = grad(tape, [s, s], [x])  # the same output twice: its seeds add
    np.testing.assert_allclose(twice, 2 * gs, rtol=1e-14)
    with pytest.raises(ValueError, match="2 outputs but 1 seeds"):
        grad(tape, [s, y], [x], seed=[None])


def test_a_leaf_can_be_an_output():
    with Tape(BE) as tape:
        x = tape.var(np.array([1.0, 2.0]))
        y = (x * 3.0).sum()
    (g,) = grad(tape, [y, x], [x], seed=[None, np.array([10.0, 20.0])])
    assert g.tolist() == [13.0, 23.0]


def test_float64_stays_float64_and_the_tape_is_closed_after_use():
    with Tape(BE) as tape:
        x = tape.var(np.array([0.5], np.float64))
        y = xp.exp(x * 2.0).sum()
    assert y.dtype == np.float64 and grad(tape, y, [x])[0].dtype == np.float64
    n = len(tape.nodes)
    _ = x * 2.0  # outside the tape: recorded nowhere
    assert len(tape.nodes) == n


def test_tapes_in_threads_record_independently():
    """Meta-gradients of task shards run in threads: each thread's operations go on its own tape."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(14)
    inputs = [rand(rng, 64, 64) for _ in range(4)]

    def gradient(x0):
        with Tape(BE) as tape:
            x = tape.var(x0)
            y = x
            for _ in range(30):  # long enough for the threads to interleave
                y = xp.tanh(y @ x0) * 0.5 + y
            out = y.sum()
        return grad(tape, out, [x])[0]

    sequential = [gradient(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(gradient, inputs))
    for a, b in zip(sequential, threaded):
        np.testing.assert_array_equal(a, b)
