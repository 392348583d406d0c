"""Planning: which components to check (all, or a stratified sample) and in which chunks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .layout import Layout

#: Components evaluated per driver step (one kernel call, one progress update).
DEFAULT_CHUNK = 4096


@dataclass(frozen=True)
class Sample:
    """The components chosen for a check."""

    indices: np.ndarray  # ascending int64 flat indices
    seed: int
    sampled: bool  # False when every component is checked


def resolve_sample_size(sample, n_params: int, n_blocks: int) -> int | None:
    """Number of components to check, or None for all. Validates ``sample``."""
    if sample is None:
        return None
    if isinstance(sample, bool) or not isinstance(sample, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"sample must be None, an int count or a float fraction in (0, 1], "
            f"got {sample!r} ({type(sample).__name__})"
        )
    if isinstance(sample, (float, np.floating)):
        frac = float(sample)
        if not (0.0 < frac <= 1.0) or not np.isfinite(frac):
            raise ValueError(f"sample as a fraction must be in (0, 1], got {sample!r}")
        if frac == 1.0:
            return None
        count = max(int(round(frac * n_params)), n_blocks, 1)
        return None if count >= n_params else count
    count = int(sample)
    if count < 1 or count > n_params:
        raise ValueError(
            f"sample as a count must be between 1 and the number of parameters "
            f"({n_params:,}), got {count}"
        )
    return None if count == n_params else count


def resolve_seed(seed) -> int:
    """The seed actually used: ``seed`` itself, or a fresh one when None."""
    if seed is None:  # 63 bits of OS entropy (numpy's SeedSequence() took ~15 us)
        return int.from_bytes(os.urandom(8), "little") >> 1
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be None or a non-negative int, got {seed!r}")
    return int(seed)


def stratified_counts(block_sizes: np.ndarray, count: int,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """How many components each block gets: at least one per non-empty block,
    the rest proportional to size (largest remainders), never more than the block has.

    With fewer components than non-empty blocks (``sample=3`` on a 6-block network), one
    component each goes to ``count`` distinct blocks drawn with probability proportional
    to their size (``rng``, seeded by the caller).
    """
    sizes = np.asarray(block_sizes, dtype=np.int64)
    nonempty = sizes > 0
    if count < int(np.count_nonzero(nonempty)):
        rng = rng if rng is not None else np.random.default_rng(0)
        chosen = rng.choice(sizes.shape[0], size=count, replace=False,
                            p=sizes / sizes.sum())
        counts = np.zeros(sizes.shape[0], dtype=np.int64)
        counts[chosen] = 1
        return counts
    counts = nonempty.astype(np.int64)
    rest = count - int(counts.sum())
    spare = np.where(nonempty, sizes - 1, 0).astype(np.float64)
    if rest > 0 and spare.sum() > 0:
        share = rest * spare / spare.sum()
        extra = np.floor(share).astype(np.int64)
        left = rest - int(extra.sum())
        if left > 0:
            order = np.argsort(-(share - extra), kind="stable")
            order = order[spare[order] - extra[order] > 0]
            extra[order[:left]] += 1
        counts += np.minimum(extra, spare.astype(np.int64))
    return counts


def choose_components(layout: Layout, sample, seed) -> Sample:
    """All components, or a reproducible stratified random sample of them."""
    sizes = np.diff(layout.bounds)
    n_blocks = int(np.count_nonzero(sizes))
    count = resolve_sample_size(sample, layout.size, n_blocks)
    used_seed = resolve_seed(seed)
    if count is None:
        return Sample(np.arange(layout.size, dtype=np.int64), used_seed, False)
    rng = np.random.default_rng(used_seed)
    counts = stratified_counts(sizes, count, rng)
    parts = []
    for lo, size, k in zip(layout.bounds[:-1], sizes, counts):
        if k > 0:
            parts.append(lo + rng.choice(int(size), size=int(k), replace=False))
    indices = np.sort(np.concatenate(parts).astype(np.int64))
    return Sample(indices, used_seed, True)


def auto_sample_size(n_params: int, confidence: float, target_rate: float) -> int:
    """Components needed for the zero-failure Clopper-Pearson bound to reach ``target_rate``.

    With 0 failures in n draws the one-sided bound is ``1 - (1 - confidence)**(1/n)``.
    """
    need = int(np.ceil(np.log1p(-confidence) / np.log1p(-target_rate)))
    return min(n_params, max(need, 1))


def processing_order(layout: Layout, indices: np.ndarray, seed: int) -> np.ndarray:
    """Positions into ``indices`` in the order to check them when a check may stop early:
    one component of every block first, then the rest in random order (so that whatever
    has been checked when it stops is a random, every-block sample)."""
    rng = np.random.default_rng([seed, 1])
    n = indices.shape[0]
    block = layout.block_of(indices)
    perm = rng.permutation(n)
    _, first_of_block = np.unique(block[perm], return_index=True)
    head = perm[first_of_block]
    rest = np.delete(perm, first_of_block)
    return np.concatenate([head, rest]).astype(np.int64)
