"""A2Q's Nearest Neighbour Strategy (NNS): a pool of m learned (step, bits) pairs per quantized layer.

Graph-level tasks test on graphs never seen in training, so their nodes cannot own learned parameters.
Instead every layer holds a pool of m pairs and each row (node, or pooled graph) takes the pair whose
clipping range is nearest to the row's max |x|. The range of a pair is the largest value its code
represents: ``step * (2^(bits-1) - 1)`` for a signed code, ``step * (2^bits - 1)`` for an unsigned one.

**The selection** (``nns_select``) is the one function the hardware will have to reproduce. With the m
ranges sorted ascending, ``r_0 <= ... <= r_{m-1}``, the decision thresholds are the midpoints
``t_k = (r_k + r_{k+1}) / 2`` and a row with max |x| = v takes pair ``#{k : t_k < v}``: the number of
thresholds strictly below v. **Tie rule: a row exactly at a midpoint takes the lower-range pair**
(and of equal ranges, the one first in the sorted order, i.e. the lower pool index). In the integer
domain this is ``m - 1`` comparisons of the row's integer max |code| against integer thresholds.

**Why the selection need not be differentiable.** It is a function of the data and of the pool, used
like an index (as in the official code's argmin). The pool's steps and bits are trained through the
quantization itself: the rows that chose pair k contribute their Local Gradient error to (s_k, b_k),
and their bits to the memory penalty, so a pair drifts toward the rows that use it (a k-means-like
update). When a pair's range moves past a midpoint the rows re-select it on the next forward. A soft
(softmin) selection would let gradient flow into the choice too, but it would mix ranges during
training that inference never uses.

**Default m = 16.** Bits take 8 values; 16 pairs give every width about two ranges, and with the pool
initialised at 16 quantiles of the rows' max |x| the range grid is about 1/16 of the distribution
apart, fine enough that the nearest range wastes little of a code. More pairs each see fewer rows
per batch (noisier updates), and the accelerator pays m - 1 threshold comparisons and m (step, bits)
entries per layer. The official code uses 1000 pairs split by degree buckets; we select by range only.
"""
from __future__ import annotations

import torch

from .fused import fused_local_fake_quant
from .node import NodeQuantizer, _round_bits
from .ste import clip, fake_quant, qrange

DEFAULT_POOL = 16
#: A selected pair that quantizes fewer than this fraction of its rows to any non-zero code is dead
#: (``NNSQuantizer.reseed_dead_``).
DEAD_LIVE_FRACTION = 0.01


def pair_ranges(step: torch.Tensor, bits: torch.Tensor, signed: bool) -> torch.Tensor:
    """The largest representable value of each (step, integer bits) pair."""
    _, qmax = qrange(bits, signed)
    return step * qmax


def nns_select(row_max: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
    """Index (into ``ranges``) of the pair whose range is nearest each ``row_max``.

    Ties (a row exactly half-way between two ranges, or equal ranges) go to the lower range, then the
    lower index. Vectorised: sort the m ranges, compare each row with the m-1 midpoints.
    """
    order = torch.argsort(ranges, stable=True)
    r = ranges[order]
    mid = (r[1:] + r[:-1]) / 2
    pos = torch.searchsorted(mid.contiguous(), row_max.contiguous(), right=False)  # #{mid < v}
    return order[pos]


@torch.no_grad()
def row_extremes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(min, max, max |x|) of every row: two reductions, ~7x faster on one thread than the inf-norm
    (``linalg.vector_norm(x, inf, dim=1)``), whose value ``max(max, -min)`` equals exactly."""
    x = x.detach()
    if x.shape[1] == 0:
        z = x.new_zeros(x.shape[0])
        return z, z, z
    lo, hi = x.amin(1), x.amax(1)
    return lo, hi, torch.maximum(hi, -lo)


class NNSQuantizer(NodeQuantizer):
    """Pool of ``pool`` (log step, bits) pairs; a row takes the pair chosen by ``nns_select``.

    Reuses ``NodeQuantizer``'s parameters (one per pool pair instead of per node), its bit rounding,
    and its ``clamp_`` (a pair whose integer bits change keeps its range).
    """

    def __init__(self, pool: int = DEFAULT_POOL, signed: bool = False, init_bits: float = 4.0,
                 local_gradient: bool = True, local_norm: str = "l2"):
        if pool < 1:
            raise ValueError(f"the NNS pool needs at least one (step, bits) pair, got {pool}")
        super().__init__(pool, signed, init_bits, local_gradient, exact_init=False, local_norm=local_norm)
        self.pool = pool
        #: count each pair's rows for ``reseed_dead_`` (off when the trainer does not reseed)
        self.track_usage = True
        self._row_weight = None
        self.last_selection: torch.Tensor | None = None
        self._row_bits: torch.Tensor | None = None
        self._exported: tuple[torch.Tensor, torch.Tensor] | None = None  # (real thresholds, sorted order)
        self._reset_usage()

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Pool ranges at the (k + 1/2)/m quantiles of the rows' max |x| (the non-zero rows), all at the
        initial bits."""
        v = x.detach().abs().amax(dim=1)
        v = v[v > 0]
        if v.numel() == 0:
            v = torch.ones(1)
        q = (torch.arange(self.pool, dtype=torch.float32) + 0.5) / self.pool
        ranges = torch.quantile(v[:1_000_000].float(), q).clamp_min(1e-8)
        bits = _round_bits(torch.full((self.pool,), self.init_bits))
        _, qmax = qrange(bits, self.signed)
        self.log_step.copy_((ranges / qmax.clamp_min(1)).log())
        self.bits.copy_(bits)
        self.last_bits.copy_(bits)
        self.initialised.fill_(True)

    def set_row_weight(self, weight: torch.Tensor | None) -> None:
        """Weight of each row's error in the Local Gradient for the next forward (normalised to mean 1)."""
        self._row_weight = None if weight is None else weight / weight.mean().clamp_min(1e-12)

    def sorted_order(self) -> torch.Tensor:
        """Pool indices sorted by range (stable): the order of an exported pool."""
        with torch.no_grad():
            return torch.argsort(pair_ranges(self.step, _round_bits(self.bits), self.signed), stable=True)

    @torch.no_grad()
    def set_thresholds(self, thr: torch.Tensor | None, tau: float | None = None) -> None:
        """Select with an exported program's integer thresholds from now on (``None``: back to the float
        midpoints). ``thr`` are the m-1 thresholds of the pool sorted by range, in units of ``tau`` (the
        previous layer's channel scale): a row takes sorted pair ``#{t : max|x| >= (thr[t] + 1/2) tau}``,
        the decision of the integer ``#{t : thr[t] < v}`` when ``max|x| / tau`` rounds (half up) to v
        (docs/arithmetic.md, "NNS selection")."""
        if thr is None:
            self._exported = None
            return
        thr = torch.as_tensor(thr, dtype=torch.float64)
        if thr.numel() != self.pool - 1:
            raise ValueError(f"a pool of {self.pool} pairs needs {self.pool - 1} thresholds, got {thr.numel()}")
        self._exported = ((thr + 0.5) * float(tau), self.sorted_order())

    def select(self, x: torch.Tensor, row_max_abs: torch.Tensor | None = None) -> torch.Tensor:
        """The pool index of every row of x (``row_max_abs``: its max |x| per row, if already known)."""
        with torch.no_grad():
            v = row_extremes(x)[2] if row_max_abs is None else row_max_abs
            if self._exported is not None:
                thr, order = self._exported
                return order[(v.double()[:, None] >= thr[None, :]).sum(dim=1)]
            ranges = pair_ranges(self.step, _round_bits(self.bits), self.signed)
            return nns_select(v, ranges)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        if rows is not None:
            raise ValueError("NNSQuantizer quantizes dense rows only")
        if not bool(self.initialised):
            self.init_from(x)
        row_min, row_max, row_abs = row_extremes(x)
        sel = self.select(x, row_abs)
        self.last_selection = sel
        bits = self.int_bits()
        self._row_bits = bits[sel]
        qmin, qmax = qrange(bits, self.signed)
        self._local = None
        if self.training and self.track_usage:
            self._count_usage(sel, row_abs)
        if not (self.local_gradient and self.training):
            return fake_quant(x, self.step[sel][:, None], qmin[sel][:, None], qmax[sel][:, None])
        n = max(len(x), 1)
        w = self._row_weight if self._row_weight is not None and len(self._row_weight) == len(x) \
            else torch.ones(len(x))
        # mean over rows: a batch's size must not scale the local loss
        xq, self._local = fused_local_fake_quant(x, self.step[sel][:, None], qmin[sel][:, None],
                                                 qmax[sel][:, None], (w / n)[:, None], self.local_norm,
                                                 row_min[:, None], row_max[:, None], self.zero_row_grad)
        return xq

    # -- dead pairs -------------------------------------------------------------------------------------
    def _reset_usage(self) -> None:
        """Per pair, since the last ``reseed_dead_``: rows that selected it, rows it quantized to a
        non-zero code, and the sum of log max|x| of its non-zero rows."""
        self._rows = torch.zeros(self.pool, dtype=torch.float64)
        self._live = torch.zeros(self.pool, dtype=torch.float64)
        self._log_max = torch.zeros(self.pool, dtype=torch.float64)
        self._pos = torch.zeros(self.pool, dtype=torch.float64)

    @torch.no_grad()
    def _count_usage(self, sel: torch.Tensor, row_abs: torch.Tensor) -> None:
        live = row_abs >= self.step[sel] / 2     # the row's largest |x| rounds to a non-zero code
        pos = row_abs > 0
        self._rows += torch.bincount(sel, minlength=self.pool).double()
        self._live += torch.bincount(sel[live], minlength=self.pool).double()
        self._log_max.index_add_(0, sel[pos], row_abs[pos].double().log())
        self._pos += torch.bincount(sel[pos], minlength=self.pool).double()

    @torch.no_grad()
    def reseed_dead_(self, live_fraction: float = DEAD_LIVE_FRACTION) -> int:
        """Move every *dead* pair back to its rows: a pair that rows selected since the last call but
        that quantized fewer than ``live_fraction`` of them to any non-zero code gets the range of those
        rows' geometric-mean max |x| (its bits kept). Returns the number of pairs moved.

        Why: with the exact step derivative, a row whose codes are all 0 gives its pair's step no Local
        Gradient (d(q s)/ds = q = 0). A pair whose range the data leave behind (activations shrink as
        training goes on; a bit cut keeps the range, so the step grows) can then never come back, and
        every row it serves carries only zeros to the next layer: a dead layer (REDDIT-BINARY GIN at 100
        epochs, docs/training.md). Unselected pairs cost nothing and are left alone."""
        dead = ((self._pos > 0) & (self._live < live_fraction * self._rows)).nonzero().flatten()
        if dead.numel():   # all-zero rows (max |x| = 0) have nothing to fit a range to
            rng = torch.exp(self._log_max[dead] / self._pos[dead]).float()
            _, qmax = qrange(_round_bits(self.bits[dead]), self.signed)
            self.log_step[dead] = (rng / qmax.clamp_min(1)).log()
        self._reset_usage()
        return int(dead.numel())

    def row_bits(self) -> torch.Tensor:
        """Integer bits of the rows of the last forward (differentiable in the pool's bits)."""
        if self._row_bits is None:
            raise RuntimeError("row_bits() before any forward")
        return self._row_bits

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        sel = self.select(x)
        qmin, qmax = qrange(self.int_bits(), self.signed)
        return clip(torch.floor(x / self.step[sel][:, None] + 0.5), qmin[sel][:, None], qmax[sel][:, None]).long()

    def export(self) -> dict:
        return {"pool_step": self.step.detach().double().numpy(),
                "pool_bits": self.int_bits().detach().long().numpy(), "in_signed": self.signed}
