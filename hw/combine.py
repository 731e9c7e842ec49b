"""Combination engine: P bit-serial PEs compute ``acc[j, o] = sum_k x[j, k] W[k, o]``, then SRC_RESCALE
``y = sat16(rescale(acc, Ms[j], Ss[j]))`` writes the XW buffer.

Loop order (outer to inner): node j, output tile t_o (P channels), stored word k of node j. A node's
feature words are stored consecutively from ``base_j`` (``count_j`` of them), each tagged with its
(input tile t_i, plane p); with zero-word skipping the all-zero words are not stored, so they cost no
cycle. One (j, t_o, k) is issued per cycle with no bubble between nodes, so node j costs exactly
``max(count_j, 1) * T_out`` cycles (a node with no stored word is issued once per t_o with its lanes
gated to 0, so its y = 0 is still written). The weight word of (t_o, t_i) is at
``w_off + t_o*T_in + t_i``: its address comes from the tag, one cycle after the feature read.

Node table and count reads are prefetched one node ahead: the current node's entry (base, bits, Ms, Ss,
count) sits in registers, and the ports present the next node's entry, which is loaded into those
registers when the engine moves on -- no bubble, and no block RAM output decides an address in the
cycle it arrives (timing). The cost is one more setup cycle per layer (``FIRST_ISSUE``).

An NNS pool input (descriptor ``pool_in``): the row's bits and Ms, Ss are the pool pair ``sel`` that the
previous layer stored beside the row's count, read from the pool table at ``pool_off + sel`` through an
asynchronous port, addressed from the current-node registers (no extra cycle).

The weight address is two registers deep (timing, docs/hardware.md "Timing closure", step 12): the
weight word is L·P·wb bits wide, so its P banks (one per PE) sit all over the die and share one address.
The address is computed into one register (``w_addr_r``: ``w_off + t_o·T_in + tile``), which is then
copied into one kept register per bank (``w_addr_b<k>``, ``KEEP_REGISTER``), so the die-crossing net
is register to register and each bank's address comes from a register beside it. ``w_own`` (one kept
copy per bank too) tells the top level that the engine owns the weight read port, so the port mux
between the engine and the load port also sits beside each bank.

Pipeline (issue in cycle c): c+1 feature word arrives (block RAM output) and is registered; c+2 weight
address computed from the registered tag into ``w_addr_r``; c+3 copied per bank; c+4 the banks read;
c+5 weight word arrives, PE input register; c+6 PE lane gates and partial sums of 4 lanes (registered);
c+7 the rest of the adder tree (registered); c+8 PE accumulate; c+9 PE sum complete -> the rescale's 6
stages (partial products, their sum, + round, shift, a register, saturate); c+15 XW write (``DRAIN``).
See docs/hardware.md.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import AcceleratorConfig, addr_bits, count_bits
from .pe import LATENCY as PE_LATENCY
from .pe import PLANE_BITS, BitSerialPE
from .pipeline import delay_line
from .replicate import kept_copies, ownership_copies
from .rescale import LATENCY as RESCALE_LATENCY
from .rescale import Rescaler, drive, scale_operands, splits

#: Cycles from ``start`` to the first issue: start, then two setup cycles (node 0 is addressed, then
#: its entry arrives into the current-node registers while node 1 is addressed: the prefetch).
FIRST_ISSUE = 3
#: Register stages of the weight address: computed from the tag (``w_addr_r``), copied per bank.
W_ADDR_STAGES = 2
#: Cycle (after issue) in which the PE inputs are presented: feature word arrives (1), is registered
#: (2), the weight address stages (3, 4: the banks are addressed), weight word arrives (5).
PE_IN = 3 + W_ADDR_STAGES
#: Cycle (after issue) in which a PE's sum is complete.
PE_DONE = PE_IN + PE_LATENCY
#: Cycles from the last issue to the XW write of the last group (inclusive of the write cycle).
DRAIN = PE_DONE + RESCALE_LATENCY


class CombineEngine(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        self.nf = mm.node_fields(cfg)
        self.widths = cfg.widths
        shapes = mm.memory_shapes(cfg)
        self.aw = {name: addr_bits(depth) for name, (_, depth) in shapes.items()}
        self.dw = {name: width for name, (width, _) in shapes.items()}
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            # layer descriptor fields (stable while running)
            "t_in": In(count_bits(cfg.max_tiles_in)),
            "t_out": In(count_bits(cfg.max_tiles_out)),
            "in_signed": In(1),
            "n_nodes": In(count_bits(cfg.max_nodes)),
            "node_off": In(self.aw["node"]),
            "w_off": In(self.aw["weight"]),
            "pool_in": In(1),
            "pool_off": In(self.aw["pool"]),
            # memory ports
            "pool_addr": Out(self.aw["pool"]),      # asynchronous read: pool_off + sel of the row
            "pool_data": In(self.dw["pool"]),
            "node_addr": Out(self.aw["node"]),
            "node_data": In(self.dw["node"]),
            "count_data": In(self.dw["count"]),     # count memory, addressed with node_addr
            "feat_addr": Out(self.aw["feat"]),
            "feat_data": In(self.dw["feat"]),
            # the weight address, one copy per weight bank (bank k at [k*aw, (k+1)*aw)), and per bank
            # whether the engine owns the weight read port (else the load port addresses it)
            "w_addr": Out(self.aw["weight"] * cfg.pes),
            "w_own": Out(cfg.pes),
            "w_data": In(self.dw["weight"]),
            "xw_addr": Out(self.aw["xw"]),
            "xw_data": Out(self.dw["xw"]),
            "xw_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, nf, wd = self.cfg, self.nf, self.widths
        L, P, wb = cfg.lanes, cfg.pes, cfg.weight_bits

        # node-table prefetch (timing): the node and count ports present the entry of the NEXT node
        # (j + 1); the current node's entry is held in registers, loaded from the ports when the engine
        # moves on. So no block RAM output decides an address in the cycle it arrives.
        cur_node = Signal.like(self.node_data)
        cur_cnt = Signal.like(self.count_data)

        def field(name):
            off, width = nf.offsets[name]
            return cur_node[off:off + width]

        cf, pf = mm.count_fields(cfg), mm.pool_fields()

        def pfield(name):
            off, width = pf.offsets[name]
            return self.pool_data[off:off + width]

        cnt = Signal(unsigned(cf.offsets["count"][1]))
        sel = Signal(unsigned(cf.offsets["sel"][1]))
        m.d.comb += cnt.eq(cur_cnt[:len(cnt)]), sel.eq(cur_cnt[len(cnt):len(cnt) + len(sel)])
        base = field("base")
        # the node's bits, Ms, Ss: from the node table or (pool input) the pool table. The pool read is
        # one stage down the pipeline (stage 1), from a registered address (timing: the distributed RAM
        # read and its routing get a cycle of their own); the node-table fields travel alongside.
        c0_paddr = Signal.like(self.pool_addr)
        c0_nbits, c0_nms, c0_nss = Signal.like(field("bits")), Signal.like(field("src_mult")), \
            Signal.like(field("src_shift"))
        m.d.sync += [c0_paddr.eq(self.pool_off + Mux(self.pool_in, sel, 0)), c0_nbits.eq(field("bits")),
                     c0_nms.eq(field("src_mult")), c0_nss.eq(field("src_shift"))]
        m.d.comb += self.pool_addr.eq(c0_paddr)
        bits = Signal.like(field("bits"))                 # of the word in stage 1
        ms, ss = Signal(unsigned(fp.MULT_BITS)), Signal.like(field("src_shift"))
        m.d.comb += [bits.eq(Mux(self.pool_in, pfield("bits"), c0_nbits)),
                     ms.eq(Mux(self.pool_in, pfield("src_mult"), c0_nms)),
                     ss.eq(Mux(self.pool_in, pfield("src_shift"), c0_nss))]
        ff = mm.feat_fields(cfg)

        # the feature word is registered as it leaves the block RAM (timing: the RAM's clock-to-out
        # and the routing to the weight address and the lanes no longer share a cycle)
        feat_r = Signal.like(self.feat_data)
        m.d.sync += feat_r.eq(self.feat_data)

        def tag(name):
            off, width = ff.offsets[name]
            return feat_r[off:off + width]


        # ---- issue stage ------------------------------------------------------------------------
        setup1, setup2 = Signal(), Signal()
        active = Signal()
        j = Signal(unsigned(count_bits(cfg.max_nodes)))
        t_o = Signal(unsigned(count_bits(cfg.max_tiles_out)))
        k = Signal(unsigned(len(cnt)))                     # stored word of node j
        k1 = Signal(unsigned(len(cnt) + 1))                # k + 1, kept in a register (timing)
        wrow = Signal(unsigned(self.aw["weight"]))          # w_off + t_o * T_in
        xw_row = Signal(unsigned(self.aw["xw"]))            # t_o * N + j
        na1 = Signal.like(self.node_addr)                   # node_off + j + 1 (the entry at the ports)
        na2 = Signal.like(self.node_addr)                   # node_off + j + 2 (the one after)

        # Every term that decides the next address is a register: the count of node j is in cur_cnt,
        # k + 1 is a register, both candidate addresses are registers, and whether t_o / j is the last
        # tile / node is a flag kept beside them (not a compare with the descriptor's t_out - 1 and
        # n_nodes - 1 on the descriptor -> node-table address path: "Timing closure", step 21).
        empty = cnt == 0
        last_k = empty | (k1 == cnt)
        last_to, last_j = Signal(name="last_to"), Signal(name="last_j")
        node_end = active & last_k & last_to
        advance = node_end & ~last_j                        # node j + 1 becomes current
        m.d.comb += [
            self.node_addr.eq(Mux(advance, na2, na1)),
            self.feat_addr.eq(base + k),
        ]

        with m.If(self.start):
            m.d.sync += [setup1.eq(1), j.eq(0), t_o.eq(0), k.eq(0), k1.eq(1), wrow.eq(self.w_off), xw_row.eq(0),
                         na1.eq(self.node_off), na2.eq(self.node_off + 1),
                         last_to.eq(self.t_out == 1), last_j.eq(self.n_nodes == 1)]
        with m.If(setup1):      # node 0 addressed
            m.d.sync += [setup1.eq(0), setup2.eq(1), na1.eq(na2), na2.eq(na2 + 1)]
        with m.If(setup2):      # node 0's entry arrives; node 1 addressed
            m.d.sync += [setup2.eq(0), active.eq(1), cur_node.eq(self.node_data), cur_cnt.eq(self.count_data)]
        with m.If(advance):
            m.d.sync += [cur_node.eq(self.node_data), cur_cnt.eq(self.count_data), na1.eq(na2), na2.eq(na2 + 1)]
        with m.If(active):
            with m.If(~last_k):
                m.d.sync += [k.eq(k1), k1.eq(k1 + 1)]
            with m.Else():
                m.d.sync += [k.eq(0), k1.eq(1)]
                with m.If(~last_to):
                    m.d.sync += [t_o.eq(t_o + 1), wrow.eq(wrow + self.t_in), xw_row.eq(xw_row + self.n_nodes),
                                 last_to.eq(t_o + 2 == self.t_out)]
                with m.Else():
                    m.d.sync += [t_o.eq(0), wrow.eq(self.w_off), j.eq(j + 1), xw_row.eq(j + 1),
                                 last_to.eq(self.t_out == 1), last_j.eq(j + 2 == self.n_nodes)]
                    with m.If(last_j):
                        m.d.sync += active.eq(0)

        # ---- stage 1: the feature word and its tag arrive and are registered ----------------------
        c0_valid, c0_first, c0_last, c0_zero = Signal(), Signal(), Signal(), Signal()
        c0_wrow = Signal.like(wrow)
        m.d.sync += [c0_valid.eq(active), c0_first.eq(k == 0), c0_last.eq(last_k), c0_zero.eq(empty),
                     c0_wrow.eq(wrow)]
        # ---- stage 1b (issue + 2): the registered tag gives the weight address ---------------------
        c1_valid, c1_first, c1_last, c1_zero = Signal(), Signal(), Signal(), Signal()
        c1_wrow = Signal.like(wrow)
        c1_bits = Signal.like(bits)
        m.d.sync += [c1_valid.eq(c0_valid), c1_first.eq(c0_first), c1_last.eq(c0_last), c1_zero.eq(c0_zero),
                     c1_wrow.eq(c0_wrow), c1_bits.eq(bits)]
        # a node without stored words reads no real word: its lanes, plane and sign are gated to 0.
        # The weight address is registered (``w_addr_r``, issue + 2), then copied into one kept register
        # per weight bank (issue + 3), which addresses its bank (issue + 4; module docstring)
        w_addr_r = Signal(unsigned(self.aw["weight"]))
        m.d.sync += w_addr_r.eq(Mux(c1_zero, c1_wrow, c1_wrow + tag("tile")))
        w_copies = kept_copies(m, "sync", w_addr_r, P, "w_addr_b")
        # the engine owns the weight read port from two cycles after it starts until two after its last
        # XW write (its first weight read is FIRST_ISSUE + 4 cycles after start): one register, then
        # one kept copy per bank
        own_copies = ownership_copies(m, "sync", self.busy, P, "w_own_b")
        m.d.comb += [self.w_addr.eq(Cat(*w_copies)), self.w_own.eq(Cat(*own_copies))]

        # ---- stage 2: the bit-plane word and its control, registered from the tag (issue + 2) -----
        c2_valid, c2_first, c2_last, c2_neg = Signal(), Signal(), Signal(), Signal()
        c2_plane = Signal(unsigned(PLANE_BITS))
        c2_lanes = Signal(unsigned(L))
        m.d.sync += [
            c2_valid.eq(c1_valid), c2_first.eq(c1_first), c2_last.eq(c1_last),
            c2_neg.eq(self.in_signed & ~c1_zero & (tag("plane") == (c1_bits - 1)[:PLANE_BITS])),
            c2_plane.eq(Mux(c1_zero, 0, tag("plane"))),
            c2_lanes.eq(Mux(c1_zero, 0, tag("lanes"))),
        ]
        # side information, delayed to line up with the PE result (issue + PE_DONE: Ms, Ss) and with
        # the rescaled values (issue + DRAIN: the XW address)
        def delay(value, cycles, name):
            return delay_line(m, value, cycles, name)[-1]

        # ms, ss are of stage 1; their last delay stage is kept copies beside each source rescaler's DSPs
        # (``scale_pe<o>``, and ``mult_hi_pe<o>`` where the multiply splits: rescale.scale_operands)
        scale_ops = scale_operands(m, delay(Cat(ms, ss), PE_DONE - 2, "scale"), P, "scale_pe", "mult_hi_pe",
                                   wd.combine_acc)
        xw_d = delay(xw_row, DRAIN, "xw")

        # the bit-plane word and its control wait for the weight word (the weight address stages)
        pe_in = delay(Cat(c2_valid, c2_first, c2_last, c2_neg, c2_plane, c2_lanes), W_ADDR_STAGES, "pe_in")
        p_valid, p_first, p_last, p_neg = pe_in[0], pe_in[1], pe_in[2], pe_in[3]
        p_plane, p_lanes = pe_in[4:4 + PLANE_BITS], pe_in[4 + PLANE_BITS:]

        pes = []
        for o in range(P):
            pe = BitSerialPE(L, wb, wd.combine_acc)
            m.submodules[f"pe{o}"] = pe
            m.d.comb += [
                pe.valid.eq(p_valid), pe.first.eq(p_first), pe.last.eq(p_last),
                pe.plane.eq(p_plane), pe.negate.eq(p_neg), pe.bits.eq(p_lanes),
                pe.weights.eq(self.w_data[o * L * wb:(o + 1) * L * wb]),
            ]
            pes.append(pe)

        # ---- SRC_RESCALE: issue + PE_DONE (PE done) -> issue + DRAIN (XW write) ------------------
        results = []
        for o, pe in enumerate(pes):
            rs = Rescaler(wd.combine_acc, fp.Y_BITS, mult_hi=splits(wd.combine_acc))
            m.submodules[f"src_rescale{o}"] = rs
            m.d.comb += [rs.valid.eq(pe.done), rs.value.eq(pe.acc), *drive(rs, scale_ops[o])]
            results.append(rs)
        m.d.comb += [
            self.xw_en.eq(results[0].out_valid),
            self.xw_addr.eq(xw_d),
            self.xw_data.eq(Cat(*[rs.result for rs in results])),
        ]
        # issue-valid delayed 1..DRAIN cycles: the engine is busy until the last XW write is done
        v = delay_line(m, c0_valid, DRAIN - 1, "v")
        m.d.comb += self.busy.eq(self.start | setup1 | setup2 | active | Cat(*v).any())
        return m
