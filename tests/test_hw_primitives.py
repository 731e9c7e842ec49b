"""hw/primitives.py: where the ECP5 multiplier is instantiated, and what is refused."""
from __future__ import annotations

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.back import verilog

from hw.primitives import Primitives, registered_product


def _product(platform, a_shape, b_shape):
    m = Module()
    a, b = Signal(a_shape, name="a"), Signal(b_shape, name="b")
    out = Signal(signed(36), name="out")
    registered_product(m, platform, a, b, out, "mul")
    return verilog.convert(m, ports=[a, b, out], platform=platform)


def test_ecp5_multiplier_holds_the_product_in_its_output_register():
    text = _product(Primitives("ecp5"), unsigned(17), unsigned(16))
    assert text.count("MULT18X18D #(") == 1
    assert '.REG_OUTPUT_CLK("CLK0")' in text and '.REG_INPUTA_CLK("NONE")' in text
    assert "always @(posedge clk)" not in text   # no fabric register left for the product


@pytest.mark.parametrize("platform", [None, Primitives("none")])
def test_plain_rtl_without_a_vendor_family(platform):
    text = _product(platform, signed(18), unsigned(16))
    assert "MULT18X18D" not in text and "*" in text


def test_one_bit_operand_stays_in_the_fabric():
    """synth_ecp5 maps no multiply with a 1-bit operand to a DSP (an AND and a negate): neither do we."""
    assert "MULT18X18D" not in _product(Primitives("ecp5"), signed(1), unsigned(16))


def test_too_wide_operands_and_unknown_families_are_refused():
    m = Module()
    a, b, out = Signal(unsigned(18)), Signal(unsigned(16)), Signal(36)
    with pytest.raises(ValueError, match="do not fit one 18x18"):
        registered_product(m, Primitives("ecp5"), a, b, out, "mul")
    verilog.convert(m, ports=[a, b, out])   # the module is left as it was (and used)
    with pytest.raises(ValueError, match="unknown primitive family 'xc7'"):
        Primitives("xc7")


@pytest.mark.parametrize("bus", ["none", "axi"])
def test_generate_with_ecp5_primitives_writes_the_model_beside(tmp_path, bus):
    """Both top levels carry the primitives, the sidecar says so, and the simulation model lands beside."""
    import json

    from hw.axi import generate_axi
    from hw.config import AcceleratorConfig
    from hw.generate import generate

    cfg = AcceleratorConfig(lanes=4, pes=4, max_nodes=16, max_features=8)
    gen = (generate_axi if bus == "axi" else generate)(cfg, tmp_path / "top.v", "top", "ecp5")
    text = (tmp_path / "top.v").read_text()
    assert text.count("MULT18X18D #(") >= cfg.pes and gen["primitives"] == "ecp5"
    assert json.loads((tmp_path / "top.json").read_text())["primitives"] == "ecp5"
    assert "module MULT18X18D" in (tmp_path / "MULT18X18D.v").read_text()
