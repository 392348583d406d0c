"""Layout: named parameter blocks <-> one flat float64 vector."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["Layout"]


def _as_shape(name: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"Layout: the shape of block {name!r} must be a tuple of non-negative ints, "
            f"got {shape!r}"
        ) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise TypeError(
                f"Layout: the shape of block {name!r} must be a tuple of non-negative ints, "
                f"got {shape!r}"
            )
    return tuple(int(d) for d in dims)


class Layout:
    """Named blocks of parameters laid out one after another in a flat vector.

    Parameters
    ----------
    shapes : Mapping[str, tuple of int]
        Block name -> shape. The mapping's order is the order of the blocks in the
        flat vector; each block is flattened in C order.

    Examples
    --------
    >>> layout = Layout({"W1": (3, 2), "b1": (3,)})
    >>> layout.size
    9
    >>> layout.locate(7)
    ('b1', (1,))
    """

    def __init__(self, shapes: Mapping[str, Any]):
        if not isinstance(shapes, Mapping):
            raise TypeError(
                f"Layout: expected a mapping name -> shape, got {type(shapes).__name__}"
            )
        if len(shapes) == 0:
            raise ValueError("Layout: expected at least one block, got an empty mapping")
        names: list[str] = []
        dims: list[tuple[int, ...]] = []
        for name, shape in shapes.items():
            if not isinstance(name, str):
                raise TypeError(f"Layout: block names must be strings, got {name!r}")
            names.append(name)
            dims.append(_as_shape(name, shape))
        exact = [math.prod(s) for s in dims]  # Python ints: no silent overflow
        if sum(exact) > np.iinfo(np.int64).max:
            raise ValueError(
                f"Layout: {sum(exact):,} components in all do not fit a flat int64-indexed "
                f"vector (shapes {dict(zip(names, dims))})"
            )
        sizes = np.array(exact, dtype=np.int64)
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        self._names = tuple(names)
        self._shapes = tuple(dims)
        self._sizes = sizes
        self._size_tuple = tuple(exact)
        self._offsets = offsets
        self._index = {n: i for i, n in enumerate(names)}

    # -- description -----------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Block names, in order."""
        return self._names

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Block shapes, in block order (parallel to ``names``)."""
        return self._shapes

    @property
    def offsets(self) -> tuple[int, ...]:
        """Flat index of each block's first component, in block order (parallel to
        ``names``)."""
        return tuple(int(o) for o in self._offsets[:-1])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of components of each block, in block order (parallel to ``names``)."""
        return self._size_tuple

    def _position(self, name: str) -> int:
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise KeyError(
                f"Layout has no block {name!r}; its blocks are {list(self._names)}"
            ) from None

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of block ``name`` (``KeyError`` naming the blocks if there is none)."""
        return self._shapes[self._position(name)]

    def offset_of(self, name: str) -> int:
        """The flat index of the first component of block ``name``."""
        return int(self._offsets[self._position(name)])

    def size_of(self, name: str) -> int:
        """The number of components of block ``name``."""
        return int(self._sizes[self._position(name)])

    @property
    def size(self) -> int:
        """Total number of components N."""
        return int(self._offsets[-1])

    @property
    def bounds(self) -> np.ndarray:
        """Block boundaries as an int64 array of length ``len(names) + 1``."""
        return np.array(self._offsets, dtype=np.int64)  # a copy

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Layout)
            and self._names == other._names
            and self._shapes == other._shapes
        )

    def __hash__(self) -> int:
        return hash((self._names, self._shapes))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {s}" for n, s in zip(self._names, self._shapes))
        return f"Layout({{{inner}}})"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Layout:
        """Build the Layout of a mapping ``name -> array``."""
        return cls({name: np.shape(value) for name, value in params.items()})

    # -- conversion ------------------------------------------------------------------
    def flatten(self, params: Mapping[str, Any]) -> np.ndarray:
        """Copy a mapping of blocks into a new flat float64 vector.

        Parameters
        ----------
        params : Mapping[str, array_like]
            One array per block name, each of the block's shape.

        Returns
        -------
        numpy.ndarray
            A new 1-D float64 array of length ``size``.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"flatten: expected a mapping of arrays, got {type(params).__name__}")
        missing = [n for n in self._names if n not in params]
        if missing:
            raise KeyError(f"flatten: missing block(s) {missing}; expected {list(self._names)}")
        out = np.empty(self.size, dtype=np.float64)
        for name, shape, lo, hi in zip(self._names, self._shapes,
                                       self._offsets[:-1], self._offsets[1:]):
            block = np.asarray(params[name])
            if block.dtype.kind not in "iuf":
                raise TypeError(
                    f"flatten: block {name!r} must hold real numbers, got dtype {block.dtype}"
                )
            if block.shape != shape:
                raise ValueError(
                    f"flatten: block {name!r} should have shape {shape}, got {block.shape}"
                )
            out[lo:hi] = block.reshape(-1)
        return out

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Views of a flat vector as named blocks (no copy).

        Parameters
        ----------
        theta : numpy.ndarray
            A 1-D array of length ``size``.

        Returns
        -------
        dict[str, numpy.ndarray]
            Block name -> view of ``theta`` with the block's shape.
        """
        theta = np.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != self.size:
            raise ValueError(
                f"unflatten: expected a 1-D array of length {self.size}, got shape {theta.shape}"
            )
        return {
            name: theta[lo:hi].reshape(shape)
            for name, shape, lo, hi in zip(self._names, self._shapes,
                                           self._offsets[:-1], self._offsets[1:])
        }

    # -- lookup ----------------------------------------------------------------------
    def block_of(self, flat_index: np.ndarray | int) -> np.ndarray:
        """Block number (position in ``names``) of each flat index (vectorised)."""
        return np.asarray(np.searchsorted(self._offsets, np.asarray(flat_index), side="right")
                          - 1)

    def locate(self, flat_index: int) -> tuple[str, tuple[int, ...]]:
        """Block name and index inside the block of one flat index.

        Raises
        ------
        IndexError
            If ``flat_index`` is outside ``[0, size)``.
        """
        if isinstance(flat_index, bool) or not isinstance(flat_index, (int, np.integer)):
            raise TypeError(f"locate: flat_index must be an int, got {flat_index!r}")
        i = int(flat_index)
        if not 0 <= i < self.size:
            raise IndexError(f"locate: flat_index {i} is outside [0, {self.size})")
        b = int(self.block_of(i))
        local = i - int(self._offsets[b])
        shape = self._shapes[b]
        if not shape:
            return self._names[b], ()
        return self._names[b], tuple(int(k) for k in np.unravel_index(local, shape))

    def label(self, flat_index: int) -> str:
        """``"W2[1, 40]"`` for a flat index (``"b"`` for a 0-d block)."""
        name, idx = self.locate(flat_index)
        if not idx:
            return name
        return f"{name}[{', '.join(str(k) for k in idx)}]"

    def block_slice(self, name: str) -> slice:
        """The slice of the flat vector that holds block ``name``."""
        b = self._position(name)
        return slice(int(self._offsets[b]), int(self._offsets[b + 1]))
