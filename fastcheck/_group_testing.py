"""Group testing along one random direction: which components explain its failure.

Used by ``directional.run_directional`` (its module docstring describes the method). A
failing group is split into its parts (the blocks, then halves) and each part tested along
the same signs; failing parts are followed depth first down to groups of ``LEAF_SIZE``,
which are checked one by one with the full check's test (``directional._Components``).

A failed group that no part explains. A group may fail while every part passes: an
error spread thinly, errors that cancel, or a part whose relative tolerance is larger
than the group's (``g . d`` cancels along the group but not along the part). Then, in
turn: the parts are tested once more with fresh random signs; if still none fails, the
group is *lost*: its parts are ranked by their share of its residual (the residuals along
the same signs, rescaled, add up to the group's: the derivative is linear in ``d``), the
part carrying at least half of it has its block flagged, and the group is checked one by
one, that part first, within ``2 *`` its size and the budget (``Localizer.fallback``),
until a part ends with a failure confirmed. The caller checks the flagged blocks the same
way when every failed direction is followed and nothing is confirmed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from . import _verdict

if TYPE_CHECKING:
    from .directional import _Components, _Lines, _Test

__all__ = ["LEAF_SIZE", "MAX_FAILURES_PER_BLOCK", "MAX_LOCALIZE_EVALUATIONS", "FALLBACK_CHUNK",
           "Localization", "Fallback", "Lost", "Localizer", "rademacher"]

#: Groups of at most this many components are checked component by component.
LEAF_SIZE = 8
#: Localization in a block stops once this many of its components are confirmed failing
#: (checked before each leaf, so a block may end with up to LEAF_SIZE - 1 more): the error
#: is then spread over the block, and a full check of the block lists them all.
MAX_FAILURES_PER_BLOCK = 8
#: Cost evaluations the localization may spend after the K directions (group tests and the
#: one-by-one checks alike; a last chunk's re-examinations may go a little over).
MAX_LOCALIZE_EVALUATIONS = 2000
#: A lost group is checked one by one in chunks of at most this many components.
FALLBACK_CHUNK = 64

FAILED = (_verdict.FAIL, _verdict.NONFINITE)


@dataclasses.dataclass
class Localization:
    """What group testing found, over the directions followed."""

    flagged: set = dataclasses.field(default_factory=set)  # blocks whose group test failed
    capped: set = dataclasses.field(default_factory=set)  # blocks where the cap stopped it
    lost: list = dataclasses.field(default_factory=list)  # Lost: no part failed
    kinks_left: int = 0  # kink groups not followed (a kink already located in the block)
    out_of_budget: bool = False
    retested: int = 0  # failing groups whose parts all passed, tested again with new signs
    rescued: int = 0  # ... of which a part then failed
    #: the lost groups checked one by one (``Localizer.fallback``): one Fallback each
    fallbacks: list = dataclasses.field(default_factory=list)
    #: then, nothing confirmed after every direction, the flagged blocks: one each
    block_checks: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Fallback:
    """A lost group checked component by component: how far it got."""

    lo: int
    hi: int
    checked: int  # components checked one by one here
    failed: int  # ... of which confirmed failing
    skipped: int  # components in a block that already had a confirmed failure
    before: int  # components already checked one by one (leaves, earlier groups)
    #: components left unchecked: the budget, the cap per block, or a part before them
    #: explained the group with a confirmed failure
    left: int


@dataclasses.dataclass(frozen=True)
class Lost:
    """A failing group none of whose parts failed, even with fresh signs.

    ``parts`` ordered by their share of the group's residual along the signs that failed
    it (the part carrying most of the discrepancy first: checked first by ``fallback``);
    ``carrier`` the first part when it carries at least half of it, else None.
    """

    lo: int
    hi: int
    parts: tuple
    carrier: tuple | None


def parts(lo: int, hi: int) -> list[tuple[int, int]]:
    mid = (lo + hi) // 2
    return [(lo, mid), (mid, hi)]


class Localizer:
    """Adaptive group testing along one direction: blocks, then halves, depth first.

    Failing groups are followed first. When every part (block or half) of a failing group
    passes, the parts are tested once more with fresh random signs (an error may cancel
    against the gradient along one sign vector, or fall just under a part's tolerance);
    if still none fails the group is *lost*, and ``fallback`` checks it component by
    component. A group whose test ends on a kink may hide a bug next to the kink, so it is
    followed too, once every failing group is done, until one kink is located in its
    block (then the rest of that block's kink groups are skipped).

    Stacks hold ``(lo, hi, u, test)``: ``u`` the signs on ``lo:hi`` (a view of the
    direction's, or of the fresh ones drawn for a retest) and ``test`` the group's own
    test along them (whose residual a lost group shares out among its parts).
    """

    def __init__(self, lines: _Lines, components: _Components, rng: np.random.Generator,
                 stop_at: int, found: Localization):
        self.lines = lines
        self.components = components  # checks flat indices one by one -> kinds
        self.rng = rng  # fresh signs for retests, the sample of a fallback
        self.stop_at = stop_at  # no new test once spent() reaches this
        self.layout = lines.problem.layout
        self.found = found
        self.fails_in_block = np.zeros(len(self.layout), dtype=np.int64)
        self.kinks_in_block = np.zeros(len(self.layout), dtype=np.int64)
        self.failing: list = []  # stacks of (lo, hi, u, test): depth first
        self.kinked: list = []

    def spent(self) -> int:
        """Evaluations of the directional tests and of the one-by-one checks so far."""
        return self.lines.evaluations + self.components.evaluations

    def _push(self, groups, u: np.ndarray, lo: int) -> list[_Test]:
        """Test ``groups`` (signs ``u`` starting at ``lo``); stack the failing and kinked."""
        entries = [(a, b, u[a - lo:b - lo], self.lines.test(a, b, u[a - lo:b - lo]))
                   for a, b in groups]
        for entry in reversed(entries):  # the first group on top of its stack
            if entry[3].failed:
                self.failing.append(entry)
            elif entry[3].kind == _verdict.KINK:
                self.kinked.append(entry)
        return [entry[3] for entry in entries]

    def _split(self, lo: int, hi: int, u: np.ndarray, parts, parent: _Test) -> None:
        """Test the parts of group ``lo:hi``; if a failing group's all pass, see ``Lost``."""
        tests = self._push(parts, u, lo)
        if not parent.failed or any(t.kind != _verdict.OK for t in tests):
            return
        if self.spent() >= self.stop_at:
            self.found.out_of_budget = True
        else:
            self.found.retested += 1
            again = self._push(parts, rademacher(self.rng, hi - lo), lo)
            if any(t.failed for t in again):
                self.found.rescued += 1
                return
        # the parts' residuals along the same signs, in the parent's scale, add up to the
        # parent's residual (the derivative is linear in d): rank the parts by their share
        r = parent.analytic - parent.numeric
        shares = [math.copysign(1.0, r) * math.sqrt((b - a) / (hi - lo))
                  * (t.analytic - t.numeric) for (a, b), t in zip(parts, tests)]
        order = sorted(range(len(parts)), key=lambda k: -shares[k])
        carrier = parts[order[0]] if shares[order[0]] >= abs(r) / 2 else None
        if carrier is not None:  # its block is where the discrepancy sits: flag it
            self.found.flagged.add(int(self.layout.block_of(carrier[0])))
        self.found.lost.append(Lost(lo, hi, tuple(parts[k] for k in order), carrier))

    def run(self, whole: _Test, u: np.ndarray) -> None:
        """Localize along the direction of signs ``u`` whose whole-vector test is ``whole``."""
        bounds = self.layout.bounds
        blocks = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        if len(blocks) == 1:  # the whole-vector test already was this block's test
            (self.failing if whole.failed else self.kinked).append((*blocks[0], u, whole))
        else:
            self._split(0, self.layout.size, u, blocks, whole)
        self.found.flagged.update(int(self.layout.block_of(g[0])) for g in self.failing)
        while self.failing or self.kinked:
            failing = bool(self.failing)
            lo, hi, s, test = (self.failing if failing else self.kinked).pop()
            block = int(self.layout.block_of(lo))
            if failing and self.fails_in_block[block] >= MAX_FAILURES_PER_BLOCK:
                self.found.capped.add(block)
                continue
            if not failing and self.kinks_in_block[block] > 0:
                self.found.kinks_left += 1
                continue
            if self.spent() >= self.stop_at:
                self.found.out_of_budget = self.found.out_of_budget or failing
                continue
            if hi - lo <= LEAF_SIZE:
                self._check(np.arange(lo, hi, dtype=np.int64))
                continue
            self._split(lo, hi, s, parts(lo, hi), test)

    def _check(self, indices: np.ndarray) -> None:
        kinds = self.components(indices)
        blocks = self.layout.block_of(indices)
        np.add.at(self.fails_in_block, blocks[np.isin(kinds, FAILED)], 1)
        np.add.at(self.kinks_in_block, blocks[kinds == _verdict.KINK], 1)

    def fallback(self, lost: list[Lost], records: list) -> None:
        """Check the ``lost`` groups component by component, the smallest group first.

        Within a group: components not checked yet, in blocks with no confirmed failure
        (a failing block is already named), part by part, the part carrying most of the
        group's residual first, until a part ends with a failure confirmed in the group
        (the discrepancy has its explanation). At most one full-check evaluation pair per
        component within the smaller of ``2 * group size`` and what is left of the budget
        (re-examinations count against it), in chunks of ``FALLBACK_CHUNK``; each block
        stops at ``MAX_FAILURES_PER_BLOCK`` failures. When the budget cannot cover a part,
        its components are taken in a seeded random order (a uniform sample). One
        ``Fallback`` per group is appended to ``records``.
        """
        for group in sorted(lost, key=lambda g: (g.hi - g.lo, g.lo)):
            lo, hi = group.lo, group.hi
            idx = np.arange(lo, hi, dtype=np.int64)
            seen = np.isin(idx, np.fromiter(self.components.results, np.int64))
            free = self.fails_in_block[self.layout.block_of(idx)] == 0
            todo = idx[~seen & free]
            short = todo.size > min(2 * (hi - lo), self.stop_at - self.spent()) // 2
            parts = [todo[(todo >= a) & (todo < b)] for a, b in group.parts]
            if short:
                parts = [self.rng.permutation(part) for part in parts]
            start = self.components.evaluations
            checked = failed = 0
            for part in parts:
                if failed:
                    break
                pos = 0
                while pos < part.size:
                    room = min(2 * (hi - lo) - (self.components.evaluations - start),
                               self.stop_at - self.spent()) // 2
                    if room <= 0:
                        self.found.out_of_budget = True
                        break
                    chunk = part[pos:pos + min(FALLBACK_CHUNK, room)]
                    pos += chunk.size
                    capped = self.fails_in_block[self.layout.block_of(chunk)] \
                        >= MAX_FAILURES_PER_BLOCK
                    if capped.all():
                        self.found.capped.update(
                            int(b) for b in np.unique(self.layout.block_of(chunk)))
                        break
                    chunk = chunk[~capped]
                    before = int(self.fails_in_block.sum())
                    self._check(chunk)
                    checked += chunk.size
                    failed += int(self.fails_in_block.sum()) - before
            records.append(Fallback(
                lo, hi, checked=checked, failed=failed, skipped=int(np.count_nonzero(~free)),
                before=int(np.count_nonzero(seen & free)), left=todo.size - checked))


def rademacher(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.integers(0, 2, size=n, dtype=np.int8).astype(np.float64)
    u *= 2.0
    u -= 1.0
    return u
