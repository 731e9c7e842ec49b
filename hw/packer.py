"""Bit-plane packer: writes a requantized group into the next layer's feature memory at the node's own
bitwidth, or (last layer) writes the 16-bit logits into the output memory.

A group is P values of node i (channels t_o*P .. t_o*P+P-1), clamped to b' bits. The next layer's
feature words of node i are at ``base' + tile*b' + plane`` (L lanes per word):

* P >= L: the group covers ntiles = min(P/L, T_next - t_o*P/L) whole tiles; the packer writes
  ``b' * ntiles`` full words, tile by tile, plane by plane (consecutive addresses).
* P <  L: the group is chunk ``c = t_o mod L/P`` (P lanes) of tile ``t_o div L/P``; the packer writes
  ``b'`` words with a per-chunk write enable. Chunk 0 writes the whole word (zeros outside the chunk),
  so lanes past the last channel read as 0 (clean words for zero-plane skipping).
* last layer: one output word (P x 16 bits) at the group number ``i*T_out + t_o``.

The group is latched in the cycle it arrives; word k is written k+1 cycles later. A new group may
arrive in the cycle of the previous group's last write (the aggregation engine guarantees it never
comes earlier; ``overrun`` flags a violation, for tests).
"""
from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .aggregate import pack_words
from .config import NODE_BITS_FIELD, AcceleratorConfig, addr_bits, count_bits
from .pe import PLANE_BITS


def feat_write_granularity(cfg: AcceleratorConfig):
    """Write-enable granularity of the feature memory (None: whole word)."""
    return cfg.pes if cfg.pes < cfg.lanes else None


class Packer(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        shapes = mm.memory_shapes(cfg)
        self.aw = {name: addr_bits(depth) for name, (_, depth) in shapes.items()}
        L, P = cfg.lanes, cfg.pes
        self.chunks = L // P if P < L else 1
        super().__init__({
            "valid": In(1),
            "q": In(unsigned(P * fp.OUT_BITS)),
            "bits": In(unsigned(NODE_BITS_FIELD)),
            "base": In(unsigned(self.aw["feat"])),
            "t_o": In(unsigned(count_bits(cfg.max_tiles_out))),
            "index": In(unsigned(self.aw["out"])),
            "t_next": In(unsigned(count_bits(cfg.max_tiles_in))),
            "last": In(1),
            "busy": Out(1),
            "overrun": Out(1),
            "feat_addr": Out(self.aw["feat"]),
            "feat_data": Out(unsigned(L)),
            "feat_en": Out(unsigned(self.chunks)),
            "out_addr": Out(self.aw["out"]),
            "out_data": Out(unsigned(P * fp.OUT_BITS)),
            "out_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        L, P = cfg.lanes, cfg.pes

        w, _ntiles, first_tile = pack_words(m, cfg, self.bits, self.t_o, self.t_next, self.last, name="in_w")

        # latched group
        q = Signal.like(self.q)
        b = Signal(unsigned(NODE_BITS_FIELD))
        last = Signal()
        index = Signal.like(self.index)
        chunk = Signal(unsigned(max(1, (self.chunks - 1).bit_length())))
        left = Signal(unsigned(len(w)))             # words still to write
        addr = Signal(unsigned(self.aw["feat"]))
        plane = Signal(unsigned(PLANE_BITS))
        tile = Signal(unsigned(count_bits(max(1, P // L))))   # tile within the group (P >= L)

        writing = left != 0
        m.d.comb += [self.busy.eq(writing), self.overrun.eq(self.valid & (left > 1))]

        # plane words of the latched values: plane_words[p] bit o = bit p of q[o]
        plane_words = Array(Cat(*[q[o * fp.OUT_BITS + p] for o in range(P)]) for p in range(fp.MAX_NODE_BITS))
        pw = Signal(unsigned(P))
        m.d.comb += pw.eq(plane_words[plane])
        if P >= L:
            data = pw.word_select(tile, L) if P > L else pw
            en = 1
        else:
            data = pw << (chunk * P)
            en = Mux(chunk == 0, (1 << self.chunks) - 1, 1 << chunk)
        m.d.comb += [
            self.feat_addr.eq(addr),
            self.feat_data.eq(data),
            self.feat_en.eq(Mux(writing & ~last, en, 0)),
            self.out_addr.eq(index),
            self.out_data.eq(q),
            self.out_en.eq(writing & last),
        ]

        with m.If(writing):
            m.d.sync += [left.eq(left - 1), addr.eq(addr + 1)]
            with m.If(plane == b - 1):
                m.d.sync += [plane.eq(0), tile.eq(tile + 1)]
            with m.Else():
                m.d.sync += plane.eq(plane + 1)
        with m.If(self.valid):
            m.d.sync += [q.eq(self.q), b.eq(self.bits), last.eq(self.last), index.eq(self.index),
                         left.eq(w), addr.eq(self.base + first_tile * self.bits), plane.eq(0), tile.eq(0)]
            if self.chunks > 1:
                m.d.sync += chunk.eq(self.t_o[:len(chunk)])
        return m
