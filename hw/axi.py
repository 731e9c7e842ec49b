"""AXI wrapper of the accelerator: a top level an SoC interconnect can attach to.

Two AXI slave ports around the bare core (``hw/accelerator.py``), both 32 bits wide, clock ``clk`` and
active-high ``rst`` shared with the core (tie ``rst`` to ``~aresetn``):

* ``s_axil_*`` AXI4-Lite control and status (``REGISTERS``): identification, config ID, start, busy /
  done / error, the cycle counters (64-bit, as two words) and the memory window's geometry.
* ``s_axi_*`` AXI4 (INCR bursts, 32-bit beats) memory window onto every on-chip memory, for loading
  the images of ``hw.memory_map.images`` and reading results back. Memory ``m`` occupies region
  ``MEM_SEL[m]`` (base ``MEM_SEL[m] << region_bits``); its word ``a`` sits at byte offset
  ``a * word_bytes(m)``, least significant 32-bit chunk first, ``word_bytes(m)`` being 4 times the
  chunk count rounded up to a power of two. So a memory image is one contiguous byte array
  (``window_bytes``), written in one burst sequence by a DMA engine or a CPU.

Why memory-mapped and not AXI4-Stream: results are read back at random addresses (the testbench
and a host driver read only the output region, debug reads any memory), every memory has its own
address space and word width, and an SoC's DMA engines and CPUs already speak AXI4 memory-mapped;
a stream would need an extra header protocol for (memory, address) and a second channel for reads.

A word is written to its memory when its last meaningful chunk arrives (chunk ``chunks(m) - 1``), from
a staging register that collects the earlier chunks: write a word's chunks in ascending order (any
INCR burst does). Padding chunks above ``chunks(m)`` are accepted and ignored. Writes need all four
byte strobes; a beat with partial strobes is dropped and answered SLVERR, so are beats beyond the
memory's depth and any access while the core is busy (its memories belong to the engines then).

The design is generic over ``hw.memory_map``: regions, widths and chunk counts come from
``memory_map.memory_shapes(cfg)``, so a memory added there appears in the window with no change here.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import memory_map as mm
from .config import AcceleratorConfig, addr_bits, ceil_div
from .counters import COUNTERS

#: Register map version (major << 16 | minor): bump on any change of REGISTERS or of the window layout.
BUS_VERSION = 0x0001_0000
#: Identification word at offset 0: ASCII "A2Q" and 0x01 (the AXI wrapper).
MAGIC = 0x4132_5101
DATA_BITS = 32
ID_BITS = 4
LITE_ADDR_BITS = 8
DEFAULT_NAME = "a2q_axi"

OKAY, SLVERR = 0b00, 0b10
#: States of the memory window: one burst at a time, 1 clock per write beat, 5 per read beat.
WINDOW_STATES = ("IDLE", "WRITE", "WRITE_RESP", "READ_ADDR", "READ_WAIT", "READ_DATA", "READ_BEAT", "READ_NEXT")

#: AXI4-Lite registers: offset -> (name, access, meaning)
REGISTERS = {
    0x00: ("ID", "RO", "0x41325101: ASCII 'A2Q' and 0x01"),
    0x04: ("VERSION", "RO", "register map version, major << 16 | minor"),
    0x08: ("CONFIG_ID", "RO", "first 32 bits of the SHA-256 of the config JSON (sorted keys)"),
    0x0C: ("CONTROL", "WO", "write bit 0 = 1: start a run (ignored while busy); reads 0"),
    0x10: ("STATUS", "RO", "bit 0 busy, bit 1 done, bit 2 error (sticky until the next start)"),
    0x14: ("WINDOW", "RO", "bits 7:0 region_bits (log2 bytes per memory region), bits 15:8 memory count, "
                           "bits 23:16 lanes L, bits 31:24 PEs P"),
    **{0x20 + 8 * i + 4 * half: (f"{name.upper()}_{'HI' if half else 'LO'}", "RO",
                                 f"{'high' if half else 'low'} 32 bits of counter {name}")
       for i, name in enumerate(COUNTERS) for half in (0, 1)},
}


def config_id(cfg: AcceleratorConfig) -> int:
    """32-bit identifier of a config: software checks it before loading images built for a config."""
    return int.from_bytes(hashlib.sha256(json.dumps(cfg.to_json(), sort_keys=True).encode()).digest()[:4], "big")


def chunks(width: int) -> int:
    """32-bit chunks of one word of ``width`` bits."""
    return ceil_div(width, DATA_BITS)


def window(cfg: AcceleratorConfig) -> dict:
    """Geometry of the AXI4 memory window: per memory its base, bytes per word, chunks and depth."""
    shapes = mm.memory_shapes(cfg)
    mems = {}
    for name in mm.MEMORIES:
        width, depth = shapes[name]
        stride_log2 = ceil_log2(chunks(width)) + 2
        mems[name] = {"width": width, "depth": depth, "chunks": chunks(width), "word_bytes": 1 << stride_log2,
                      "stride_log2": stride_log2, "bytes": depth << stride_log2}
    region_bits = max(addr_bits(m["depth"]) + m["stride_log2"] for m in mems.values())
    for name, m in mems.items():
        m["base"] = mm.MEM_SEL[name] << region_bits
    sel_bits = max(1, ceil_log2(len(mm.MEMORIES)))
    return {"region_bits": region_bits, "addr_bits": region_bits + sel_bits, "memories": mems}


def image_bytes(words: list[int], mem: dict) -> bytes:
    """The bytes of a memory image in the window: each word as ``word_bytes`` little-endian bytes."""
    wb = mem["word_bytes"]
    return b"".join(int(w).to_bytes(wb, "little") for w in words)


def bytes_to_words(data: bytes, mem: dict) -> list[int]:
    wb, mask = mem["word_bytes"], (1 << mem["width"]) - 1
    return [int.from_bytes(data[i:i + wb], "little") & mask for i in range(0, len(data), wb)]


def _axi_signature(addr_bits_: int) -> dict:
    s = {}
    for ch, dirn in (("aw", In), ("ar", In)):
        s.update({f"s_axi_{ch}id": dirn(ID_BITS), f"s_axi_{ch}addr": dirn(addr_bits_), f"s_axi_{ch}len": dirn(8),
                  f"s_axi_{ch}size": dirn(3), f"s_axi_{ch}burst": dirn(2), f"s_axi_{ch}valid": dirn(1),
                  f"s_axi_{ch}ready": Out(1)})
    s.update({"s_axi_wdata": In(DATA_BITS), "s_axi_wstrb": In(DATA_BITS // 8), "s_axi_wlast": In(1),
              "s_axi_wvalid": In(1), "s_axi_wready": Out(1),
              "s_axi_bid": Out(ID_BITS), "s_axi_bresp": Out(2), "s_axi_bvalid": Out(1), "s_axi_bready": In(1),
              "s_axi_rid": Out(ID_BITS), "s_axi_rdata": Out(DATA_BITS), "s_axi_rresp": Out(2),
              "s_axi_rlast": Out(1), "s_axi_rvalid": Out(1), "s_axi_rready": In(1)})
    return s


def _axil_signature() -> dict:
    return {"s_axil_awaddr": In(LITE_ADDR_BITS), "s_axil_awvalid": In(1), "s_axil_awready": Out(1),
            "s_axil_wdata": In(DATA_BITS), "s_axil_wstrb": In(DATA_BITS // 8), "s_axil_wvalid": In(1),
            "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(LITE_ADDR_BITS), "s_axil_arvalid": In(1), "s_axil_arready": Out(1),
            "s_axil_rdata": Out(DATA_BITS), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1),
            "s_axil_rready": In(1)}


class AxiAccelerator(wiring.Component):
    """The accelerator behind an AXI4-Lite control port and an AXI4 memory window; ``irq`` = done."""

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        self.window = window(cfg)
        super().__init__({**_axil_signature(), **_axi_signature(self.window["addr_bits"]), "irq": Out(1)})

    def elaborate(self, platform):
        from .accelerator import Accelerator

        m = Module()
        cfg = self.cfg
        core = m.submodules.core = Accelerator(cfg)
        win = self.window
        mems = [win["memories"][name] for name in mm.MEMORIES]
        rb = win["region_bits"]
        max_chunks = max(mem["chunks"] for mem in mems)
        chunk_bits = max(1, ceil_log2(max_chunks))

        # ---- AXI4-Lite control / status ---------------------------------------------------------
        start = Signal()
        m.d.comb += [core.start.eq(start), self.irq.eq(core.done)]
        m.d.sync += start.eq(0)
        bvalid, rvalid = Signal(), Signal()
        m.d.comb += [self.s_axil_bvalid.eq(bvalid), self.s_axil_rvalid.eq(rvalid),
                     self.s_axil_bresp.eq(OKAY), self.s_axil_rresp.eq(OKAY)]
        # a write is taken when address and data are both valid and no response is pending
        take_w = self.s_axil_awvalid & self.s_axil_wvalid & ~bvalid
        m.d.comb += [self.s_axil_awready.eq(take_w), self.s_axil_wready.eq(take_w)]
        with m.If(take_w):
            m.d.sync += bvalid.eq(1)
            with m.If((self.s_axil_awaddr[2:] == 0x0C >> 2) & self.s_axil_wdata[0] & self.s_axil_wstrb[0]
                      & ~core.busy):
                m.d.sync += start.eq(1)
        with m.Elif(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        values = {"ID": MAGIC, "VERSION": BUS_VERSION, "CONFIG_ID": config_id(cfg), "CONTROL": 0,
                  "STATUS": Cat(core.busy, core.done, core.error),
                  "WINDOW": rb | (len(mm.MEMORIES) << 8) | ((cfg.lanes & 0xFF) << 16) | ((cfg.pes & 0xFF) << 24)}
        for name in COUNTERS:
            wide = getattr(core, name).as_unsigned()
            values[f"{name.upper()}_LO"] = wide[:32]
            values[f"{name.upper()}_HI"] = wide[32:64] if len(wide) > 32 else 0
        take_r = self.s_axil_arvalid & ~rvalid
        m.d.comb += self.s_axil_arready.eq(take_r)
        with m.If(take_r):
            m.d.sync += rvalid.eq(1)
            with m.Switch(self.s_axil_araddr[2:]):
                for off, (name, _, _) in REGISTERS.items():
                    with m.Case(off >> 2):
                        m.d.sync += self.s_axil_rdata.eq(values[name])
                with m.Default():
                    m.d.sync += self.s_axil_rdata.eq(0)
        with m.Elif(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)

        # ---- AXI4 memory window -----------------------------------------------------------------
        # one burst at a time (write or read); the address register steps by 4 bytes per beat
        addr = Signal(win["addr_bits"])
        beats = Signal(8)                 # beats left after the current one
        axid = Signal(ID_BITS)
        err = Signal()                    # some beat of this burst was refused
        sel = addr[rb:]
        offset = addr[:rb]
        # per-memory constants, selected by the region
        stride_log2 = Signal(range(rb + 1))
        n_chunks = Signal(range(max_chunks + 1))
        depth = Signal(range(max(mem["depth"] for mem in mems) + 1))
        chunk_mask = Signal(chunk_bits)
        for i, mem in enumerate(mems):
            with (m.If if i == 0 else m.Elif)(sel == i):
                m.d.comb += [stride_log2.eq(mem["stride_log2"]), n_chunks.eq(mem["chunks"]),
                             depth.eq(mem["depth"]), chunk_mask.eq((1 << (mem["stride_log2"] - 2)) - 1)]
        word = Signal(rb)
        m.d.comb += word.eq(offset >> stride_log2)
        chunk = Signal(chunk_bits)
        m.d.comb += chunk.eq(offset[2:2 + chunk_bits] & chunk_mask)
        in_range = (sel < len(mems)) & (word < depth)

        # a whole power of two of chunks, so the chunk index covers every case of the write select
        staging = Signal((1 << chunk_bits) * DATA_BITS)
        commit = Signal()
        c_sel, c_addr = Signal.like(core.mem_sel), Signal.like(core.mem_addr)
        rd_chunk = Signal(chunk_bits)
        wait = Signal(range(max(2, mm.READ_LATENCY)))
        m.d.comb += [core.mem_we.eq(commit), core.mem_wdata.eq(staging[:len(core.mem_wdata)])]
        m.d.sync += commit.eq(0)
        m.d.comb += [core.mem_sel.eq(c_sel), core.mem_addr.eq(c_addr)]

        bvalid_m = Signal()
        rvalid_m = Signal()
        rdata = Signal(DATA_BITS)
        m.d.comb += [self.s_axi_bvalid.eq(bvalid_m), self.s_axi_bid.eq(axid),
                     self.s_axi_bresp.eq(Mux(err, SLVERR, OKAY)),
                     self.s_axi_rvalid.eq(rvalid_m), self.s_axi_rid.eq(axid), self.s_axi_rdata.eq(rdata),
                     self.s_axi_rlast.eq(beats == 0), self.s_axi_rresp.eq(Mux(err, SLVERR, OKAY))]
        padded = Signal((1 << chunk_bits) * DATA_BITS)
        m.d.comb += padded.eq(core.mem_rdata)

        # the window's state machine, as an If chain on an explicit state register: Yosys writes an
        # m.FSM as partial `casez` blocks that Verilator's lint flags (CASEINCOMPLETE)
        state = Signal(range(len(WINDOW_STATES)))
        S = {name: i for i, name in enumerate(WINDOW_STATES)}
        with m.If(state == S["IDLE"]):
            m.d.comb += [self.s_axi_awready.eq(1), self.s_axi_arready.eq(~self.s_axi_awvalid)]
            with m.If(self.s_axi_awvalid):
                m.d.sync += [addr.eq(self.s_axi_awaddr), beats.eq(self.s_axi_awlen), axid.eq(self.s_axi_awid),
                             err.eq(0)]
                m.d.sync += state.eq(S["WRITE"])
            with m.Elif(self.s_axi_arvalid):
                m.d.sync += [addr.eq(self.s_axi_araddr), beats.eq(self.s_axi_arlen), axid.eq(self.s_axi_arid),
                             err.eq(0)]
                m.d.sync += state.eq(S["READ_ADDR"])
        with m.Elif(state == S["WRITE"]):
            m.d.comb += self.s_axi_wready.eq(1)
            with m.If(self.s_axi_wvalid):
                ok = in_range & (self.s_axi_wstrb == 0b1111) & ~core.busy
                with m.If(ok & (chunk < n_chunks)):
                    m.d.sync += staging.word_select(chunk, DATA_BITS).eq(self.s_axi_wdata)
                with m.If(ok & (chunk == n_chunks - 1)):
                    m.d.sync += [commit.eq(1), c_sel.eq(sel), c_addr.eq(word)]
                with m.If(~ok):
                    m.d.sync += err.eq(1)
                m.d.sync += [addr.eq(addr + 4), beats.eq(beats - 1)]
                with m.If(self.s_axi_wlast):
                    m.d.sync += state.eq(S["WRITE_RESP"])
        with m.Elif(state == S["WRITE_RESP"]):
            m.d.comb += bvalid_m.eq(1)
            with m.If(self.s_axi_bready):
                m.d.sync += state.eq(S["IDLE"])
        with m.Elif(state == S["READ_ADDR"]):
            # present (sel, word) to the core; its read data is valid READ_LATENCY clocks later
            m.d.sync += [c_sel.eq(sel), c_addr.eq(word), rd_chunk.eq(chunk)]
            with m.If(~in_range | core.busy):
                m.d.sync += err.eq(1)
            m.d.sync += state.eq(S["READ_WAIT"])
        with m.Elif(state == S["READ_WAIT"]):   # READ_LATENCY clocks, from the one the core sees (sel, word)
            m.d.sync += wait.eq(wait + 1)
            with m.If(wait == mm.READ_LATENCY - 1):
                m.d.sync += [wait.eq(0), state.eq(S["READ_DATA"])]
        with m.Elif(state == S["READ_DATA"]):
            m.d.sync += rdata.eq(padded.word_select(rd_chunk, DATA_BITS))
            m.d.sync += state.eq(S["READ_BEAT"])
        with m.Elif(state == S["READ_BEAT"]):
            m.d.comb += rvalid_m.eq(1)
            with m.If(self.s_axi_rready):
                m.d.sync += [addr.eq(addr + 4), beats.eq(beats - 1)]
                m.d.sync += state.eq(S["READ_NEXT"])
        with m.Elif(state == S["READ_NEXT"]):  # beats wrapped to 0xFF after the last beat
            with m.If(beats == 0xFF):
                m.d.sync += state.eq(S["IDLE"])
            with m.Else():
                m.d.sync += state.eq(S["READ_ADDR"])
        return m


def verilog(cfg: AcceleratorConfig, name: str = DEFAULT_NAME, primitives: str = "none") -> str:
    """The Verilog text of the AXI wrapper (and the core inside it) for ``cfg`` (deterministic)."""
    from .generate import convert

    return convert(AxiAccelerator(cfg), name, primitives)


def sidecar(cfg: AcceleratorConfig, name: str, text: str) -> dict:
    win = window(cfg)
    acc = AxiAccelerator(cfg)
    acc._MustUse__silence = True  # only the signature is needed: never elaborated
    ports = [{"name": "clk", "direction": "input", "width": 1}, {"name": "rst", "direction": "input", "width": 1}]
    for path, member, value in acc.signature.flatten(acc):
        ports.append({"name": "__".join(map(str, path)), "direction": "input" if member.flow == In else "output",
                      "width": len(value)})
    return {"module": name, "bus": "axi", "bus_version": BUS_VERSION, "config": cfg.to_json(),
            "config_id": f"0x{config_id(cfg):08x}", "ports": ports,
            "registers": {f"0x{off:02x}": {"name": n, "access": a, "meaning": t}
                          for off, (n, a, t) in REGISTERS.items()},
            "window": win, "verilog_sha256": hashlib.sha256(text.encode()).hexdigest()}


def generate_axi(cfg: AcceleratorConfig, output: str | os.PathLike, name: str = DEFAULT_NAME,
                 primitives: str = "none") -> dict:
    """Write the wrapper's Verilog and its sidecar ``<stem>.json`` (and, with vendor ``primitives``, their
    simulation models); return a summary."""
    t0 = time.monotonic()
    text = verilog(cfg, name, primitives)
    from .generate import write_design

    result = write_design(output, text, sidecar(cfg, name, text), primitives)
    return result | {"bus": "axi", "seconds": round(time.monotonic() - t0, 3)}
