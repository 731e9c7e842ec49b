"""Per-output-channel weight quantizer: signed, ``bits`` wide (4 by default), learnable step (LSQ).

The step is learned in log space by default (``step_space="log"``), as every feature step is: Adam moves a
parameter by about its learning rate per update whatever the gradient's size, so a linear step started at
``max|w| / 127`` (~2e-3 at 8 bits) ended ~60x ``max|w| / 127`` after 30 epochs of graph-level GIN on NCI1,
where the BatchNorm after each linear layer leaves the loss nearly blind to the step: 8-bit weights ended on
codes -2..2 and INT8 lost 4-8 points to FP32 (docs/training.md, "Weight step in log space"). ``"linear"`` keeps
the old parametrisation, for the node-level defaults measured with it and for checkpoints saved before.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from a2q import fixedpoint as fp

from .ste import fake_quant

STEP_SPACES = ("log", "linear")


class WeightQuantizer(nn.Module):
    def __init__(self, out_features: int, bits: int = 4, step_space: str = "log"):
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f"weight bits must lie in [2, 8], got {bits}")
        if step_space not in STEP_SPACES:
            raise ValueError(f"weight step space must be one of {STEP_SPACES}, got {step_space!r}")
        self.bits, self.step_space = int(bits), step_space
        if step_space == "log":
            self.log_step = nn.Parameter(torch.zeros(out_features))
        else:
            self.linear_step = nn.Parameter(torch.ones(out_features))
        self.register_buffer("initialised", torch.tensor(False))
        self.register_load_state_dict_pre_hook(self._rename_old_step)

    @staticmethod
    def _rename_old_step(module, state_dict, prefix, *args):
        """Checkpoints from before the log step hold the linear step as ``step``."""
        if prefix + "step" in state_dict:
            state_dict[prefix + "linear_step"] = state_dict.pop(prefix + "step")

    @property
    def qrange(self) -> tuple[int, int]:
        return fp.signed_range(self.bits)

    @property
    def step(self) -> torch.Tensor:
        """The positive per-channel step (differentiable)."""
        if self.step_space == "log":
            return self.log_step.exp()
        return self.linear_step.abs().clamp_min(1e-8)

    @torch.no_grad()
    def init_from(self, w: torch.Tensor) -> None:
        _, qmax = self.qrange
        step = w.abs().amax(dim=0).clamp_min(1e-8) / qmax
        if self.step_space == "log":
            self.log_step.copy_(step.log())
        else:
            self.linear_step.copy_(step)
        self.initialised.fill_(True)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` is [F_in, F_out]; one step per output channel (column)."""
        if not bool(self.initialised):
            self.init_from(w)
        qmin, qmax = self.qrange
        g = 1.0 / math.sqrt(w.shape[0] * qmax)
        step = self.step
        step = step * g + (step - step * g).detach()
        return fake_quant(w, step[None, :], torch.tensor(float(qmin)), torch.tensor(float(qmax)))

    def export(self) -> dict:
        return {"weight_step": self.step.detach().double().numpy(), "weight_bits": self.bits}
