"""A small tape-based reverse-mode autodiff over the backend's arrays.

The engine is written with array operators and a few ``xp`` functions. Running it on a
:func:`traced_backend` makes every operation on a :class:`Var` record its vector-Jacobian product
on a :class:`Tape`; :func:`grad` then runs the tape backwards. Arrays stay numpy or CuPy arrays
of the same backend (the tape never leaves the device), float32 for training and float64 for
finite-difference checks.

>>> import numpy as np
>>> from graphflow.backend import get_backend
>>> be = traced_backend(get_backend("numpy", np.float64))
>>> with Tape(be) as tape:
...     w = tape.var(np.array([1.0, 2.0]))
...     y = be.xp.sum(be.xp.tanh(w) * w)
>>> np.round(grad(tape, y, [w])[0], 6).tolist()
[1.181568, 1.105329]
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

import numpy as np

class _ActiveTapes(threading.local):
    """The tapes recording in this thread (tapes in other threads record independently)."""

    def __init__(self):
        self.stack: list["Tape"] = []


_LOCAL = _ActiveTapes()
_ids = itertools.count()


class Tape:
    """Records the operations on :class:`Var` objects created inside ``with Tape(be):``."""

    def __init__(self, backend=None):
        from graphflow.backend import get_backend

        self.be = get_backend(backend or "numpy")
        self.nodes: list[Var] = []

    def __enter__(self) -> "Tape":
        _LOCAL.stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _LOCAL.stack.remove(self)

    def var(self, value) -> "Var":
        """A leaf to differentiate with respect to."""
        v = Var(value, ())
        self.nodes.append(v)
        return v


class Var:
    """An array that remembers how it was computed."""

    __array_ufunc__ = None  # numpy defers to our reflected operators
    __array_priority__ = 1000

    def __init__(self, value, parents: tuple):
        self.value = value
        self.parents = parents  # ((Var, vjp: cotangent -> contribution), ...)
        self.id = next(_ids)
        if parents and _LOCAL.stack:
            _LOCAL.stack[-1].nodes.append(self)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return len(self.value)

    def __array__(self, *args, **kwargs):
        # Without this numpy would wrap a Var in a 0-d object array (np.stack, np.asarray, ...),
        # silently dropping it from the tape.
        raise TypeError("a traced Var cannot become a plain array: use the traced backend's xp "
                        "(xp.stack, xp.concatenate, ...) so that the operation is recorded")

    def __repr__(self):
        return f"Var({self.value!r})"

    # arithmetic -----------------------------------------------------------------------------
    def __add__(self, o):
        return _binary(self, o, lambda a, b: a + b, lambda g, a, b: g, lambda g, a, b: g)

    __radd__ = __add__

    def __sub__(self, o):
        return _binary(self, o, lambda a, b: a - b, lambda g, a, b: g, lambda g, a, b: -g)

    def __rsub__(self, o):
        return _binary(o, self, lambda a, b: a - b, lambda g, a, b: g, lambda g, a, b: -g)

    def __mul__(self, o):
        return _binary(self, o, lambda a, b: a * b, lambda g, a, b: g * b, lambda g, a, b: g * a)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return _binary(self, o, lambda a, b: a / b, lambda g, a, b: g / b, lambda g, a, b: -g * a / (b * b))

    def __rtruediv__(self, o):
        return _binary(o, self, lambda a, b: a / b, lambda g, a, b: g / b, lambda g, a, b: -g * a / (b * b))

    def __neg__(self):
        return _unary(self, lambda a: -a, lambda g, a, out: -g)

    def __matmul__(self, o):
        return _binary(self, o, lambda a, b: a @ b, _matmul_ga, _matmul_gb)

    def __rmatmul__(self, o):
        return _binary(o, self, lambda a, b: a @ b, _matmul_ga, _matmul_gb)

    # comparisons give constants
    def __gt__(self, o):
        return self.value > _val(o)

    def __lt__(self, o):
        return self.value < _val(o)

    def __ge__(self, o):
        return self.value >= _val(o)

    def __le__(self, o):
        return self.value <= _val(o)

    # shape ----------------------------------------------------------------------------------
    def __getitem__(self, idx):
        idx_v = _val_index(idx)

        def vjp(g, a, out):
            z = _zeros_like(a)
            if _is_fancy(idx_v):  # a gather may read one element many times
                _index_add(z, idx_v, g)
            else:
                z[idx_v] = g
            return z

        return _unary(self, lambda a: a[idx_v], vjp)

    def reshape(self, *shape):
        return _unary(self, lambda a: a.reshape(*shape), lambda g, a, out: g.reshape(a.shape))

    def astype(self, dtype):
        return self.value.astype(dtype)  # casts are never differentiated (step function)

    def sum(self, axis=None, keepdims=False):
        return reduce_sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        n = self.value.size if axis is None else np.prod([self.value.shape[a] for a in np.atleast_1d(axis)])
        return reduce_sum(self, axis, keepdims) * (1.0 / float(n))


def _val(x):
    return x.value if isinstance(x, Var) else x


def _val_index(idx):
    if isinstance(idx, tuple):
        return tuple(_val(i) for i in idx)
    return _val(idx)


def _is_fancy(idx) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(hasattr(i, "dtype") and getattr(i, "ndim", 0) > 0 for i in items)


def _backend():
    from graphflow.backend import get_backend

    return _LOCAL.stack[-1].be if _LOCAL.stack else get_backend("numpy")


def _xp_of(a):
    return _backend().xp


def _index_add(z, idx, g):
    _backend().index_add(z, idx, g)


def _zeros_like(a):
    return _xp_of(a).zeros_like(a)


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach it from ``shape``."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and g.shape[k] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _shape(x):
    return np.shape(x) if not hasattr(x, "shape") else x.shape


def _binary(a, b, fn, ga, gb):
    av, bv = _val(a), _val(b)
    out = fn(av, bv)
    parents = []
    if isinstance(a, Var):
        parents.append((a, lambda g: unbroadcast(ga(g, av, bv), _shape(av))))
    if isinstance(b, Var):
        parents.append((b, lambda g: unbroadcast(gb(g, av, bv), _shape(bv))))
    return Var(out, tuple(parents))


def _unary(a, fn, vjp):
    av = a.value
    out = fn(av)
    return Var(out, ((a, lambda g: vjp(g, av, out)),))


def _matmul_ga(g, a, b):
    if b.ndim == 1:
        return g[..., None] * b
    if a.ndim == 1:  # a vector times a (stack of) matrices: one row per matrix, summed by unbroadcast
        return (g[..., None, :] @ _swap(b))[..., 0, :]
    return g @ _swap(b)


def _matmul_gb(g, a, b):
    if b.ndim == 1:
        return (g[..., None] * a).reshape(-1, b.shape[0]).sum(0)
    if a.ndim == 1:
        return a[:, None] * g[..., None, :]
    if b.ndim == 2:  # one [F, H] kernel shared by a stack of rows: a single large matmul
        return a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
    return _swap(a) @ g


def _swap(x):
    return _xp_of(x).swapaxes(x, -1, -2)


def reduce_sum(a, axis=None, keepdims=False):
    av = a.value if isinstance(a, Var) else a
    out = av.sum(axis=axis, keepdims=keepdims)
    if not isinstance(a, Var):
        return out

    def vjp(g, x, o):
        if axis is not None and not keepdims:
            g = _xp_of(g).expand_dims(g, axis)
        return _xp_of(x).broadcast_to(g, x.shape)

    return _unary(a, lambda x: out, vjp)


# ------------------------------------------------------------------------------------------------
# The traced array namespace


def _make_namespace(xp):
    def tanh(a):
        if not isinstance(a, Var):
            return xp.tanh(a)
        return _unary(a, xp.tanh, lambda g, x, out: g * (1.0 - out * out))

    def exp(a):
        if not isinstance(a, Var):
            return xp.exp(a)
        return _unary(a, xp.exp, lambda g, x, out: g * out)

    def log(a):
        if not isinstance(a, Var):
            return xp.log(a)
        return _unary(a, xp.log, lambda g, x, out: g / x)

    def abs_(a):
        if not isinstance(a, Var):
            return xp.abs(a)
        return _unary(a, xp.abs, lambda g, x, out: g * xp.sign(x))

    def maximum(a, b):
        if not isinstance(a, Var) and not isinstance(b, Var):
            return xp.maximum(a, b)
        return _binary(a, b, xp.maximum, lambda g, x, y: g * (x >= y), lambda g, x, y: g * (x < y))

    def clip(a, lo, hi):
        if not isinstance(a, Var):
            return xp.clip(a, lo, hi)
        return _unary(a, lambda x: xp.clip(x, lo, hi), lambda g, x, out: g * ((x >= lo) & (x <= hi)))

    def sum_(a, axis=None, keepdims=False):
        return reduce_sum(a, axis, keepdims)

    def max_(a, axis=None, keepdims=False):
        if not isinstance(a, Var):
            return xp.max(a, axis=axis, keepdims=keepdims)

        def vjp(g, x, out):
            o = out if keepdims or axis is None else xp.expand_dims(out, axis)
            gg = g if keepdims or axis is None else xp.expand_dims(g, axis)
            hit = (x == o).astype(x.dtype)
            return gg * hit / hit.sum(axis=axis, keepdims=True)

        return _unary(a, lambda x: xp.max(x, axis=axis, keepdims=keepdims), vjp)

    def broadcast_to(a, shape):
        if not isinstance(a, Var):
            return xp.broadcast_to(a, shape)
        return _unary(a, lambda x: xp.broadcast_to(x, shape), lambda g, x, out: unbroadcast(g, x.shape))

    def where(cond, a, b):
        cond = _val(cond)
        if not isinstance(a, Var) and not isinstance(b, Var):
            return xp.where(cond, a, b)
        return _binary(a, b, lambda x, y: xp.where(cond, x, y),
                       lambda g, x, y: xp.where(cond, g, 0.0), lambda g, x, y: xp.where(cond, 0.0, g))

    def moveaxis(a, src, dst):
        if not isinstance(a, Var):
            return xp.moveaxis(a, src, dst)
        return _unary(a, lambda x: xp.moveaxis(x, src, dst), lambda g, x, out: xp.moveaxis(g, dst, src))

    def concatenate(arrays, axis=0):
        if not any(isinstance(a, Var) for a in arrays):
            return xp.concatenate(arrays, axis=axis)
        vals = [_val(a) for a in arrays]
        out = xp.concatenate(vals, axis=axis)
        bounds = np.cumsum([0] + [v.shape[axis] for v in vals])
        parents = []
        for k, a in enumerate(arrays):
            if isinstance(a, Var):
                sl = [slice(None)] * out.ndim
                sl[axis] = slice(int(bounds[k]), int(bounds[k + 1]))
                parents.append((a, lambda g, sl=tuple(sl): g[sl]))
        return Var(out, tuple(parents))

    def fused(forward, backward, inputs, blocked: int = 0, blocks=None):
        """One recorded stage for ``forward(xp, *inputs) -> (out, residuals)`` whose VJP
        ``backward(xp, inputs, residuals, g)`` returns the gradients of all inputs at once.

        Stages that are independent per node and example: the first ``blocked`` inputs broadcast
        together to the output's leading shape ``[T, B, n2, n3, ...]`` (the others are parameters).
        With ``blocks`` given, ``blocks(fn, shape)`` returns ``[fn(block, single), ...]`` over blocks of
        the node axes (:func:`graphflow.backend.node_blocks`; the engine runs them in cache-sized
        pieces on its threads); forward and backward then run block by block, each blocked input
        taken where the block sits (whole along axes it is broadcast over). Outputs and the blocked
        inputs' gradients are assembled where the blocks sit (summed along broadcast axes); the
        parameters' gradients are summed.
        """
        values = tuple(_val(a) for a in inputs)
        out, backward_all = fused_call(xp, forward, backward, values, blocked, blocks)
        traced = [k for k, a in enumerate(inputs) if isinstance(a, Var)]
        if not traced:
            return out
        cache: dict = {}

        def pull(k):
            def vjp(g):
                if cache.get("g") is not g:
                    cache.update(g=g, grads=backward_all(g), left=len(traced))
                grad_k = cache["grads"][k]
                cache["left"] -= 1
                if cache["left"] == 0:  # every input has its share: free the stage's gradients
                    cache.clear()
                return unbroadcast(grad_k, _shape(values[k]))

            return vjp

        return Var(out, tuple((inputs[k], pull(k)) for k in traced))

    def stack(arrays, axis=0):
        if not any(isinstance(a, Var) for a in arrays):
            return xp.stack(arrays, axis=axis)
        out = xp.stack([_val(a) for a in arrays], axis=axis)
        parents = [(a, lambda g, k=k: xp.take(g, k, axis=axis)) for k, a in enumerate(arrays) if isinstance(a, Var)]
        return Var(out, tuple(parents))

    overrides = dict(fused=fused, tanh=tanh, exp=exp, log=log, abs=abs_, maximum=maximum, clip=clip, sum=sum_, max=max_,
                     broadcast_to=broadcast_to, where=where, moveaxis=moveaxis, concatenate=concatenate, stack=stack)
    return _Namespace(xp, overrides)


def fused_call(xp, forward, backward, values: tuple, blocked: int = 0, blocks=None, remat: bool = False):
    """Run a fused stage's ``forward`` on plain ``values`` (block by block when ``blocks`` is given
    and the blocked inputs allow it, see ``fused``): (output, cotangent -> gradients of all values).

    ``remat``: keep no residuals; the backward pass runs the forward again (block by block) to get
    them. Memory then holds the stage's inputs and output only, for one more forward pass: the
    lever for networks whose learner residuals do not fit (a 784-1000-1000-10 step's are ~17 GB).
    """
    shape = np.broadcast_shapes(*(tuple(v.shape[:-1]) for v in values[:blocked])) if blocked else ()
    if blocks is None or len(shape) < 3 or any(v.ndim != len(shape) + 1 for v in values[:blocked]):
        out, residuals = forward(xp, *values)
        if remat:
            residuals = None

        def backward_all(g):
            return backward(xp, values, residuals if residuals is not None else forward(xp, *values)[1], g)

        return out, backward_all
    return _node_blocked(xp, forward, backward, values, blocked, blocks, shape, remat)


def _node_blocked(xp, forward, backward, values, blocked: int, blocks, shape, remat: bool = False):
    """A fused stage over blocks of the node axes (see ``fused``): (output, cotangent -> gradients)."""
    from graphflow.backend import block_part

    params = values[blocked:]

    def pieces(block):
        return tuple(block_part(v, block) for v in values[:blocked]) + params

    def run(block, single):
        out, res = forward(xp, *pieces(block))
        return block, (out, None if remat else res)

    results = blocks(run, shape)
    residuals = {block: res for block, (_, res) in results}
    if len(results) == 1:
        out = results[0][1][0]
    else:
        first = results[0][1][0]
        out = xp.empty(tuple(shape) + first.shape[-1:], dtype=first.dtype)
        for block, (o, _) in results:
            block_part(out, block)[...] = o
    del results

    def back(block, g):
        res = residuals[block] if not remat else forward(xp, *pieces(block))[1]
        return backward(xp, pieces(block), res, g)

    def backward_all(g):
        grads = blocks(lambda block, single: (block, back(block, block_part(g, block))), shape)
        if len(grads) == 1:
            return list(grads[0][1])
        joined = []
        for k in range(len(values)):
            if k < blocked:  # each block's share, added where the block sits (summed where broadcast)
                total = xp.zeros(values[k].shape, dtype=grads[0][1][k].dtype)
                for block, gr in grads:
                    block_part(total, block)[...] += gr[k]
            else:
                total = grads[0][1][k]
                for _, gr in grads[1:]:
                    total = total + gr[k]
            joined.append(total)
        return joined

    return out, backward_all


class _Cotangents(dict):
    """The cotangents that reached the outputs of one recorded stage, by output position
    (what :func:`record_stage`'s joint node accumulates; ``+`` merges, summing shared positions)."""

    def __add__(self, other):
        out = _Cotangents(self)
        for k, g in other.items():
            out[k] = g if k not in out else out[k] + g
        return out


def record_stage(inputs: list, outputs: list, vjp) -> list:
    """One tape entry for a stage with several inputs and outputs, computed outside the tape.

    ``inputs`` are the stage's operands (:class:`Var` or plain arrays), ``outputs`` the plain
    arrays it produced from their values. ``vjp(cotangents)`` takes one cotangent per output
    (None where none arrived) and returns one gradient per input (None where there is none).
    Returns the outputs, as Vars when any input is one. The backward pass calls ``vjp`` once,
    after every consumer of every output has handed back its cotangent.

    >>> import numpy as np
    >>> from graphflow.backend import get_backend
    >>> be = traced_backend(get_backend("numpy", np.float64))
    >>> with Tape(be) as tape:
    ...     a = tape.var(np.array([1.0, 2.0]))
    ...     s, d = record_stage([a, 3.0], [a.value + 3.0, a.value - 3.0], lambda g: [g[0] + g[1], None])
    ...     y = (s * d).sum()
    >>> grad(tape, y, [a])[0].tolist()  # d/da (a + 3)(a - 3) = 2a
    [2.0, 4.0]
    """
    traced = [k for k, a in enumerate(inputs) if isinstance(a, Var)]
    if not traced:
        return list(outputs)
    shapes = [_shape(_val(a)) for a in inputs]
    cache: dict = {}

    def pull(k):
        def back(got):
            if cache.get("got") is not got:
                cotangents = [got.get(j) for j in range(len(outputs))]
                cache.update(got=got, grads=vjp(cotangents), left=len(traced))
            g = cache["grads"][k]
            cache["left"] -= 1
            if cache["left"] == 0:
                cache.clear()
            if g is None:
                return _zeros_like(_val(inputs[k]))
            return unbroadcast(g, shapes[k])

        return back

    joint = Var(None, tuple((inputs[k], pull(k)) for k in traced))
    return [Var(out, ((joint, lambda g, j=j: _Cotangents({j: g})),)) for j, out in enumerate(outputs)]


class _Namespace:
    """``xp`` with differentiable overrides; everything else is the plain module."""

    def __init__(self, xp, overrides):
        self._xp = xp
        self.__dict__.update(overrides)
        self.__name__ = f"traced-{xp.__name__}"

    def __getattr__(self, name):
        return getattr(self._xp, name)


def traced_backend(backend):
    """A copy of ``backend`` whose ``xp`` records differentiable operations on :class:`Var`."""
    return replace(backend, xp=_make_namespace(backend.xp), traced=True)


def grad(tape: Tape, output, wrt: list[Var], seed=None) -> list:
    """Vector-Jacobian product: d output / d wrt, played back along ``tape``.

    ``output`` is one Var or a list of Vars; ``seed`` gives their cotangents (one array, or a list
    in the order of ``output``; None, or a None entry, means ones, i.e. the plain gradient of a
    scalar). Several outputs are differentiated at once, their contributions summed: this is
    how a recomputed segment of an unroll receives the cotangent of the state it hands on.

    >>> import numpy as np
    >>> from graphflow.backend import get_backend
    >>> be = traced_backend(get_backend("numpy", np.float64))
    >>> with Tape(be) as tape:
    ...     w = tape.var(np.array([1.0, 2.0]))
    ...     y = w * w
    ...     s = y.sum()
    >>> grad(tape, [s, y], [w], seed=[None, np.array([10.0, 0.0])])[0].tolist()
    [22.0, 4.0]
    """
    if isinstance(output, (list, tuple)):
        outputs, seeds = list(output), [None] * len(output) if seed is None else list(seed)
    else:
        outputs, seeds = [output], [seed]
    if len(seeds) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(seeds)} seeds")
    recorded = {node.id for node in tape.nodes}
    for k, out in enumerate(outputs):
        if not isinstance(out, Var):
            raise ValueError(f"grad: output {k} is a plain {type(out).__name__}, not a Var: it does not depend on "
                             f"any variable of the tape")
        if out.id not in recorded:
            raise ValueError(f"grad: output {k} was not computed on this tape (outside its `with Tape(...)` block, "
                             f"or on another tape): its gradient would be zero")
    _LOCAL.stack.append(tape)  # vector-Jacobian products use the tape's backend
    try:
        return _backprop(tape, outputs, wrt, seeds)
    finally:
        _LOCAL.stack.remove(tape)


def _backprop(tape, outputs, wrt, seeds):
    xp = tape.be.xp
    grads: dict = {}
    for out, seed in zip(outputs, seeds):
        g = xp.ones_like(out.value) if seed is None else seed
        grads[out.id] = g if out.id not in grads else grads[out.id] + g
    keep = {w.id for w in wrt}
    for node in reversed(tape.nodes):
        g = grads.get(node.id) if node.id in keep else grads.pop(node.id, None)
        if g is None:
            continue
        for parent, vjp in node.parents:
            contrib = vjp(g)
            prev = grads.get(parent.id)
            grads[parent.id] = contrib if prev is None else prev + contrib
    return [grads.get(w.id, xp.zeros_like(w.value)) for w in wrt]
