"""A wide memory built from narrow banks that share the address: one logical word per address.

The weight memory (P·L·wb bits per word) and the channel table (P·46 bits) are banked per PE: each
PE reads its own slice, which is also how an FPGA maps them (one narrow RAM per PE instead of one
very wide RAM), and it keeps Amaranth's Python simulator within its limits (it cannot compile a
single memory wider than about 2000 bits). The load/read port still sees one word per address.
"""
from __future__ import annotations

from amaranth import Cat, Elaboratable, Module, Signal, unsigned
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.utils import ceil_log2


class BankedMemory(Elaboratable):
    """``banks`` memories of ``width // banks`` bits; ``read_port()``/``write_port()`` are
    full-width, like ``Memory``'s (synchronous read, non-transparent)."""

    def __init__(self, width: int, depth: int, banks: int, init=()):
        if width % banks:
            raise ValueError(f"width {width} is not a multiple of {banks} banks")
        self.width, self.depth, self.bank_width = width, depth, width // banks
        bw = self.bank_width
        init = [int(w) for w in init]
        self.banks = [Memory(shape=unsigned(bw), depth=depth, init=[(w >> (k * bw)) & ((1 << bw) - 1) for w in init])
                      for k in range(banks)]
        self._read_ports: list[ReadPort] = []
        self._write_ports: list[WritePort] = []

    def read_port(self, *, per_bank_addr: bool = False):
        """A full-width read port. ``per_bank_addr``: each bank takes its address from
        ``port.bank_addr[k]`` instead of ``port.addr`` (one address register beside each bank instead
        of one address routed to all of them: docs/hardware.md, "Timing closure", step 12)."""
        port = ReadPort.Signature(addr_width=ceil_log2(self.depth), shape=unsigned(self.width)).create()
        port.bank_addr = ([Signal.like(port.addr, name=f"bank_addr{k}") for k in range(len(self.banks))]
                          if per_bank_addr else None)
        self._read_ports.append(port)
        return port

    def write_port(self):
        port = WritePort.Signature(addr_width=ceil_log2(self.depth), shape=unsigned(self.width)).create()
        self._write_ports.append(port)
        return port

    def sim_get(self, ctx, addr: int) -> int:
        """The logical word at ``addr`` in an amaranth.sim testbench."""
        return sum(ctx.get(m.data[addr]) << (k * self.bank_width) for k, m in enumerate(self.banks))

    def elaborate(self, platform):
        m = Module()
        bw = self.bank_width
        for k, mem in enumerate(self.banks):
            m.submodules[f"bank{k}"] = mem
            for port in self._read_ports:
                bp = mem.read_port()
                addr = port.addr if port.bank_addr is None else port.bank_addr[k]
                m.d.comb += [bp.addr.eq(addr), bp.en.eq(port.en)]
                port._bank_data = getattr(port, "_bank_data", []) + [bp.data]
            for port in self._write_ports:
                bp = mem.write_port()
                m.d.comb += [bp.addr.eq(port.addr), bp.en.eq(port.en), bp.data.eq(port.data[k * bw:(k + 1) * bw])]
        for port in self._read_ports:
            m.d.comb += port.data.eq(Cat(*port._bank_data))
        return m
