"""The testbenches' clock: one period and one implementation for the bare core and the AXI wrapper."""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock

CLOCK_NS = 10
#: The clock toggles in cocotb's C++ GPI layer, not in a Python coroutine woken twice a cycle (which
#: cost about half of Verilator's run time). Our writes stay cocotb's default scheduled writes, made
#: after an edge and sampled at the next one, as with the Python clock.
CLOCK_IMPL = "gpi"


def start_clock(dut) -> None:
    """Start ``dut.clk`` running for the rest of the test."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns", impl=CLOCK_IMPL).start())
