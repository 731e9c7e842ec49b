"""Top level: the bit-serial GNN accelerator.

Ports (clock ``clk``, synchronous reset ``rst``, both from Amaranth's default ``sync`` domain):

============= ====== ===================================================================================
port          dir    meaning
============= ====== ===================================================================================
mem_sel       in     memory select, ``memory_map.MEM_SEL`` (desc, node, feat, weight, chan, edge, xw, out,
                     count, pool, thr)
mem_addr      in     word address in the selected memory
mem_wdata     in     word to write (low bits used; width = widest memory word)
mem_we        in     write ``mem_wdata`` at ``mem_addr`` of ``mem_sel`` this clock (ignored while busy)
mem_rdata     out    word at (mem_sel, mem_addr) held for the last READ_LATENCY = 2 clocks;
                     valid only while not busy; zero-extended
start         in     pulse (or level) while idle: clear the counters and run from layer 0
busy          out    high from the clock after ``start`` until the run completes
done          out    high after a run completed, until the next ``start``
error         out    sticky: the packer received a group before finishing the previous one (never
                     happens by construction; cleared by ``start``)
cyc_total     out    counters, ``counter_bits`` wide, see ``hw/counters.py`` and docs/hardware.md
cyc_combine   out
cyc_aggregate out
cyc_requant   out
cyc_stall     out
cyc_select    out    (the NNS select pass)
============= ====== ===================================================================================

Loading is one clock per word: hold ``mem_we`` high and present a new (sel, addr, data) every clock.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import memory_map as mm
from .aggregate import AggregateEngine, xw_bank_widths
from .combine import CombineEngine
from .config import AcceleratorConfig, addr_bits
from .counters import COUNTERS, CycleCounters
from .memories import COLLISION_DONT_CARE, BankedMemory
from .packer import Packer
from .requant import Requantizer
from .select import NNSSelector
from .sequencer import Sequencer

#: Memories built from one bank per PE (see hw/memories.py).
BANKED = ("weight", "chan")
#: Memories built from one bank per block RAM, addressed per bank too (the XW buffer: hw/aggregate.py)
BRAM_BANKED = ("xw",)
#: memories whose port muxes (engine vs load port) get their own copy of the sequencer's busy: one
#: register beside each memory instead of one routed across the die (timing: hw/replicate.py)
BUSY_COPIES = ("desc", "thr", "feat", "weight", "chan", "edge", "xw", "out", "count")


class Accelerator(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig, *, sim_init: dict[str, list[int]] | None = None):
        """``sim_init``: optional initial memory contents (for simulation only; the generator never
        passes it, so the Verilog carries no initial blocks)."""
        self.cfg = cfg
        self.sim_init = sim_init or {}
        self.shapes = mm.memory_shapes(cfg)
        pw = mm.load_port_widths(cfg)
        self.port_widths = pw
        super().__init__({
            "mem_sel": In(pw["mem_sel"]),
            "mem_addr": In(pw["mem_addr"]),
            "mem_wdata": In(pw["mem_data"]),
            "mem_we": In(1),
            "mem_rdata": Out(pw["mem_data"]),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            **{name: Out(cfg.counter_bits) for name in COUNTERS},
        })
        # the memories, created here so tests can reach them (``acc.peek(ctx, name, addr)``); the
        # weight memory and the channel table are banked per PE (one narrow RAM per PE)
        self.mems = {}
        for name, (width, depth) in self.shapes.items():
            init = list(self.sim_init.get(name, ()))
            if name in BANKED:
                self.mems[name] = BankedMemory(width, depth, cfg.pes, init=init)
            elif name in BRAM_BANKED:
                self.mems[name] = BankedMemory(width, depth, init=init, bank_widths=xw_bank_widths(cfg))
            else:
                self.mems[name] = Memory(shape=unsigned(width), depth=depth, init=init, attrs=COLLISION_DONT_CARE)

    def peek(self, ctx, name: str, addr: int) -> int:
        """Word ``addr`` of memory ``name``, read directly in an amaranth.sim testbench."""
        mem = self.mems[name]
        return mem.sim_get(ctx, addr) if isinstance(mem, BankedMemory) else ctx.get(mem.data[addr])

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        for name, mem in self.mems.items():
            m.submodules[f"mem_{name}"] = mem

        seq = m.submodules.sequencer = Sequencer(cfg, busy_copies=BUSY_COPIES)
        comb = m.submodules.combine = CombineEngine(cfg)
        agg = m.submodules.aggregate = AggregateEngine(cfg)
        payload = (agg.g_bits, agg.g_base, agg.g_t_o, agg.g_index, agg.g_cnt_addr, agg.g_sel)
        payload_bits = sum(len(sig) for sig in payload)
        req = m.submodules.requant = Requantizer(cfg, payload_bits=payload_bits)
        pk = m.submodules.packer = Packer(cfg)
        ctr = m.submodules.counters = CycleCounters(cfg)
        nns = m.submodules.select = NNSSelector(cfg)

        busy = seq.busy
        busy_of = {name: seq.busy_copy[k] for k, name in enumerate(BUSY_COPIES)}
        busy_of.update({name: busy for name in mm.MEMORIES if name not in busy_of})
        # the phase's decoded flags are registers of the sequencer (timing: step 16)
        in_comb, in_sel = seq.in_combine, seq.in_select
        walking = seq.in_walk          # the aggregation engine owns its ports in both passes
        sel = {name: self.mem_sel == mm.MEM_SEL[name] for name in mm.MEMORIES}
        load_we = {name: self.mem_we & sel[name] & ~busy_of[name] for name in mm.MEMORIES}

        # ---- memory ports -------------------------------------------------------------------------
        def rport(name):
            return self.mems[name].read_port()

        def wport(name, granularity=None):
            if granularity is None:
                return self.mems[name].write_port()
            return self.mems[name].write_port(granularity=granularity)

        def addr(name):
            return self.mem_addr[:addr_bits(self.shapes[name][1])]

        # port 0: engine / debug read; the weight memory's, the channel table's and the XW buffer's are
        # addressed per bank (steps 12, 13 and 14, below)
        r = {name: self.mems[name].read_port(per_bank_addr=True) if name in BANKED + BRAM_BANKED else rport(name)
             for name in mm.MEMORIES}
        node_b = rport("node")                              # aggregation: next layer's node entry
        count_b = rport("count")                            # aggregation: next layer's count word (sel)
        pool_c = self.mems["pool"].read_port(domain="comb")  # combine: this layer's pair of the row
        pool_a = self.mems["pool"].read_port(domain="comb")  # aggregation: next layer's pair of the row
        w = {name: wport(name) for name in mm.MEMORIES}

        def low(value, width):
            return value[:width]

        # descriptor: addressed with the layer number while busy
        df = mm.desc_fields(cfg)
        desc = r["desc"].data

        def d(name):
            off, width = df.offsets[name]
            return desc[off:off + width]

        m.d.comb += [r["desc"].addr.eq(Mux(busy_of["desc"], seq.layer, addr("desc"))),
                     r["thr"].addr.eq(Mux(busy_of["thr"], seq.layer, addr("thr"))),
                     r["pool"].addr.eq(addr("pool"))]

        # node table: combine (port 0) or aggregate (ports 0 and B)
        m.d.comb += [
            r["node"].addr.eq(Mux(in_comb, comb.node_addr, Mux(walking, agg.node_addr, addr("node")))),
            node_b.addr.eq(agg.next_addr),
            count_b.addr.eq(agg.next_addr),
            agg.count_data.eq(count_b.data),
            pool_c.addr.eq(comb.pool_addr), comb.pool_data.eq(pool_c.data),
            pool_a.addr.eq(agg.pool_addr), agg.pool_data.eq(pool_a.data),
            comb.node_data.eq(r["node"].data),
            r["count"].addr.eq(Mux(in_comb, comb.node_addr, addr("count"))),
            comb.count_data.eq(r["count"].data),
            agg.node_data.eq(r["node"].data),
            agg.next_data.eq(node_b.data),
        ]
        # feature, weight: combine
        m.d.comb += [
            r["feat"].addr.eq(Mux(busy_of["feat"], comb.feat_addr, addr("feat"))),
            comb.feat_data.eq(r["feat"].data),
            comb.w_data.eq(r["weight"].data),
        ]
        # weight: each bank is addressed by its own copy of the engine's address register, or by the
        # load port, selected by its own copy of the engine's ownership bit (hw/combine.py): the port
        # mux and both registers sit beside the bank (timing: docs/hardware.md, "Timing closure", step 12)
        waw = addr_bits(self.shapes["weight"][1])
        for k, bank_addr in enumerate(r["weight"].bank_addr):
            m.d.comb += bank_addr.eq(Mux(comb.w_own[k], comb.w_addr[k * waw:(k + 1) * waw], addr("weight")))
        # the aggregation engine reads E XW rows per cycle: port 0 (shared with the debug read) + E-1.
        # Each bank (one block RAM) of each port is addressed by its own copy of the engine's address
        # register; port 0's by the load port instead when the bank's own ownership bit says the engine
        # is idle (hw/aggregate.py; step 14)
        xaw = addr_bits(self.shapes["xw"][1])
        xw_ports = [r["xw"]] + [self.mems["xw"].read_port(per_bank_addr=True)
                                for _ in range(cfg.edges_per_cycle - 1)]
        nxb = len(r["xw"].bank_addr)
        for q, port in enumerate(xw_ports):
            for k, bank_addr in enumerate(port.bank_addr):
                copy = agg.xw_addr[(q * nxb + k) * xaw:(q * nxb + k + 1) * xaw]
                m.d.comb += bank_addr.eq(Mux(agg.xw_own[k], copy, addr("xw")) if q == 0 else copy)
        m.d.comb += agg.xw_data.eq(Cat(*[port.data for port in xw_ports]))
        # chan: each bank addressed by its own copy of the aggregation engine's channel address or by
        # the load port, selected by its own ownership bit beside the bank (hw/aggregate.py; step 13)
        caw = addr_bits(self.shapes["chan"][1])
        for k, bank_addr in enumerate(r["chan"].bank_addr):
            m.d.comb += bank_addr.eq(Mux(agg.chan_own[k], agg.chan_addr[k * caw:(k + 1) * caw], addr("chan")))
        # chan, edge, xw reads: aggregate
        m.d.comb += [
            agg.chan_data.eq(r["chan"].data),
            r["edge"].addr.eq(Mux(busy_of["edge"], agg.edge_addr, addr("edge"))),
            agg.edge_data.eq(r["edge"].data),
            r["out"].addr.eq(addr("out")),
        ]
        # writes: the load port while idle; xw from combine, feat/out from the packer while busy
        for name in ("desc", "node", "weight", "chan", "edge", "pool", "thr"):
            width = self.shapes[name][0]
            m.d.comb += [w[name].addr.eq(addr(name)), w[name].data.eq(low(self.mem_wdata, width)),
                         w[name].en.eq(load_we[name])]
        m.d.comb += [
            w["xw"].addr.eq(Mux(busy_of["xw"], comb.xw_addr, addr("xw"))),
            w["xw"].data.eq(Mux(busy_of["xw"], comb.xw_data, low(self.mem_wdata, self.shapes["xw"][0]))),
            w["xw"].en.eq(Mux(busy_of["xw"], comb.xw_en, load_we["xw"])),
            w["out"].addr.eq(Mux(busy_of["out"], pk.out_addr, addr("out"))),
            w["out"].data.eq(Mux(busy_of["out"], pk.out_data, low(self.mem_wdata, self.shapes["out"][0]))),
            w["out"].en.eq(Mux(busy_of["out"], pk.out_en, load_we["out"])),
            w["feat"].addr.eq(Mux(busy_of["feat"], pk.feat_addr, addr("feat"))),
            w["feat"].data.eq(Mux(busy_of["feat"], pk.feat_data, low(self.mem_wdata, self.shapes["feat"][0]))),
            w["feat"].en.eq(Mux(busy_of["feat"], pk.feat_en, load_we["feat"])),
            w["count"].addr.eq(Mux(busy_of["count"], Mux(in_sel, nns.count_addr, pk.count_addr), addr("count"))),
            w["count"].data.eq(Mux(busy_of["count"], Mux(in_sel, nns.count_data, pk.count_data),
                                   low(self.mem_wdata, self.shapes["count"][0]))),
            w["count"].en.eq(Mux(busy_of["count"], Mux(in_sel, nns.count_en, pk.count_en), load_we["count"])),
        ]

        # ---- what the engines read and write, for the collision check (hw/amaranth_sim.py) ---------
        # (memory, read address, the engines consume the word) per read port (per bank where banks are
        # addressed apart) and (memory, write address, write enable) per write port: the memories carry
        # COLLISION_DONT_CARE (hw/memories.py), so no consumed read may hit the word being written. The
        # output memory's and pool table's synchronous ports are the host's alone: no tap
        engine_owned = {"desc": busy_of["desc"], "thr": busy_of["thr"], "node": in_comb | walking,
                        "count": in_comb, "feat": busy_of["feat"], "edge": busy_of["edge"]}
        bank_owner = {"weight": comb.w_own, "chan": agg.chan_own, "xw": agg.xw_own}
        self.read_taps = [(name, r[name].addr, engine_owned[name]) for name in engine_owned]
        self.read_taps += [(name, a, bank_owner[name][k]) for name in bank_owner
                           for k, a in enumerate(r[name].bank_addr)]
        self.read_taps += [("node", node_b.addr, walking), ("count", count_b.addr, walking)]
        self.read_taps += [("xw", a, agg.xw_own[k]) for port in xw_ports[1:] for k, a in enumerate(port.bank_addr)]
        self.write_taps = [(name, w[name].addr, w[name].en) for name in mm.MEMORIES]

        # ---- read-back (READ_LATENCY = 2, the address held) ------------------------------------------
        # the XW buffer's word comes from the aggregation engine's S2 registers, the only load on its block
        # RAMs' outputs (so synthesis puts them into the block RAMs' output registers: step 31), one clock
        # after the other memories' words; with (sel, addr) held for READ_LATENCY clocks every memory's
        # word is on ``mem_rdata``. The mux stays combinational: a register after it pulled every memory's
        # block RAMs towards one spot of the die (step 31, first two runs)
        sel_r = Signal.like(self.mem_sel)
        m.d.sync += sel_r.eq(self.mem_sel)
        with m.Switch(sel_r):
            for name in mm.MEMORIES:
                with m.Case(mm.MEM_SEL[name]):
                    m.d.comb += self.mem_rdata.eq(agg.xw_q if name == "xw" else r[name].data)
            with m.Default():   # selects past the last memory read 0 (and the case is complete for lint)
                m.d.comb += self.mem_rdata.eq(0)

        # ---- sequencer and engines ----------------------------------------------------------------
        m.d.comb += [
            seq.start.eq(self.start),
            seq.desc_last.eq(d("last")),
            seq.desc_select.eq(d("select")),
            seq.comb_busy.eq(comb.busy),
            seq.agg_busy.eq(agg.busy | req.busy | pk.busy | nns.busy),
            self.busy.eq(seq.busy),
            self.done.eq(seq.done),
            comb.start.eq(seq.comb_start),
            comb.t_in.eq(d("t_in")), comb.t_out.eq(d("t_out")), comb.in_signed.eq(d("in_signed")),
            comb.n_nodes.eq(d("n_nodes")), comb.node_off.eq(d("node_off")), comb.w_off.eq(d("w_off")),
            comb.pool_in.eq(d("pool_in")), comb.pool_off.eq(d("pool_off")),
            agg.start.eq(seq.agg_start),
            agg.t_out.eq(d("t_out")), agg.t_next.eq(d("t_next")), agg.last.eq(d("last")),
            agg.n_nodes.eq(d("n_nodes")), agg.node_off.eq(d("node_off")),
            agg.next_node_off.eq(d("next_node_off")), agg.ch_off.eq(d("ch_off")),
            agg.n_rows.eq(d("n_rows")), agg.edge_off.eq(d("edge_off")), agg.dense.eq(d("dense")),
            agg.select_mode.eq(in_sel), agg.pool_out.eq(d("select")), agg.next_pool_off.eq(d("next_pool_off")),
        ]
        # group -> requantizer -> packer
        m.d.comb += [
            req.valid.eq(agg.g_valid), req.sums.eq(agg.g_sum), req.chan.eq(agg.g_chan),
            req.dst_mult.eq(agg.g_dst_mult), req.dst_shift.eq(agg.g_dst_shift), req.bits.eq(agg.g_bits),
            req.out_signed.eq(d("out_signed")), req.last.eq(d("last")),
            req.payload.eq(Cat(*payload)),
        ]
        pay = req.out_payload
        o = 0
        fields, offs = [], []
        for sig in payload:
            fields.append(pay[o:o + len(sig)])
            offs.append(o)
            o += len(sig)
        off_t_o, off_cnt = offs[2], offs[4]
        m.d.comb += [
            pk.valid.eq(req.out_valid & ~in_sel), pk.q.eq(req.q),
            pk.bits.eq(fields[0]), pk.base.eq(fields[1]), pk.t_o.eq(fields[2]), pk.index.eq(fields[3]),
            pk.cnt_addr.eq(fields[4]), pk.sel.eq(fields[5]),
            pk.t_out.eq(d("t_out")), pk.t_next.eq(d("t_next")), pk.last.eq(d("last")),
        ]
        # the NNS selector: p of the select pass's groups (payload after the channel rescale)
        ppay = req.p_payload
        m.d.comb += [
            nns.valid.eq(req.p_valid & in_sel), nns.p.eq(req.p), nns.signed.eq(d("out_signed")),
            nns.t_o.eq(ppay[off_t_o:off_t_o + len(agg.g_t_o)]), nns.t_out.eq(d("t_out")),
            nns.cnt_addr.eq(ppay[off_cnt:off_cnt + len(agg.g_cnt_addr)]), nns.thr.eq(r["thr"].data),
        ]
        # error flag and counters
        with m.If(self.start & ~busy):
            m.d.sync += self.error.eq(0)
        with m.Elif(pk.overrun):
            m.d.sync += self.error.eq(1)
        m.d.comb += [ctr.clear.eq(self.start & ~busy), ctr.phase.eq(seq.phase), ctr.dense.eq(d("dense")),
                     ctr.walking.eq(agg.walking), ctr.stalled.eq(agg.stalled)]
        for name in COUNTERS:
            m.d.comb += getattr(self, name).eq(getattr(ctr, name))
        return m
