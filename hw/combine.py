"""Combination engine: P bit-serial PEs compute ``acc[j, o] = sum_k x[j, k] W[k, o]``, then SRC_RESCALE
``y = sat16(rescale(acc, Ms[j], Ss[j]))`` writes the XW buffer.

Loop order (outer to inner): node j, output tile t_o (P channels), input tile t_i (L features), plane
p (b_j planes). One (j, t_o, t_i, p) is issued per cycle with no bubble between nodes, so node j costs
exactly ``b_j * T_in * T_out`` cycles. Feature word of (j, t_i, p) is at ``base_j + t_i*b_j + p``: for
a fixed t_o the addresses run consecutively from ``base_j``; the weight word of (t_o, t_i) is at
``w_off + t_o*T_in + t_i``, which also runs consecutively over a node.

Node table reads are "read-next": the table port is addressed with the *next* node index, so in every
cycle its data is the entry of the current node (base, bits, Ms, Ss) -- no per-node bubble.

Pipeline (issue in cycle c): c+1 feature/weight words arrive, PE adder tree; c+2 PE accumulate;
c+3 PE sum complete -> rescale stage 1; c+4 rescale stage 2; c+5 XW write. See docs/hardware.md.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import AcceleratorConfig, addr_bits, count_bits
from .pe import PLANE_BITS, BitSerialPE
from .rescale import Rescaler

#: Cycles from the last issue to the XW write of the last group (inclusive of the write cycle).
DRAIN = 5


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
            # memory ports
            "node_addr": Out(self.aw["node"]),
            "node_data": In(self.dw["node"]),
            "feat_addr": Out(self.aw["feat"]),
            "feat_data": In(self.dw["feat"]),
            "w_addr": Out(self.aw["weight"]),
            "w_data": In(self.dw["weight"]),
            "xw_addr": Out(self.aw["xw"]),
            "xw_data": Out(self.dw["xw"]),
            "xw_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, nf, wd = self.cfg, self.nf, self.widths
        L, P, wb = cfg.lanes, cfg.pes, cfg.weight_bits

        def field(name):
            off, width = nf.offsets[name]
            return self.node_data[off:off + width]

        base, bits, ms, ss = field("base"), field("bits"), field("src_mult"), field("src_shift")

        # ---- issue stage ------------------------------------------------------------------------
        setup = Signal()
        active = Signal()
        j = Signal(unsigned(count_bits(cfg.max_nodes)))
        t_o = Signal(unsigned(count_bits(cfg.max_tiles_out)))
        t_i = Signal(unsigned(count_bits(cfg.max_tiles_in)))
        p = Signal(unsigned(PLANE_BITS))
        off = Signal(unsigned(self.aw["feat"] + 1))        # t_i * b_j + p within the node
        waddr = Signal(unsigned(self.aw["weight"]))
        xw_row = Signal(unsigned(self.aw["xw"]))            # t_o * N + j

        last_p = p == (bits - 1)[:PLANE_BITS]
        last_ti = t_i == self.t_in - 1
        last_to = t_o == self.t_out - 1
        last_j = j == self.n_nodes - 1
        node_end = active & last_p & last_ti & last_to

        j_next = Mux(node_end & ~last_j, j + 1, j)
        m.d.comb += [
            self.node_addr.eq(self.node_off + j_next),
            self.feat_addr.eq(base + off),
            self.w_addr.eq(waddr),
        ]

        with m.If(self.start):
            m.d.sync += [setup.eq(1), j.eq(0), t_o.eq(0), t_i.eq(0), p.eq(0), off.eq(0),
                         waddr.eq(self.w_off), xw_row.eq(0)]
        with m.If(setup):
            m.d.sync += [setup.eq(0), active.eq(1)]
        with m.If(active):
            with m.If(~last_p):
                m.d.sync += [p.eq(p + 1), off.eq(off + 1)]
            with m.Else():
                m.d.sync += p.eq(0)
                with m.If(~last_ti):
                    m.d.sync += [t_i.eq(t_i + 1), off.eq(off + 1), waddr.eq(waddr + 1)]
                with m.Else():
                    m.d.sync += [t_i.eq(0), off.eq(0)]
                    with m.If(~last_to):
                        m.d.sync += [t_o.eq(t_o + 1), waddr.eq(waddr + 1), xw_row.eq(xw_row + self.n_nodes)]
                    with m.Else():
                        m.d.sync += [t_o.eq(0), waddr.eq(self.w_off), j.eq(j + 1), xw_row.eq(j + 1)]
                        with m.If(last_j):
                            m.d.sync += active.eq(0)

        # ---- stage 1: memory data arrives; control registered alongside -----------------------
        c1_valid, c1_first, c1_last, c1_neg = Signal(), Signal(), Signal(), Signal()
        c1_plane = Signal(unsigned(PLANE_BITS))
        m.d.sync += [
            c1_valid.eq(active),
            c1_first.eq((t_i == 0) & (p == 0)),
            c1_last.eq(last_p & last_ti),
            c1_neg.eq(self.in_signed & last_p),
            c1_plane.eq(p),
        ]
        # side information, delayed to line up with the PE result (issue + 3: Ms, Ss) and with the
        # rescaled values (issue + 5: the XW address)
        def delay(value, cycles, name):
            stages = [value]
            for k in range(cycles):
                r = Signal(len(value), name=f"{name}_d{k + 1}")
                m.d.sync += r.eq(stages[-1])
                stages.append(r)
            return stages[-1]

        scale3 = delay(Cat(ms, ss), 3, "scale")
        xw5 = delay(xw_row, DRAIN, "xw")

        pes = []
        for o in range(P):
            pe = BitSerialPE(L, wb, wd.combine_acc)
            m.submodules[f"pe{o}"] = pe
            m.d.comb += [
                pe.valid.eq(c1_valid), pe.first.eq(c1_first), pe.last.eq(c1_last),
                pe.plane.eq(c1_plane), pe.negate.eq(c1_neg), pe.bits.eq(self.feat_data),
                pe.weights.eq(self.w_data[o * L * wb:(o + 1) * L * wb]),
            ]
            pes.append(pe)

        # ---- SRC_RESCALE: issue + 3 (PE done) -> issue + 5 (XW write) ----------------------------
        r_ms, r_ss = scale3[:fp.MULT_BITS], scale3[fp.MULT_BITS:]
        results = []
        for o, pe in enumerate(pes):
            rs = Rescaler(wd.combine_acc, fp.Y_BITS)
            m.submodules[f"src_rescale{o}"] = rs
            m.d.comb += [rs.valid.eq(pe.done), rs.value.eq(pe.acc), rs.mult.eq(r_ms), rs.shift.eq(r_ss)]
            results.append(rs)
        m.d.comb += [
            self.xw_en.eq(results[0].out_valid),
            self.xw_addr.eq(xw5),
            self.xw_data.eq(Cat(*[rs.result for rs in results])),
        ]
        # issue-valid delayed 1..DRAIN cycles: the engine is busy until the last XW write is done
        v = [c1_valid]
        for k in range(2, DRAIN + 1):
            vk = Signal(name=f"v{k}")
            m.d.sync += vk.eq(v[-1])
            v.append(vk)
        m.d.comb += self.busy.eq(self.start | setup | active | Cat(*v).any())
        return m
