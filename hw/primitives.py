"""Vendor primitives for what synthesis does not infer: the ECP5 multiplier's own output register.

``synth_ecp5`` maps a multiply to a MULT18X18D with every register off, so a registered product
``p <= a * b`` becomes a fabric register one route after the DSP: the DSP's 3.93 ns and the routes on
both sides share one cycle (docs/hardware.md, "Timing closure", steps 24-29). Instantiated directly,
the MULT18X18D holds the product in its output register (``REG_OUTPUT_CLK = "CLK0"``): the same
register, the same cycle, at the same place as the multiplier.

The choice travels as Amaranth's elaboration *platform*: ``verilog.convert(..., platform=
Primitives("ecp5"))`` makes every ``registered_product`` an ECP5 instance; no platform (simulation,
other parts) keeps the plain multiply. The generated Verilog then needs the part's library for
synthesis (Yosys and Diamond have it) and ``SIM_MODELS["ecp5"]`` for simulation (Verilator, Icarus):
our model of the subset used here, since Yosys ships only a blackbox for MULT18X18D.
"""
from __future__ import annotations

from pathlib import Path

#: primitive families; "none" is plain RTL that every tool maps itself
FAMILIES = ("none", "ecp5")
#: simulation models per family (Verilog files to compile beside the generated design)
SIM_MODELS = {"none": [], "ecp5": [Path(__file__).parent / "sim_models" / "MULT18X18D.v"]}
#: operand width of one ECP5 multiplier (signed)
ECP5_OPERAND_BITS = 18
#: narrower operands stay in the fabric, as synth_ecp5 leaves them (a 1-bit multiply is an AND and a negate)
ECP5_MIN_OPERAND_BITS = 2


class Primitives:
    """The elaboration platform that selects a primitive family (Amaranth passes it to every
    ``elaborate``); it carries nothing else."""

    def __init__(self, family: str = "none"):
        if family not in FAMILIES:
            raise ValueError(f"unknown primitive family {family!r}; choose one of {', '.join(FAMILIES)}")
        self.family = family


def family(platform) -> str:
    """The primitive family an ``elaborate(platform)`` should use."""
    return getattr(platform, "family", "none") if platform is not None else "none"


def _fits_ecp5(v) -> bool:
    shape = v.shape()
    return shape.width <= ECP5_OPERAND_BITS - (0 if shape.signed else 1)


def registered_product(m, platform, a, b, out, name: str) -> None:
    """``out <= a * b`` (one clock, sync domain, reset to 0). On ECP5 one MULT18X18D named ``name``
    whose output register is that register (operands of 2 bits or more, as Yosys would map them); else
    a multiply for the tools to map."""
    from amaranth import ClockSignal, Instance, ResetSignal, Signal, signed  # here: the CLI imports the constants

    if family(platform) != "ecp5" or min(a.shape().width, b.shape().width) < ECP5_MIN_OPERAND_BITS:
        m.d.sync += out.eq(a * b)
        return
    if not (_fits_ecp5(a) and _fits_ecp5(b)):
        raise ValueError(f"{name}: operands {a.shape()} x {b.shape()} do not fit one 18x18 signed MULT18X18D")
    a18, b18, p36 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_b"), \
        Signal(signed(36), name=f"{name}_p")
    m.d.comb += [a18.eq(a), b18.eq(b), out.eq(p36)]
    ports = {f"i_A{k}": a18[k] for k in range(18)} | {f"i_B{k}": b18[k] for k in range(18)}
    ports |= {f"i_C{k}": 0 for k in range(18)} | {f"o_P{k}": p36[k] for k in range(36)}
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="NONE", p_REG_INPUTB_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_RESETMODE="SYNC", p_GSR="DISABLED",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=ResetSignal("sync"),
        **ports)
