"""A2Q per-node feature quantizer: a learnable step ``s_i`` and a continuous bitwidth ``b_i`` per node.

Forward and gradients are those of :func:`a2q.quant.fake_quant.fake_quantize` with ``s_i, b_i`` broadcast
over the node's features. Two training modes:

* task gradient (``local_grad=False``): ``s`` and ``b`` receive the gradient of the training loss;
The step is stored as ``log_step`` (see :attr:`step`).

* Local Gradient (A2Q paper, node-level tasks; the default): ``s`` and ``b`` are trained on the L1
  quantization error of each node, ``sum_f |x_q[i, f] - x[i, f]|``, computed on the detached features and
  exposed as :attr:`local_loss` after each training forward (the step's in-range derivative is then the
  exact ``q`` instead of LSQ's ``q - v``, see :mod:`.fake_quant`); the task gradient still reaches ``x``
  through the straight-through estimator but not ``s`` or ``b``. Node ``i``'s error may be weighted by
  ``error_weight[i]`` (:meth:`set_error_weight`; the GCN model sets it to how much of node ``i``'s
  features its layer's aggregation passes on, see :mod:`a2q.models`).

The step is initialised on the first training forward from the data (``max_f |x[i, f]| / qmax(b_init)``,
nodes whose features are all zero take the median step of the others), and the memory penalty acts on
:meth:`bits_ste`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..fixedpoint import MAX_NODE_BITS, MIN_NODE_BITS
from .fake_quant import fake_quantize, quant_range, quantize_int, round_bits

#: The bit parameter is kept in [BIT_PARAM_MIN, BIT_PARAM_MAX] so floor(b + 0.5) stays in [1, 8].
BIT_PARAM_MIN, BIT_PARAM_MAX = MIN_NODE_BITS - 0.49, MAX_NODE_BITS + 0.49
STEP_MIN = 1e-8
#: Relative tolerance of "exactly representable" in the bit initialisation.
EXACT_TOL = 1e-4


def row_absmax(x: torch.Tensor, rows: torch.Tensor | None = None, num_rows: int | None = None) -> torch.Tensor:
    """``max_f |x[i, f]|`` per row; with ``rows``, ``x`` holds the non-zero entries of rows ``rows``."""
    if rows is None:
        return x.detach().abs().amax(dim=1)
    out = torch.zeros(num_rows, dtype=x.dtype)
    return out.scatter_reduce(0, rows, x.detach().abs(), reduce="amax", include_self=True)


def init_steps(x: torch.Tensor, qmax: float, rows: torch.Tensor | None = None,
               num_rows: int | None = None) -> torch.Tensor:
    """Per-row ``max|x| / qmax``; all-zero rows take the median of the others (1/qmax if none)."""
    m = row_absmax(x, rows, num_rows)
    pos = m > 0
    fill = m[pos].median() if bool(pos.any()) else torch.tensor(1.0, dtype=x.dtype)
    return torch.where(pos, m, fill) / qmax


class NodeQuantizer(nn.Module):
    """Per-node learnable step and bitwidth (A2Q). ``signed`` selects the two's complement range."""

    def __init__(self, num_nodes: int, signed: bool = False, init_bits: float = 4.0, local_grad: bool = True,
                 rescale_on_bit_change: bool = True, exact_init: bool = True):
        super().__init__()
        self.num_nodes, self.signed, self.init_bits, self.local_grad = num_nodes, bool(signed), init_bits, local_grad
        self.rescale_on_bit_change, self.exact_init = rescale_on_bit_change, exact_init
        self.register_buffer("error_weight", torch.ones(num_nodes))
        self.register_buffer("last_bits", round_bits(torch.full((num_nodes,), float(init_bits))))
        self.log_step = nn.Parameter(torch.zeros(num_nodes))
        self.bits = nn.Parameter(torch.full((num_nodes,), float(init_bits)))
        self.register_buffer("initialized", torch.tensor(False))
        self.local_loss: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, signed={self.signed}, local_grad={self.local_grad}"

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """``s = max|x_i| / qmax(b_init)``; with ``exact_init``, a node whose row is represented exactly
        by fewer bits (``x_i / (max|x_i| / qmax(b))`` all integers, e.g. a row-normalised bag of words at
        one bit) starts at the smallest such ``b``: its features are lossless there at no memory cost."""
        b0 = int(round_bits(torch.tensor(float(self.init_bits))))
        bits = torch.full((self.num_nodes,), float(b0))
        steps = init_steps(x, float(quant_range(torch.tensor(float(b0)), self.signed)[1]), rows, self.num_nodes)
        if self.exact_init:
            m = row_absmax(x, rows, self.num_nodes)
            done = torch.zeros(self.num_nodes, dtype=torch.bool)
            for b in range(1, b0):
                qmax = float(quant_range(torch.tensor(float(b)), self.signed)[1])
                s = torch.where(m > 0, m / qmax, torch.ones_like(m))
                v = x.detach() / (s[:, None] if rows is None else s[rows])
                bad = ((v - torch.round(v)).abs() > EXACT_TOL).to(torch.float32)
                bad_rows = bad.amax(dim=1) if rows is None else torch.zeros(self.num_nodes).index_add_(0, rows, bad)
                ok = (bad_rows == 0) & ~done
                done |= ok
                bits = torch.where(ok, torch.full_like(bits, float(b)), bits)
                steps = torch.where(ok & (m > 0), s, steps)
        self.log_step.copy_(steps.clamp_min(STEP_MIN).log())
        self.bits.copy_(bits)
        self.last_bits.copy_(round_bits(bits))
        self.initialized.fill_(True)

    @torch.no_grad()
    def set_error_weight(self, weight: torch.Tensor) -> None:
        """Per-node weight of the Local Gradient's L1 error, normalised to mean 1 (ones: plain A2Q)."""
        self.error_weight.copy_(weight / weight.mean().clamp_min(1e-12))

    @property
    def step(self) -> torch.Tensor:
        """``s = exp(log_step)``: the step is learned in log space, so Adam moves steps that span decades
        (1/rowsum ~ 0.05 of a bag of words, hidden features ~ 1) by the same relative amount. The
        gradient reaching ``log_step`` is ``s * dL/ds`` with the LSQ ``dL/ds`` of :mod:`.fake_quant`."""
        return self.log_step.exp()

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Quantize ``x [N, F]``; or, with ``rows``, the non-zero entries ``x [nnz]`` of a sparse input
        whose entry ``k`` belongs to node ``rows[k]`` (zeros quantize to zero with zero gradients)."""
        if rows is None and x.shape[0] != self.num_nodes:
            raise ValueError(f"NodeQuantizer has {self.num_nodes} nodes, input has {x.shape[0]} rows")
        if self.training and not bool(self.initialized):
            self.initialize(x, rows)
        if rows is None:
            s, b = self.step[:, None], self.bits[:, None]
        else:
            s, b = self.step[rows], self.bits[rows]
        self.local_loss = None
        if not (self.training and self.local_grad):
            return fake_quantize(x, s, b, self.signed)
        xd = x.detach()
        local = fake_quantize(xd, s, b, self.signed, lsq=False)
        err = (local - xd).abs()
        w = self.error_weight if rows is None else self.error_weight[rows]
        self.local_loss = (w * (err.sum(dim=1) if rows is None else err)).sum()
        if x.requires_grad:
            return fake_quantize(x, s.detach(), b.detach(), self.signed)
        return local.detach()

    @torch.no_grad()
    def clamp_(self) -> None:
        """After an optimizer step: keep ``b`` in range, and keep each node's clipping range
        ``s * qmax(bq)`` where it was when its integer bits changed (``s <- s * qmax(old) / qmax(new)``).

        Without this a bit that drops has to wait for the step to grow before the node stops clipping,
        the clipping error pushes the bit straight back, and nodes never leave their initial bits (a
        binary bag of words, exact at any width once ``s = max / qmax``, stayed at 4 bits).
        """
        self.bits.clamp_(BIT_PARAM_MIN, BIT_PARAM_MAX)
        if not self.rescale_on_bit_change:
            return
        new = round_bits(self.bits)
        old = self.last_bits
        changed = new != old
        if bool(changed.any()) and bool(self.initialized):
            q_old, q_new = quant_range(old, self.signed)[1], quant_range(new, self.signed)[1]
            if self.signed:  # the signed range's larger end is -qmin = 2^(b-1)
                q_old, q_new = q_old + 1, q_new + 1
            self.log_step.add_(torch.where(changed, (q_old / q_new).log(), torch.zeros_like(q_old)))
        self.last_bits.copy_(new)

    def bits_ste(self) -> torch.Tensor:
        """Integer bits in the forward pass, identity gradient to the continuous ``b`` ([N])."""
        return self.bits + (round_bits(self.bits) - self.bits).detach()

    def int_bits(self) -> torch.Tensor:
        return round_bits(self.bits.detach()).to(torch.int64)

    def node_steps(self) -> torch.Tensor:
        return self.step.detach()

    def quantize_int(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_int(x, self.step.detach()[:, None], self.bits.detach()[:, None], self.signed)
