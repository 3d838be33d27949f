"""Arrays whose axes have names: ``("step", "task", "example", "channel")``.

A :class:`LabelledArray` is a numpy array plus the name of every axis and, optionally, labels
along some axes (the recorded step numbers, the channel names ``m0``..``m7``, the node ids). It
offers the few operations the inspection needs — select, reduce by name, norms — and nothing
else; it is not xarray and does not depend on it.

>>> a = LabelledArray(np.arange(12.0).reshape(3, 2, 2), ("step", "example", "channel"),
...                   {"step": (0, 2, 4), "channel": ("m0", "m1")})
>>> a.sel(step=2).dims, a.sel(step=2, channel="m1").values.tolist()
(('example', 'channel'), [5.0, 7.0])
>>> a.mean("example").values.tolist()
[[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]
>>> a.norm("channel").mean("example").values.round(3).tolist()
[2.303, 7.811, 13.454]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphflow.io.jsonl import finite_or_none


@dataclass(frozen=True)
class LabelledArray:
    """A numpy array with named axes and optional labels along them."""

    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, tuple] = field(default_factory=dict)
    """Axis name -> one label per position (absent: positions are their own labels)."""

    def __post_init__(self):
        values = np.asarray(self.values)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "dims", tuple(self.dims))
        if values.ndim != len(self.dims):
            raise ValueError(f"{values.ndim}-d array with {len(self.dims)} axis names {self.dims}")
        for dim, labels in self.coords.items():
            if dim not in self.dims:
                raise ValueError(f"labels for {dim!r}, which is not an axis of {self.dims}")
            if len(labels) != values.shape[self.dims.index(dim)]:
                raise ValueError(f"{len(labels)} labels for axis {dim!r} of length {values.shape[self.dims.index(dim)]}")

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def sizes(self) -> dict[str, int]:
        """Axis name -> length."""
        return dict(zip(self.dims, self.values.shape))

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self) -> int:
        return len(self.values)

    def labels(self, dim: str) -> tuple:
        """The labels along ``dim`` (its positions where it has none)."""
        return tuple(self.coords.get(dim, range(self.sizes[dim])))

    def axis(self, dim: str) -> int:
        if dim not in self.dims:
            raise KeyError(f"no axis {dim!r}; axes: {', '.join(self.dims)}")
        return self.dims.index(dim)

    def __repr__(self) -> str:
        axes = ", ".join(f"{d}: {n}" for d, n in self.sizes.items())
        return f"LabelledArray({axes}; {self.values.dtype})"

    # ------------------------------------------------------------------ selection
    def isel(self, **positions) -> "LabelledArray":
        """Select by position along named axes: an int drops the axis, a list/slice keeps it."""
        index: list = [slice(None)] * self.values.ndim
        dims, coords = list(self.dims), dict(self.coords)
        for dim, pos in positions.items():
            ax = self.axis(dim)
            index[ax] = pos
            if isinstance(pos, (int, np.integer)):
                coords.pop(dim, None)
            elif dim in coords:
                coords[dim] = tuple(np.asarray(coords[dim], dtype=object)[pos].tolist())
        values = _take_each(self.values, index)
        for dim, pos in positions.items():
            if isinstance(pos, (int, np.integer)):
                dims.remove(dim)
        return LabelledArray(values, tuple(dims), {d: c for d, c in coords.items() if d in dims})

    def sel(self, **labels) -> "LabelledArray":
        """Select by label (``step=4``, ``channel="m0"``, ``node="dense4/w[3,0]"``); lists keep the axis."""
        positions = {}
        for dim, want in labels.items():
            have = list(self.labels(dim))
            many = isinstance(want, (list, tuple, np.ndarray))
            try:
                positions[dim] = [have.index(w) for w in want] if many else have.index(want)
            except ValueError:
                raise KeyError(f"{dim}={want!r} is not among the labels {have}") from None
        return self.isel(**positions)

    # ------------------------------------------------------------------ reductions
    def reduce(self, func, dim: str | tuple[str, ...] | None = None) -> "LabelledArray":
        """Apply a numpy reduction (``np.nanmean`` ...) over the named axes (all when None)."""
        dims = self.dims if dim is None else ((dim,) if isinstance(dim, str) else tuple(dim))
        axes = tuple(self.axis(d) for d in dims)
        keep = tuple(d for d in self.dims if d not in dims)
        return LabelledArray(func(self.values, axis=axes), keep, {d: c for d, c in self.coords.items() if d in keep})

    def mean(self, dim=None) -> "LabelledArray":
        """Mean over the named axes, ignoring NaN (steps where a node was not recorded)."""
        return self.reduce(_nanmean, dim)

    def sum(self, dim=None) -> "LabelledArray":
        return self.reduce(np.nansum, dim)

    def max(self, dim=None) -> "LabelledArray":
        return self.reduce(np.nanmax, dim)

    def norm(self, dim: str = "channel") -> "LabelledArray":
        """Euclidean norm over one axis (by default over the channels of a message)."""
        return self.reduce(lambda v, axis: np.sqrt(np.sum(np.square(v), axis=axis)), dim)

    def abs(self) -> "LabelledArray":
        return LabelledArray(np.abs(self.values), self.dims, self.coords)

    def transpose(self, *dims: str) -> "LabelledArray":
        return LabelledArray(np.transpose(self.values, [self.axis(d) for d in dims]), dims, self.coords)

    def to_json(self) -> dict:
        """``{"dims": [...], "coords": {...}, "values": nested lists}`` (NaN written as null)."""
        return {"dims": list(self.dims), "coords": {d: list(c) for d, c in self.coords.items()},
                "values": finite_or_none(self.values)}


def _nanmean(values, axis):
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(values), axis=axis)
        return np.where(count > 0, np.nansum(values, axis=axis) / np.maximum(count, 1), np.nan)


def _take_each(values: np.ndarray, index: list) -> np.ndarray:
    """Outer indexing: each int, slice or list selects along its own axis (numpy would pair lists
    up, and move their axes to the front when an int stands between them). Last axis first, so
    that dropping an axis leaves the positions of the earlier ones alone."""
    for ax in reversed(range(len(index))):
        pos = index[ax]
        if isinstance(pos, slice):
            values = values[(slice(None),) * ax + (pos,)]
        else:
            values = np.take(values, pos, axis=ax)
    return values
