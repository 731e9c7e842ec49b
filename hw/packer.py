"""Bit-plane packer: writes a requantized group into the next layer's feature memory at the node's own
bitwidth, or (last layer) writes the 16-bit logits into the output memory.

A group is P values of node i (channels t_o*P .. t_o*P+P-1), clamped to b' bits. The next layer's
words of node i are stored compacted from ``base'`` (its dense-size reserved region), each tagged with
its (tile, plane); the packer keeps the running count ``wr`` of node i's stored words and, in the
last slot of the node's last group, writes the final count into the count memory. With zero-word
skipping a word is stored only if it is not all zero (without: every word).

* P >= L: the group covers ntiles = min(P/L, T_next - t_o*P/L) whole tiles; the packer takes
  ``b' * ntiles`` slots, tile by tile, plane by plane, one word per slot.
* P <  L: the group is chunk ``c = t_o mod L/P`` (P lanes) of tile ``t_o div L/P``. A word is known
  only when its tile is complete, so each of the ``b'`` slots merges the chunk into a buffer of the
  tile's planes (chunk 0 starts from zeros, so lanes past the last channel read as 0); the group that
  completes the tile (the last chunk, or the node's last group) stores the words in its slots.
* last layer: one output word (P x 16 bits) at the group number ``i*T_out + t_o``.

The slot count W = b' * ntiles (1 on the last layer) does not depend on the data, so the aggregation
engine's back-pressure (and the cycle model) is the same with or without skipping. The group is
latched in the cycle it arrives; slot k is k+1 cycles later, and its memory write leaves through one
register (``WRITE_STAGES``; ``busy`` covers it). A new group may arrive in the cycle of
the previous group's last slot (the aggregation engine guarantees it never comes earlier;
``overrun`` flags a violation, for tests).
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

#: Register stages between a slot and its memory write (feature, count or output word).
WRITE_STAGES = 1


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
            "cnt_addr": In(unsigned(self.aw["count"])),     # next layer's count entry of the group's node
            "sel": In(unsigned(mm.sel_bits(cfg))),          # the row's NNS pair, stored beside its count
            "t_out": In(unsigned(count_bits(cfg.max_tiles_out))),
            "t_next": In(unsigned(count_bits(cfg.max_tiles_in))),
            "last": In(1),
            "busy": Out(1),
            "overrun": Out(1),
            "feat_addr": Out(self.aw["feat"]),
            "feat_data": Out(unsigned(mm.feat_fields(cfg).width)),
            "feat_en": Out(1),
            "count_addr": Out(self.aw["count"]),
            "count_data": Out(unsigned(mm.count_fields(cfg).width)),
            "count_en": Out(1),
            "out_addr": Out(self.aw["out"]),
            "out_data": Out(unsigned(P * fp.OUT_BITS)),
            "out_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        L, P = cfg.lanes, cfg.pes
        ff = mm.feat_fields(cfg)

        w, _ntiles, first_tile = pack_words(m, cfg, self.bits, self.t_o, self.t_next, self.last, name="in_w")

        # latched group
        q = Signal.like(self.q)
        b = Signal(unsigned(NODE_BITS_FIELD))
        last = Signal()
        index = Signal.like(self.index)
        base = Signal(unsigned(self.aw["feat"]))
        cnt_addr = Signal.like(self.cnt_addr)
        sel = Signal.like(self.sel)
        tile0 = Signal(unsigned(ff.offsets["tile"][1]))   # first tile of the group
        node_last = Signal()                               # the node's last group: write its count
        store = Signal()                                   # this group's slots store words
        chunk = Signal(unsigned(max(1, (self.chunks - 1).bit_length())))
        left = Signal(unsigned(len(w)))             # slots still to go
        plane = Signal(unsigned(PLANE_BITS))
        tile = Signal(unsigned(count_bits(max(1, P // L))))   # tile within the group (P >= L)
        wr = Signal(unsigned(mm.count_width(cfg)))            # words of the node stored so far

        writing = left != 0
        wrote = Signal()          # a write is in the write register (the last slot's lands a cycle later)
        m.d.sync += wrote.eq(writing)
        m.d.comb += [self.busy.eq(writing | wrote), self.overrun.eq(self.valid & (left > 1))]

        # plane words of the latched values: plane_words[p] bit o = bit p of q[o]
        def plane_bits(v, p, lanes):
            """Bit p of each lane's value in ``v`` (P values of OUT_BITS each), one bit per lane."""
            return Cat(*[v[o * fp.OUT_BITS + p] for o in lanes])

        plane_words = Array(plane_bits(q, p, range(P)) for p in range(fp.MAX_NODE_BITS))
        pw = Signal(unsigned(P))
        m.d.comb += pw.eq(plane_words[plane])
        # whether each (tile, plane) word is non-zero, decided when the group is latched (an OR over the
        # incoming q's bits) and registered: the store decision ``we`` and the ``wr + we`` count are then a
        # mux of flag registers, not the P-bit plane mux and an L-input OR tree (the routed critical path
        # of step 14; docs/hardware.md, "Timing closure", step 15)
        nt = max(1, P // L)
        nz = [Signal(fp.MAX_NODE_BITS, name=f"nz_t{t}") for t in range(nt)]   # [tile] bit p
        word = Signal(unsigned(L))
        if P >= L:
            m.d.comb += word.eq(pw.word_select(tile, L) if P > L else pw)
            # a part-select, not an Array: with one tile a case over ``tile`` would be incomplete (lint)
            keep_word = (Cat(*nz).word_select(tile, fp.MAX_NODE_BITS) if nt > 1 else nz[0]).bit_select(plane, 1)
        else:
            buf = Array(Signal(unsigned(L), name=f"buf{p}") for p in range(fp.MAX_NODE_BITS))
            buf_nz = Signal(fp.MAX_NODE_BITS)   # bit p: buf[p] is not all zero
            m.d.comb += word.eq(Mux(chunk == 0, 0, buf[plane]) | (pw << (chunk * P))[:L])
            keep_word = (buf_nz.bit_select(plane, 1) & (chunk != 0)) | nz[0].bit_select(plane, 1)
            with m.If(writing):
                m.d.sync += [buf[plane].eq(word), buf_nz.bit_select(plane, 1).eq(keep_word)]
        with m.If(self.valid):
            for t in range(nt):
                lanes = range(t * L, min((t + 1) * L, P))
                m.d.sync += nz[t].eq(Cat(*[plane_bits(self.q, p, lanes).any() for p in range(fp.MAX_NODE_BITS)]))
        we = Signal()
        keep = keep_word if cfg.zero_skip else 1
        m.d.comb += we.eq(writing & ~last & store & keep)
        # the memory writes leave through one register stage (timing: ``we`` and the write words then feed
        # only registers beside the packer, not the feature memory's block RAMs across the die, which
        # pulled the store decision away from the ``wr`` counter: docs/hardware.md, "Timing closure",
        # step 20)
        m.d.sync += [
            self.feat_addr.eq(base + wr),
            self.feat_data.eq(Cat(word, (tile0 + tile)[:ff.offsets["tile"][1]], plane)),
            self.feat_en.eq(we),
            self.count_addr.eq(cnt_addr),
            self.count_data.eq(Cat((wr + we)[:len(wr)], sel)),
            self.count_en.eq(writing & ~last & node_last & (left == 1)),
            self.out_addr.eq(index),
            self.out_data.eq(q),
            self.out_en.eq(writing & last),
        ]

        with m.If(writing):
            m.d.sync += [left.eq(left - 1), wr.eq(wr + we)]
            with m.If(plane == b - 1):
                m.d.sync += [plane.eq(0), tile.eq(tile + 1)]
            with m.Else():
                m.d.sync += plane.eq(plane + 1)
        with m.If(self.valid):
            m.d.sync += [q.eq(self.q), b.eq(self.bits), last.eq(self.last), index.eq(self.index),
                         left.eq(w), base.eq(self.base), cnt_addr.eq(self.cnt_addr), sel.eq(self.sel),
                         plane.eq(0), tile.eq(0),
                         tile0.eq(first_tile), node_last.eq(self.t_o == self.t_out - 1)]
            with m.If(self.t_o == 0):
                m.d.sync += wr.eq(0)
            if self.chunks > 1:
                c = self.t_o[:len(chunk)]
                m.d.sync += [chunk.eq(c), store.eq((c == self.chunks - 1) | (self.t_o == self.t_out - 1))]
            else:
                m.d.sync += store.eq(1)
        return m
