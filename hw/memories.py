"""A wide memory built from narrow banks that share the address: one logical word per address.

The weight memory (P·L·wb bits per word) and the channel table (P·46 bits) are banked per PE: each
PE reads its own slice, which is also how an FPGA maps them (one narrow RAM per PE instead of one
very wide RAM), and it keeps Amaranth's Python simulator within its limits (it cannot compile a
single memory wider than about 2000 bits). The load/read port still sees one word per address.

The XW buffer (P·24 bits) is banked by block RAM instead (``bram_bank_widths``): each bank is as wide as
one ECP5 DP16KD at the buffer's depth, so each bank is one block RAM and can take its read address from
its own register beside it (docs/hardware.md, "Timing closure", step 14).
"""
from __future__ import annotations

from amaranth import Cat, Elaboratable, Module, Signal, unsigned
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.utils import ceil_log2

#: Widest words of one ECP5 DP16KD block RAM (18 Kbit): 512 x 36 (one write and one read port, as the
#: XW buffer has) and 1024 x 18.
DP16KD_WIDE = (512, 36)
DP16KD_WIDTH = 18

#: Attributes of every memory of the accelerator: a read that hits the word written in the same cycle
#: may return anything. Without it, yosys keeps Amaranth's read-old-data semantics on an ECP5 block
#: RAM (whose two ports collide undefined) by delaying every write a cycle and muxing the delayed
#: word into the read data: a register on the load address shared by all banks, a compare and a
#: 2:1 mux per output bit (docs/hardware.md, "Timing closure", step 22). No engine reads a word in
#: the cycle it is written (``hw.amaranth_sim`` counts such collisions and the tests require none), and
#: the load port's read data is defined only in cycles that do not write.
COLLISION_DONT_CARE = {"no_rw_check": 1}


def bram_bank_widths(width: int, depth: int) -> list[int]:
    """Bank widths that cut a ``width``-bit word into one DP16KD block RAM each at up to 1,024 words (36 bits
    up to 512 words, else 18; the last bank takes the remainder). A deeper memory's 18-bit bank is one
    group of ⌈depth / 1024⌉ block RAMs stacked in depth: narrower banks (2048 x 9, 4096 x 4) would each be
    one block RAM too, but many more of them in all than the memory needs."""
    bw = DP16KD_WIDE[1] if depth <= DP16KD_WIDE[0] else DP16KD_WIDTH
    return [bw] * (width // bw) + ([width % bw] if width % bw else [])


def bank_offsets(bank_widths) -> list[int]:
    """The least significant bit of each bank in the logical word (banks least significant first)."""
    return [sum(bank_widths[:k]) for k in range(len(bank_widths))]


class BankedMemory(Elaboratable):
    """``banks`` memories of ``width // banks`` bits (or of the given ``bank_widths``, least significant
    first); ``read_port()``/``write_port()`` are full-width, like ``Memory``'s (synchronous read,
    non-transparent). ``attrs``: every bank's (default ``COLLISION_DONT_CARE``)."""

    def __init__(self, width: int, depth: int, banks: int | None = None, init=(), *, bank_widths=None,
                 attrs=COLLISION_DONT_CARE):
        if bank_widths is None:
            if width % banks:
                raise ValueError(f"width {width} is not a multiple of {banks} banks")
            bank_widths = [width // banks] * banks
        if sum(bank_widths) != width or min(bank_widths) < 1:
            raise ValueError(f"bank widths {list(bank_widths)} do not cut a {width}-bit word")
        self.width, self.depth, self.bank_widths = width, depth, list(bank_widths)
        self.bank_offsets = bank_offsets(self.bank_widths)
        init = [int(w) for w in init]
        self.banks = [Memory(shape=unsigned(bw), depth=depth, init=[(w >> off) & ((1 << bw) - 1) for w in init],
                             attrs=attrs)
                      for bw, off in zip(self.bank_widths, self.bank_offsets, strict=True)]
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
        return sum(ctx.get(m.data[addr]) << off for m, off in zip(self.banks, self.bank_offsets, strict=True))

    def elaborate(self, platform):
        m = Module()
        for k, (mem, bw, off) in enumerate(zip(self.banks, self.bank_widths, self.bank_offsets, strict=True)):
            m.submodules[f"bank{k}"] = mem
            for port in self._read_ports:
                bp = mem.read_port()
                addr = port.addr if port.bank_addr is None else port.bank_addr[k]
                m.d.comb += [bp.addr.eq(addr), bp.en.eq(port.en)]
                port._bank_data = getattr(port, "_bank_data", []) + [bp.data]
            for port in self._write_ports:
                bp = mem.write_port()
                m.d.comb += [bp.addr.eq(port.addr), bp.en.eq(port.en), bp.data.eq(port.data[off:off + bw])]
        for port in self._read_ports:
            m.d.comb += port.data.eq(Cat(*port._bank_data))
        return m
