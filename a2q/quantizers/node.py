"""A2Q's per-node quantizer: every node i has a learnable step s_i and a learnable bitwidth b_i.

Forward: bits are rounded (half up) and clamped to [1, 8]; values are ``clamp(round(x/s_i))*s_i``.
Backward: straight through for the rounding of values and bits; the step gets LSQ's gradient from the
task loss; the bit gets its gradient through the clipping range ``qmax(b) * s`` (A2Q, Eq. 4-5).

Local Gradient (A2Q, Sec. 3.3): with ``local_gradient=True`` the task loss does not reach s and b
(they are detached in the forward that feeds the network); instead ``local_loss()`` returns the
quantization error of the last input, ``sum (x_q - x)^2`` (``local_norm="l2"``, our default) or the
paper's ``sum |x_q - x|`` (``"l1"``), weighted per node (``set_error_weight``), and that trains s and b.
The squared error weighs a node's few large features, which carry the task, above its many small
ones; L1 trades them one for one and clips them (docs/training.md has the measurements). Most nodes
receive almost no task gradient (they aggregate little), so this is what lets them learn. For this
loss the step's derivative is the exact one of the piecewise function, ``q`` (the rounding held
fixed), not LSQ's ``q - v``: LSQ pretends x_q tracks x, which for an error that is
to be minimised drives the step down into clipping.
"""
from __future__ import annotations

import torch
from torch import nn

from a2q import fixedpoint as fp

from .ste import clip, fake_quant, qrange, round_half_up_ste

#: The bit parameter stays in [BIT_MIN, BIT_MAX] so that its rounding stays in [1, 8].
BIT_MIN, BIT_MAX = fp.MIN_NODE_BITS - 0.49, fp.MAX_NODE_BITS + 0.49
#: Norms of the Local Gradient's quantization error: l1 is the paper's |x_q - x|; l2 is (x_q - x)^2
LOCAL_NORMS = ("l1", "l2")
#: Relative tolerance of "represented exactly" in the bit initialisation.
EXACT_TOL = 1e-4


def _top(bits: torch.Tensor, signed: bool) -> torch.Tensor:
    """The larger end of a b-bit code's magnitude: 2^b - 1 unsigned, 2^(b-1) signed."""
    qmin, qmax = qrange(bits, signed)
    return -qmin if signed else qmax


def _round_bits(bits: torch.Tensor) -> torch.Tensor:
    """The integer width a bit parameter stands for: round half up, clamp to [1, 8]."""
    return torch.clamp(torch.floor(bits + 0.5), fp.MIN_NODE_BITS, fp.MAX_NODE_BITS)


class NodeQuantizer(nn.Module):
    def __init__(self, num_nodes: int, signed: bool = False, init_bits: float = 4.0,
                 local_gradient: bool = True, exact_init: bool = True, local_norm: str = "l2"):
        super().__init__()
        if local_norm not in LOCAL_NORMS:
            raise ValueError(f"local_norm must be one of {LOCAL_NORMS}, got {local_norm!r}")
        self.local_norm = local_norm
        self.num_nodes, self.signed, self.init_bits = num_nodes, signed, float(init_bits)
        self.local_gradient, self.exact_init = local_gradient, exact_init
        # log-space step: steps span decades (1/rowsum of a bag of words ~0.05, hidden features ~1),
        # so Adam moves each by the same relative amount
        self.log_step = nn.Parameter(torch.zeros(num_nodes))
        self.bits = nn.Parameter(torch.full((num_nodes,), self.init_bits))
        self.register_buffer("last_bits", _round_bits(torch.full((num_nodes,), self.init_bits)))
        self.register_buffer("initialised", torch.tensor(False))
        # per-node weight of the local error: how much of node i's error reaches the next aggregation
        # (``set_error_weight``); ones = A2Q's plain Local Gradient
        self.register_buffer("error_weight", torch.ones(num_nodes))
        #: rows whose codes are all 0 give their step LSQ's surrogate gradient -x/s in the Local
        #: Gradient, not the exact q = 0 (which strands a step the row's values have fallen below)
        self.zero_row_grad = False
        self._local = None

    @torch.no_grad()
    def set_error_weight(self, weight: torch.Tensor) -> None:
        """Weight node i's |x_q - x| by ``weight[i]``, normalised to mean 1."""
        self.error_weight.copy_(weight / weight.mean().clamp_min(1e-12))

    @property
    def step(self) -> torch.Tensor:
        return self.log_step.exp()

    def int_bits(self) -> torch.Tensor:
        """Bits used in the forward pass: round half up, clamp to [1, 8], straight-through."""
        return round_half_up_ste(torch.clamp(self.bits, fp.MIN_NODE_BITS, fp.MAX_NODE_BITS))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Each node's range fitted to its row: the smallest step that codes the row without clipping.
        With ``exact_init`` a node whose row a narrower code represents exactly (a row-normalised bag of
        words at one bit) starts at the narrowest such width: lossless there at no memory cost."""
        b0 = float(_round_bits(torch.tensor(self.init_bits)))
        bits = torch.full((self.num_nodes,), b0)
        step = self._fitted_step(x, b0)
        if self.exact_init:
            done = torch.zeros(self.num_nodes, dtype=torch.bool)
            for b in range(fp.MIN_NODE_BITS, int(b0)):
                s = self._fitted_step(x, float(b))
                v = x / s[:, None]
                exact = ((v - torch.round(v)).abs() <= EXACT_TOL).all(dim=1) & torch.isfinite(s) & ~done
                bits[exact], step[exact] = float(b), s[exact]
                done |= exact
        # a signed one-bit code has no positive value: fall back to the magnitude at the negative end
        step = torch.where(torch.isfinite(step), step, x.abs().amax(dim=1).clamp_min(1e-12) / _top(bits, self.signed))
        self.log_step.copy_(step.log())
        self.bits.copy_(bits)
        self.last_bits.copy_(bits)
        self.initialised.fill_(True)

    def _fitted_step(self, x: torch.Tensor, bits: float) -> torch.Tensor:
        """Per row, the smallest step whose ``bits``-wide code spans the row's largest positive and most
        negative value (inf where the code has no room for them; 1 for an all-zero row)."""
        qmin, qmax = qrange(torch.tensor(bits), self.signed)
        pos, neg = x.clamp_min(0).amax(dim=1), (-x).clamp_min(0).amax(dim=1)
        inf = torch.full_like(pos, float("inf"))
        s_pos = pos / qmax if qmax > 0 else torch.where(pos > 0, inf, torch.zeros_like(pos))
        s_neg = neg / -qmin if qmin < 0 else torch.where(neg > 0, inf, torch.zeros_like(neg))
        s = torch.maximum(s_pos, s_neg)
        return torch.where(s > 0, s, torch.ones_like(s))

    @torch.no_grad()
    def clamp_(self) -> None:
        """After an optimizer step: keep b in range, and keep each node's range ``s * top(b)`` where it
        was when its integer bits changed. Otherwise a bit that drops clips until the step has grown,
        the clipping error pushes the bit straight back up, and nodes never leave their first width."""
        self.bits.clamp_(BIT_MIN, BIT_MAX)
        new = _round_bits(self.bits)
        changed = new != self.last_bits
        if bool(changed.any()) and bool(self.initialised):
            ratio = _top(self.last_bits, self.signed) / _top(new, self.signed)
            self.log_step.add_(torch.where(changed, ratio.log(), torch.zeros_like(ratio)))
        self.last_bits.copy_(new)

    def _quant(self, x, log_step, bits, rows=None, exact_step_grad=False):
        qmin, qmax = qrange(bits, self.signed)
        step = log_step.exp()
        if rows is not None:
            step, qmin, qmax = step[rows], qmin[rows], qmax[rows]
        else:
            step, qmin, qmax = step[:, None], qmin[:, None], qmax[:, None]
        if not exact_step_grad:
            return fake_quant(x, step, qmin, qmax)
        # rounding held fixed: d x_q / d s = q, and the bits' gradient comes through qmin/qmax
        return clip(torch.floor(x / step + 0.5).detach(), qmin, qmax) * step

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Quantize dense x [N, F]; or, with ``rows``, the non-zero values x[k] of node ``rows[k]`` of a
        sparse input (zeros quantize to zero exactly, so they can be skipped)."""
        if rows is None and x.shape[0] != self.num_nodes:
            raise ValueError(f"NodeQuantizer has {self.num_nodes} nodes, the input has {x.shape[0]} rows")
        if not bool(self.initialised):
            if rows is not None:
                raise RuntimeError("initialise a NodeQuantizer from the dense input first (init_from)")
            self.init_from(x)
        bits = self.int_bits()
        self._local = None
        if not (self.local_gradient and self.training):
            return self._quant(x, self.log_step, bits, rows)
        xd = x.detach()
        diff = self._quant(xd, self.log_step, bits, rows, exact_step_grad=True) - xd
        if self.zero_row_grad:
            diff = diff + self._zero_row_surrogate(xd, rows)
        # an exactly represented value leaves a float residual (~1e-9 of x/s = 1.0000001); Adam scales
        # even that to a full step, so such errors count as zero (GIN-Cora: half the one-bit inputs clipped)
        step = self.step.detach()[rows] if rows is not None else self.step.detach()[:, None]
        err = (diff * (diff.detach().abs() > EXACT_TOL * step)).abs()
        if self.local_norm == "l2":
            err = err ** 2
        w = self.error_weight[rows] if rows is not None else self.error_weight[:, None]
        self._local = (err * w).sum()
        return self._quant(x, self.log_step.detach(), bits.detach(), rows)

    def _zero_row_surrogate(self, xd: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Zero in value; d/ds = -x/s on the rows whose codes are all 0 (max |x| rounds to 0)."""
        step = self.step
        sd = step.detach()
        if rows is None:   # dense [N, F]: a node's values are its row
            amax = xd.abs().amax(1) if xd.shape[1] else xd.new_zeros(len(xd))
            per_value = lambda v: v[:, None]  # noqa: E731
        else:              # sparse: value k belongs to node rows[k]
            amax = xd.new_zeros(self.num_nodes).scatter_reduce(0, rows, xd.abs(), "amax")
            per_value = lambda v: v[rows]  # noqa: E731
        dead = (torch.floor(amax / sd + 0.5) == 0).to(xd.dtype)
        return -(xd / per_value(sd)) * per_value(dead) * per_value(step - sd)

    def local_loss(self) -> torch.Tensor | None:
        return self._local

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes ``clamp(floor(x/s + 0.5))`` of x (what the accelerator is given)."""
        qmin, qmax = qrange(self.int_bits(), self.signed)
        step = self.step[:, None]
        return clip(torch.floor(x / step + 0.5), qmin[:, None], qmax[:, None]).long()

    def export(self) -> dict:
        return {"in_step": self.step.detach().double().numpy(),
                "in_bits": self.int_bits().detach().long().numpy(), "in_signed": self.signed}
