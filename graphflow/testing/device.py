"""A stand-in for a GPU, for tests only: arrays that live "on a device" as CuPy's do, over numpy.

Most machines have no GPU, so host/device mixing (``np.asarray`` of a device array, a numpy
function fed one, a device array added to a host array) goes unnoticed until someone runs on
CuPy. :func:`numpy_device_backend` is a :data:`graphflow.backend.BACKENDS` factory: a backend named
``"numpy-device"`` whose ``xp`` is :data:`xp`, numpy's functions taking and returning
:class:`DeviceArray` objects, which keep their data in a numpy array and never hand it out
implicitly. Registered as ``"numpy"`` (the ``device_backend`` fixture of ``tests/conftest.py``
does it), it runs the whole library on such arrays. The library never imports this module.

>>> a = xp.asarray(np.arange(3.0))
>>> (a * 2 + 1).sum().get().tolist()
9.0
>>> np.asarray(a)
Traceback (most recent call last):
...
TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly.

What it mirrors of CuPy (``cupy/_core/core.pyx``, ``_kernel.pyx``, ``_scalar.pyx`` and
``_routines_indexing.pyx`` of CuPy 13 to 15):

- Implicit conversion to numpy raises CuPy's TypeError (:data:`IMPLICIT_CONVERSION`):
  ``np.asarray(a)``, ``np.array(a)``, every numpy routine that converts its arguments (rather
  than dispatching them, see below).
- The explicit transfers work: ``a.get()`` is a host copy (what ``Backend.to_numpy`` calls),
  ``xp.asarray(host_array)`` a device copy.
- What CuPy does through ``.get()`` works (on CuPy it waits for the device): ``float(a)``,
  ``int(a)``, ``complex(a)``, ``bool(a)``, ``a.item()``, ``a.tolist()``, ``repr`` and ``str``, with
  numpy's rules: ``float(a)`` of an array of more than one element raises TypeError (numpy 2
  refuses a 1-d array of one element too).
- Ufuncs and operators take device arrays, Python scalars and numpy scalars. A numpy array, a
  0-d one too, raises ``TypeError: Unsupported type <class 'numpy.ndarray'>`` in either order
  (``d + h``, ``h + d``), except a 0-d one in comparisons (CuPy's work-around for numpy issue
  12142). Other objects get ``NotImplemented``, so that the reflected operators of objects that
  opt out of ufuncs (``__array_ufunc__ = None``, as the tape's ``Var``) run.
- A numpy function called with a device array (``np.concatenate([d])``, ``np.tanh(d)``) runs the
  namespace's function, with a device result, as CuPy's ``__array_function__`` and
  ``__array_ufunc__`` do for the functions CuPy has.
- The namespace's functions refuse numpy arrays among their arguments (TypeError) but for the
  transfers (:data:`TRANSFERS`) and the ``*_like`` constructors (:data:`LIKE`, which read only
  the shape and dtype).
- Results are device arrays, reductions to one value too (0-d arrays, never numpy scalars);
  ``out=`` gives back the device array passed, and views share memory as numpy's do.
- Indexing takes device or numpy index arrays (CuPy copies the latter over). Assigning a numpy
  array or a list of more than 0 dims through basic indexing raises CuPy's ValueError
  (``non-scalar numpy.ndarray cannot be used for fill``); through advanced indexing it is copied.

Not mirrored: the functions and dtypes CuPy lacks (every numpy function works here), CuPy's
writable broadcast views, asynchronous execution, streams and memory pools.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from graphflow.backend import Backend

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")
"""CuPy's message for ``np.asarray(cupy_array)``, word for word."""

TRANSFERS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})
"""Namespace functions that take host arrays: host-to-device copies."""

LIKE = frozenset({"empty_like", "zeros_like", "ones_like", "full_like"})
"""Namespace functions that take a host array to read its shape and dtype."""

COMPARISONS = frozenset({"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"})
"""Ufuncs that take a 0-d numpy array (CuPy turns it into a scalar first)."""

SCALARS = (bool, int, float, complex, np.generic)
"""What mixes with device arrays in ufuncs, besides device arrays."""

UFUNC_METHODS = ("at", "reduce", "accumulate", "reduceat", "outer")
"""The ufunc methods a device ufunc has (``xp.add.at``, ``xp.maximum.reduce``)."""


@dataclass
class _Operands:
    """The arrays one call received: device arrays (unwrapped) and the host arrays it accepted."""

    devices: list = field(default_factory=list)
    hosts: list = field(default_factory=list)


def _host_refused(what: str):
    """A check of the host arrays a call receives: none are allowed (CuPy's TypeError)."""

    def check(a: np.ndarray) -> None:
        raise TypeError(f"Unsupported type {type(a)}: a host (numpy) array of shape {list(a.shape)} in {what} on "
                        f"device arrays; CuPy never moves it implicitly: move it with xp.asarray (be.asarray)")

    return check


def _zero_d_only(what: str):
    """A check that lets 0-d host arrays through (CuPy's comparisons)."""
    refuse = _host_refused(what)
    return lambda a: None if a.ndim == 0 else refuse(a)


def _host_accepted(a: np.ndarray) -> None:
    """The check of transfers, ``*_like`` constructors and indices: every host array is welcome."""


def _to_host(obj, check_host, seen: _Operands):
    """``obj`` with its device arrays replaced by their data (lists, tuples and dicts searched);
    ``check_host`` raises for a numpy array the call may not take."""
    if isinstance(obj, DeviceArray):
        seen.devices.append(obj)
        return obj._data
    if isinstance(obj, np.ndarray):
        check_host(obj)
        seen.hosts.append(obj)
        return obj
    if isinstance(obj, (list, tuple)):
        items = [_to_host(item, check_host, seen) for item in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {key: _to_host(value, check_host, seen) for key, value in obj.items()}
    return obj


def _on_device(result, seen: _Operands):
    """``result`` of a numpy call with its arrays on the device: an ``out=`` array (or an argument
    returned as it is) is the device array passed; what shares memory with a host argument is copied."""
    if isinstance(result, np.ndarray):
        passed = next((d for d in seen.devices if d._data is result), None)
        if passed is not None:
            return passed
        if any(np.may_share_memory(result, h) for h in seen.hosts):
            result = result.copy()
        return DeviceArray(result)
    if isinstance(result, np.generic):
        return DeviceArray(np.asarray(result))
    if isinstance(result, (list, tuple)):
        items = [_on_device(item, seen) for item in result]
        return items if isinstance(result, list) else tuple(items)
    return result


def _call(fn, args: tuple, kwargs: dict, check_host):
    """``fn`` (a numpy function) on the data of device arrays; its result back on the device."""
    seen = _Operands()
    host_args = _to_host(args, check_host, seen)
    host_kwargs = _to_host(kwargs, check_host, seen)
    return _on_device(fn(*host_args, **host_kwargs), seen)


def _ufunc_call(ufunc: np.ufunc, method: str, args: tuple, kwargs: dict):
    """``ufunc`` (or its ``method``: ``at``, ``reduce``, ...) on device arrays."""
    what = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
    check = _zero_d_only(what) if ufunc.__name__ in COMPARISONS else _host_refused(what)
    if method == "at" and len(args) > 1:  # its indices may be host arrays, as in indexing
        index = _to_host(args[1], _host_accepted, _Operands())
        return _call(lambda a, *b: ufunc.at(a, index, *b), args[:1] + args[2:], kwargs, check)
    return _call(getattr(ufunc, method), args, kwargs, check)


def _is_advanced(index) -> bool:
    """Whether a (host) index selects with arrays or lists (numpy's advanced indexing)."""
    return any(isinstance(k, (np.ndarray, list)) for k in (index if isinstance(index, tuple) else (index,)))


class DeviceArray(NDArrayOperatorsMixin):
    """An array "on the device": its data is a numpy array that it never hands out implicitly.

    Made by the namespace :data:`xp` (``xp.asarray(host)``, ``xp.zeros(3)``, results of
    operations); :meth:`get` is the way back to numpy. Operators come from numpy's
    ``NDArrayOperatorsMixin``, through the ufuncs (:meth:`__array_ufunc__`).

    >>> d = xp.zeros(3)
    >>> d += 1.5
    >>> float(d[0]), type(d[1:]).__name__, d.get().tolist()
    (1.5, 'DeviceArray', [1.5, 1.5, 1.5])
    """

    __slots__ = ("_data",)
    __hash__ = None

    def __init__(self, data: np.ndarray):
        self._data = data

    # -------------------------------------------------------------- the transfer, and what uses it
    def get(self) -> np.ndarray:
        """A host copy of the array (CuPy's device-to-host transfer)."""
        return self._data.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __float__(self):
        return float(self.get())

    def __int__(self):
        return int(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        if self.size == 0:  # CuPy still answers False for an empty array, with numpy's old warning
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but in future this will "
                          "result in an error.", DeprecationWarning, stacklevel=2)
            return False
        return bool(self.get())

    def item(self):
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def tobytes(self, order: str = "C") -> bytes:
        return self.get().tobytes(order)

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get(), spec)

    def __reduce__(self):
        return DeviceArray, (self.get(),)

    # -------------------------------------------------------------- what it is
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    itemsize = property(lambda self: self._data.itemsize)
    nbytes = property(lambda self: self._data.nbytes)
    strides = property(lambda self: self._data.strides)
    flags = property(lambda self: self._data.flags)
    T = property(lambda self: DeviceArray(self._data.T))

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    # -------------------------------------------------------------- indexing
    def __getitem__(self, index):
        seen = _Operands()
        return _on_device(self._data[_to_host(index, _host_accepted, seen)], seen)

    def __setitem__(self, index, value):
        host_index = _to_host(index, _host_accepted, _Operands())
        if isinstance(value, DeviceArray):
            value = value._data
        elif np.ndim(value) > 0 and not _is_advanced(host_index):
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._data[host_index] = value

    # -------------------------------------------------------------- numpy's protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        operands = inputs + tuple(kwargs.get("out", ()))
        if not all(o is None or isinstance(o, (DeviceArray, np.ndarray) + SCALARS) for o in operands):
            return NotImplemented
        return _ufunc_call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if not all(issubclass(t, (DeviceArray, np.ndarray)) for t in types):
            return NotImplemented
        name = func.__name__
        return _call(func, args, kwargs, _host_accepted if name in TRANSFERS | LIKE else _host_refused(f"np.{name}"))


ARRAY_METHODS = ("reshape", "astype", "copy", "view", "ravel", "flatten", "transpose", "swapaxes", "squeeze",
                 "sum", "mean", "std", "var", "prod", "max", "min", "argmax", "argmin", "all", "any", "cumsum", "clip",
                 "round", "take", "repeat", "nonzero", "dot", "conj", "fill")
"""The ``ndarray`` methods a device array has (results on the device, as CuPy's)."""


def _array_method(name: str):
    def method(self, *args, **kwargs):
        return _call(getattr(self._data, name), args, kwargs, _host_refused(f".{name}()"))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``ndarray.{name}`` on the device."
    return method


for _name in ARRAY_METHODS:
    setattr(DeviceArray, _name, _array_method(_name))


class DeviceUfunc:
    """A numpy ufunc on device arrays: ``xp.add(a, b)``, ``xp.add.at(a, idx, v)``, ``xp.maximum(a, 0, out=a)``."""

    def __init__(self, ufunc: np.ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _ufunc_call(self._ufunc, "__call__", args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in UFUNC_METHODS:
            return getattr(self._ufunc, name)  # nin, nout, identity, ...

        def method(*args, **kwargs):
            return _ufunc_call(self._ufunc, name, args, kwargs)

        return method

    def __repr__(self):
        return f"<device ufunc {self.__name__}>"


class DeviceNamespace:
    """numpy's namespace on :class:`DeviceArray` objects (the stand-in for the ``cupy`` module).

    Functions and ufuncs take and return device arrays; submodules (``xp.linalg``) are namespaces
    too; dtypes, classes and constants are numpy's own (as ``cupy.float32`` is ``numpy.float32``).
    ``xp.ndarray`` is :class:`DeviceArray`.
    """

    def __init__(self, module: ModuleType = np, name: str = "numpy-device"):
        self._module = module
        self.__name__ = name
        self.ndarray = DeviceArray

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        found = getattr(self._module, name)
        if isinstance(found, np.ufunc):
            wrapped = DeviceUfunc(found)
        elif isinstance(found, ModuleType):
            wrapped = DeviceNamespace(found, f"{self.__name__}.{name}")
        elif callable(found) and not isinstance(found, type):
            wrapped = _device_function(found, name)
        else:
            wrapped = found
        setattr(self, name, wrapped)  # looked up once
        return wrapped

    def __repr__(self):
        return f"<device namespace {self.__name__!r} over {self._module.__name__}>"


def _device_function(fn, name: str):
    check = _host_accepted if name in TRANSFERS | LIKE else _host_refused(f"xp.{name}")

    @functools.wraps(fn)
    def on_device(*args, **kwargs):
        return _call(fn, args, kwargs, check)

    return on_device


xp = DeviceNamespace()
"""The device namespace over numpy (what ``cupy`` is to a GPU)."""


def numpy_device_backend(dtype=np.float32) -> Backend:
    """The :data:`graphflow.backend.BACKENDS` factory of the stand-in: like CuPy's backend, no cache
    blocking (learner calls run in one piece).

    >>> be = numpy_device_backend()
    >>> be.name, type(be.asarray([1.0, 2.0])).__name__, be.to_numpy(be.asarray([1.0])).tolist()
    ('numpy-device', 'DeviceArray', [1.0])
    """
    return Backend("numpy-device", xp, dtype, cache_blocking=False)
