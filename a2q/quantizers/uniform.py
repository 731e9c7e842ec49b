"""Uniform INT-k feature quantizer for the baselines: one learned step per layer (LSQ), k bits for all
nodes. It exports like a per-node quantizer whose steps and bits are all equal."""
from __future__ import annotations

import torch
from torch import nn

from .ste import fake_quant, qrange


class UniformQuantizer(nn.Module):
    def __init__(self, bits: int, signed: bool = False):
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"uniform feature bits must lie in [1, 8], got {bits}")
        self.k, self.signed = int(bits), signed
        # log-space step (as the node quantizer): Adam's absolute updates of ~1e-2 on a step of ~1e-3
        # flipped its sign in some seeds and collapsed those runs
        self.log_step = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))

    #: The range starts at this quantile of the non-zero |x|: LSQ's 2*mean/sqrt(qmax) is dragged to ~0 by
    #: the 99% zeros of a bag-of-words input and would clip nearly every value.
    percentile = 0.999

    def percentile_step(self, x: torch.Tensor) -> torch.Tensor:
        """The step that puts ``percentile`` of the non-zero |x| at the top code."""
        _, qmax = qrange(torch.tensor(float(self.k)), self.signed)
        nz = x.detach().abs()
        nz = nz[nz > 0]
        top = torch.quantile(nz[:1_000_000], self.percentile) if nz.numel() else torch.tensor(1.0)
        return top / float(qmax) + 1e-8

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        self.log_step.copy_(self.percentile_step(x).log())
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Dense x, or the non-zero values of a sparse input (``rows`` given; zeros stay zero)."""
        if not bool(self.initialised):
            if rows is not None:
                raise RuntimeError(f"initialise a {type(self).__name__} from the dense input first (init_from)")
            self.init_from(x)
        qmin, qmax = qrange(torch.tensor(float(self.k)), self.signed)
        return fake_quant(x, self.step, qmin, qmax)

    @property
    def step(self) -> torch.Tensor:
        return self.log_step.exp()

    def local_loss(self):
        return None

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        qmin, qmax = qrange(torch.tensor(float(self.k)), self.signed)
        return torch.clamp(torch.floor(x / self.step + 0.5), float(qmin), float(qmax)).long()

    def export_for(self, num_nodes: int) -> dict:
        import numpy as np

        return {"in_step": np.full(num_nodes, float(self.step.detach())),
                "in_bits": np.full(num_nodes, self.k, dtype=np.int64), "in_signed": self.signed}
