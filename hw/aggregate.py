"""Aggregation engine: walks the CSR edge stream and sums neighbour rows of the XW buffer,
``a[i, o] = sum_{e in row i} y[col[e], o]`` (plain integer adds; empty rows give 0).

Loop order: destination row i, output tile t_o (P channels), the row's edge words. One word of E
entries (``edges_per_cycle``) per cycle: E XW rows are read (E read ports of the XW buffer) and added
in one step; the row is walked once per output tile (the walker jumps back to the row start). A row's
entries fill ``ceil(len_i / E)`` words (padding entries are placeholders; an empty row is one
placeholder word, see ``memory_map.edge_words``), so row i costs ``ceil(max(len_i, 1) / E)`` cycles per
output tile, and a *group* (i, t_o) completes on the row's ``last`` word.

Back-pressure, made exact: group g's requantized values take ``W_g`` cycles to write (``pack_words``:
b'_i bit-plane words per L-lane tile of the next layer; 1 output word for the last layer). The last
entry of group g+1 may issue only ``W_g`` or more cycles after the last entry of group g, which keeps
the bit-plane packer (a fixed number of cycles downstream) free of overlap without a FIFO. The engine
therefore stalls ``max(0, W_g - A_{g+1})`` cycles before completing group g+1, where A is the group's
word count: a closed form the cycle model reproduces.

Format v2 modes (descriptor bits): the walker covers ``n_rows`` output rows (Q) of a stream that starts
at ``edge_off`` (the graph's CSR, or the graph membership of a pool layer) while the XW buffer holds
``n_nodes`` (R) rows per output tile; ``dense`` replaces the stream by the identity (row i's one entry
is i: no edge memory read, one cycle per group); ``select_mode`` (the NNS select pass) walks without
back-pressure, since the packer is off; ``pool_out`` takes the next layer's b' and this layer's
Md, Sd of row i from the NNS pool table at ``next_pool_off + sel_i``, where ``sel_i`` is the pair the
select pass stored in the next layer's count word of row i (prefetched with the node table).

Stages (entry visible in S1 at cycle c): S1 decides issue/stall, addresses XW (col + t_o*N) and the
channel table (``ch_a``); S2 (c+1) registers the XW words as they leave the block RAMs; a stage earlier the
channel address was copied per channel-table bank (``ch_addr_b<k>``, kept registers beside the banks, with
per-bank ownership bits ``ch_own_b<k>`` for the port mux: docs/hardware.md "Timing closure", step 13);
S3 (c+2) accumulates; the channel table is addressed one stage ahead of the XW buffer, so its word
leaves the banks in S2 and is registered for S3 (``s3_chan``); on a ``last`` entry the sums and the
channel word enter the group registers (c+3). The entry in S1
and the current row's node-table entries are registers, prefetched ahead from the edge (two entries:
``edge_q`` and the port) and node-table ports, so S1 sees them without bubbles, no block RAM output decides
an address, and the edge block RAM's word loads only registers with nothing but an enable in front.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import NODE_BITS_FIELD, SHIFT_BITS, AcceleratorConfig, addr_bits, count_bits
from .memories import bank_offsets, bram_bank_widths
from .pipeline import register_stage
from .replicate import KEEP_REGISTER, kept_copies, ownership_copies

#: Register stages between S1 and the XW read: the address register, then its per-bank copies.
XW_ADDR_STAGES = 2


def xw_bank_widths(cfg: AcceleratorConfig) -> list[int]:
    """The XW buffer's banks: one DP16KD block RAM each (``memories.bram_bank_widths``)."""
    width, depth = mm.memory_shapes(cfg)["xw"]
    return bram_bank_widths(width, depth)


def pack_words_bits(cfg: AcceleratorConfig) -> int:
    """Width of a group's write count W (<= 8 planes * P/L tiles)."""
    return count_bits(fp.MAX_NODE_BITS * max(1, cfg.pes // cfg.lanes))


def pack_words(m: Module, cfg: AcceleratorConfig, bits, t_o, t_next, last, name="w"):
    """Hardware expression of W: words the packer writes for group (node with next-layer ``bits``, t_o).

    last layer: 1 output word. Else ``bits * ntiles`` with ntiles = 1 if P <= L, else
    min(P/L, t_next - t_o*P/L) (the last group of a row may cover fewer than P/L tiles).
    Also returns ntiles and the group's first tile (for the packer).
    """
    L, P = cfg.lanes, cfg.pes
    wbits = pack_words_bits(cfg)
    ntiles = Signal(unsigned(count_bits(max(1, P // L))), name=f"{name}_ntiles")
    first_tile = Signal(unsigned(count_bits(cfg.max_tiles_in)), name=f"{name}_first_tile")
    if P <= L:
        m.d.comb += [ntiles.eq(1), first_tile.eq(t_o >> (L // P).bit_length() - 1)]
    else:
        R = P // L
        ft = t_o * R
        rem = t_next - ft
        m.d.comb += [first_tile.eq(ft), ntiles.eq(Mux(rem < R, rem, R))]
    w = Signal(unsigned(wbits), name=name)
    m.d.comb += w.eq(Mux(last, 1, bits * ntiles))
    return w, ntiles, first_tile


class AggregateEngine(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        self.nf = mm.node_fields(cfg)
        self.ef = mm.edge_fields(cfg)
        shapes = mm.memory_shapes(cfg)
        self.aw = {name: addr_bits(depth) for name, (_, depth) in shapes.items()}
        self.dw = {name: width for name, (width, _) in shapes.items()}
        self.xw_bank_widths = xw_bank_widths(cfg)
        self.bank_offsets = bank_offsets(self.xw_bank_widths)
        wd = cfg.widths
        P = cfg.pes
        super().__init__({
            "start": In(1),
            "busy": Out(1),        # S1, S2, S3 or the group register holds work
            "issuing": Out(1),     # S1 issues an entry this cycle
            "stalled": Out(1),     # S1 holds a last entry, waiting for the packer's budget
            "walking": Out(1),     # S1 is active (issuing or stalled)
            # descriptor fields
            "t_out": In(count_bits(cfg.max_tiles_out)),
            "t_next": In(count_bits(cfg.max_tiles_in)),
            "last": In(1),
            "n_nodes": In(count_bits(cfg.max_nodes)),
            "node_off": In(self.aw["node"]),
            "next_node_off": In(self.aw["node"]),
            "ch_off": In(self.aw["chan"]),
            "n_rows": In(count_bits(cfg.max_nodes)),
            "edge_off": In(self.aw["edge"]),
            "dense": In(1),
            "select_mode": In(1),
            "pool_out": In(1),
            "next_pool_off": In(self.aw["pool"]),
            # memory ports
            "edge_addr": Out(self.aw["edge"]),
            "edge_data": In(self.dw["edge"]),
            "node_addr": Out(self.aw["node"]),        # this layer's entry of row i (Md, Sd)
            "node_data": In(self.dw["node"]),
            "next_addr": Out(self.aw["node"]),        # next layer's entry of row i (bits, base)
            "next_data": In(self.dw["node"]),
            # E XW read addresses, one copy per XW bank each (entry q's copy for bank k at
            # [(q*B + k)*aw, ...), B = len(xw_bank_widths)), and per bank of port 0 (shared with the load
            # port's read) whether the engine owns it
            "xw_addr": Out(self.aw["xw"] * cfg.edges_per_cycle * len(self.xw_bank_widths)),
            "xw_own": Out(len(self.xw_bank_widths)),
            "xw_data": In(self.dw["xw"] * cfg.edges_per_cycle),     # E XW words, entry e at [e*dw, ...)
            "xw_q": Out(self.dw["xw"]),   # entry 0's word one clock after xw_data (S2; raw while idle)
            # the channel-table address, one copy per bank (bank k at [k*aw, (k+1)*aw)), and per bank
            # whether the engine owns the channel table's read port (else the load port addresses it)
            "chan_addr": Out(self.aw["chan"] * P),
            "chan_own": Out(P),
            "chan_data": In(self.dw["chan"]),
            "count_data": In(self.dw["count"]),       # next layer's count word of row i (at next_addr)
            "pool_addr": Out(self.aw["pool"]),        # asynchronous read: next_pool_off + sel_i
            "pool_data": In(self.dw["pool"]),
            # group output (to the requantizer)
            "g_valid": Out(1),
            "g_sum": Out(unsigned(P * wd.aggregate_acc)),
            "g_chan": Out(unsigned(self.dw["chan"])),
            "g_dst_mult": Out(unsigned(fp.MULT_BITS)),
            "g_dst_shift": Out(unsigned(SHIFT_BITS)),
            "g_bits": Out(unsigned(NODE_BITS_FIELD)),
            "g_base": Out(unsigned(self.aw["feat"])),
            "g_t_o": Out(unsigned(count_bits(cfg.max_tiles_out))),
            "g_index": Out(unsigned(self.aw["out"])),   # group number i*T_out + t_o = output address
            "g_cnt_addr": Out(unsigned(self.aw["count"])),  # next layer's count entry of node i
            "g_sel": Out(unsigned(mm.sel_bits(cfg))),        # NNS pair of row i (0 for a static next input)
        })

    def elaborate(self, platform):
        m = Module()
        cfg, nf, ef = self.cfg, self.nf, self.ef
        P, wd = cfg.pes, cfg.widths

        def fld(fields, data, name):
            off, width = fields.offsets[name]
            return data[off:off + width]

        E = cfg.edges_per_cycle
        # Prefetch (timing): the entry in S1 and the node-table entries of rows i, i+1, i+2 are registers
        # (q0 = the current row, q1, q2); the node-table ports present row i+3. The edge stream is two
        # deep: ``edge_q`` holds the entry after the one in S1 (its linear successor) and the edge port
        # presents the one after that, so the edge block RAM's output only loads registers with nothing but
        # their enable in front (``edge_q``, ``row1``: step 19), never a multiplexer or an address. A wrap back to
        # the row's first word takes it from ``row0``; its successor from ``row1`` (``use_row1``), while
        # the port already presents the row's third word. The NNS pool lookup of a row is done from
        # registers too (its address when the row enters q1, the pool entry when it enters q0), so it
        # reaches the back-pressure as a register.
        cur_e = Signal.like(self.edge_data)
        edge_q = Signal.like(self.edge_data)            # the linear successor of cur_e (unless use_row1)
        row0 = Signal.like(self.edge_data)              # the current row's first word (for the wrap)
        row1 = Signal.like(self.edge_data)              # the word after it (the successor after a wrap)
        use_row1 = Signal()                             # cur_e came from row0: its successor is row1
        succ = Signal.like(self.edge_data)              # cur_e's linear successor
        rows = [(Signal.like(self.node_data, name=f"q{k}_node"), Signal.like(self.next_data, name=f"q{k}_next"),
              Signal.like(self.count_data, name=f"q{k}_count")) for k in range(3)]
        cur_node, cur_next, cur_count = rows[0]
        m_cols, m_last, m_empty = (fld(ef, cur_e, k) for k in ("col", "last", "empty"))
        cw = len(m_cols) // E
        i = Signal(unsigned(count_bits(cfg.max_nodes)))
        # a dense layer's identity stream: row i's single entry is i (entries 1..E-1 placeholders)
        e_cols, e_last, e_empty = Signal.like(m_cols), Signal(), Signal.like(m_empty)
        m.d.comb += [e_cols.eq(Mux(self.dense, i[:cw], m_cols)), e_last.eq(self.dense | m_last),
                     e_empty.eq(Mux(self.dense, ((1 << E) - 1) & ~1, m_empty))]
        # the next layer's b' and this layer's Md, Sd: static (node table) or from the selected NNS pair
        cf, pf = mm.count_fields(cfg), mm.pool_fields()
        sel = Signal(unsigned(mm.sel_bits(cfg)))
        pool1_addr = Signal.like(self.pool_addr)        # pool entry of row i+1 (q1)
        cur_pool = Signal.like(self.pool_data)          # pool entry of row i (q0)
        m.d.comb += [sel.eq(Mux(self.pool_out, fld(cf, cur_count, "sel"), 0)), self.pool_addr.eq(pool1_addr)]
        nxt_bits, nxt_base = Signal(unsigned(NODE_BITS_FIELD)), fld(nf, cur_next, "base")
        md, sd = Signal(unsigned(fp.MULT_BITS)), Signal(unsigned(SHIFT_BITS))
        m.d.comb += [
            nxt_bits.eq(Mux(self.pool_out, fld(pf, cur_pool, "bits"), fld(nf, cur_next, "bits"))),
            md.eq(Mux(self.pool_out, fld(pf, cur_pool, "dst_mult"), fld(nf, cur_node, "dst_mult"))),
            sd.eq(Mux(self.pool_out, fld(pf, cur_pool, "dst_shift"), fld(nf, cur_node, "dst_shift"))),
        ]

        # ---- S1: edge walker ----------------------------------------------------------------------
        # setup: su1 row 0 addressed; su2, su3, su4 the node-table queue fills; the edge stream: su3
        # entry 0 addressed, su4 it arrives (entry 1 addressed), su5 entry 1 arrives (entry 2 addressed)
        su1, su2, su3, su4, su5, active = Signal(), Signal(), Signal(), Signal(), Signal(), Signal()
        e = Signal(unsigned(self.aw["edge"] + 1))      # position of the entry in S1
        rs = Signal(unsigned(self.aw["edge"] + 1))      # first entry of the current row
        t_o = Signal(unsigned(count_bits(cfg.max_tiles_out)))
        toff = Signal(unsigned(self.aw["xw"]))          # t_o * N
        ch_a = Signal(unsigned(self.aw["chan"]))        # ch_off + t_o, a register (timing: it addresses a wide
                                                         # distributed RAM)
        first = Signal()                                 # the entry in S1 starts a group
        g = Signal(unsigned(self.aw["out"] + 1))
        w, _, _ = pack_words(m, cfg, nxt_bits, t_o, self.t_next, self.last)
        cnt = Signal(unsigned(len(w)))                   # cycles the packer still needs
        cnt_nz = Signal(name="cnt_nz")                   # cnt != 0, a register set with cnt (timing: step 23)
        na, na1 = Signal.like(self.node_addr), Signal.like(self.node_addr)    # row at the ports, + 1
        xa, xa1 = Signal.like(self.next_addr), Signal.like(self.next_addr)    # (this layer, next layer)

        stall = Signal()
        issue = Signal()
        m.d.comb += [stall.eq(active & e_last & cnt_nz & ~self.select_mode), issue.eq(active & ~stall)]
        # whether t_o / i is the last tile / row: registers kept beside t_o and i (timing: the compares
        # with the descriptor's t_out - 1 and n_rows - 1 stay off the back-pressure -> node-table address
        # path, step 16)
        last_to, last_i = Signal(name="last_to"), Signal(name="last_i")
        wrap = issue & e_last & ~last_to                 # back to the row's first word, next t_o
        row_end = issue & e_last & last_to
        advance = row_end & ~last_i                      # row i + 1 becomes current
        su_shift = Signal(name="su_shift")               # su2 | su3 | su4, one register (timing: step 23)
        shift = su_shift | advance                       # the node-table queue moves by one row

        # the edge port is addressed two entries ahead of S1's (three when S1 issues, as S1 moves on); after
        # a wrap, with the row's third word (the first two are the row0/row1 registers)
        m.d.comb += [
            succ.eq(Mux(use_row1, row1, edge_q)),
            self.edge_addr.eq(Mux(su3, e, Mux(su4, e + 1, Mux(wrap, rs + 2, Mux(issue, e + 3, e + 2))))),
            self.node_addr.eq(Mux(shift, na1, na)),
            self.next_addr.eq(Mux(shift, xa1, xa)),
            self.issuing.eq(issue), self.stalled.eq(stall), self.walking.eq(active),
        ]
        cnt_dec = Mux(cnt == 0, 0, cnt - 1)
        with m.If(self.start):
            m.d.sync += [e.eq(self.edge_off), rs.eq(self.edge_off), i.eq(0), t_o.eq(0),
                         toff.eq(0), ch_a.eq(self.ch_off), first.eq(1), g.eq(0), cnt.eq(0), cnt_nz.eq(0),
                         last_to.eq(self.t_out == 1), last_i.eq(self.n_rows == 1),
                         na.eq(self.node_off), na1.eq(self.node_off + 1),
                         xa.eq(self.next_node_off), xa1.eq(self.next_node_off + 1)]
        m.d.sync += [su1.eq(self.start), su2.eq(su1), su3.eq(su2), su4.eq(su3), su5.eq(su4),
                     su_shift.eq(su1 | su2 | su3)]
        with m.If(su4):          # entry 0 arrives; the queue holds rows 0, 1, 2
            m.d.sync += edge_q.eq(self.edge_data)
        with m.If(su5):          # entry 1 arrives, entry 0 moves on to S1
            m.d.sync += [active.eq(1), cur_e.eq(edge_q), row0.eq(edge_q), use_row1.eq(0),
                         edge_q.eq(self.edge_data), row1.eq(self.edge_data)]
        with m.If(shift):
            m.d.sync += [na.eq(na1), na1.eq(na1 + 1), xa.eq(xa1), xa1.eq(xa1 + 1),
                         Cat(*rows[2]).eq(Cat(self.node_data, self.next_data, self.count_data)),
                         Cat(*rows[1]).eq(Cat(*rows[2])), Cat(*rows[0]).eq(Cat(*rows[1])),
                         pool1_addr.eq(self.next_pool_off + Mux(self.pool_out, fld(cf, rows[2][2], "sel"), 0)),
                         cur_pool.eq(self.pool_data)]
        with m.If(active):
            m.d.sync += [cnt.eq(cnt_dec), cnt_nz.eq(cnt > 1)]
            with m.If(issue):
                m.d.sync += first.eq(e_last)
                with m.If(wrap):
                    m.d.sync += [e.eq(rs), cur_e.eq(row0), use_row1.eq(1)]
                with m.Else():
                    m.d.sync += [e.eq(e + 1), cur_e.eq(succ), use_row1.eq(0), edge_q.eq(self.edge_data)]
                with m.If(e_last):
                    m.d.sync += [cnt.eq(w - 1), cnt_nz.eq(w != 1), g.eq(g + 1)]
                    with m.If(~last_to):
                        m.d.sync += [t_o.eq(t_o + 1), toff.eq(toff + self.n_nodes), ch_a.eq(ch_a + 1),
                                     last_to.eq(t_o + 2 == self.t_out)]
                    with m.Else():
                        m.d.sync += [t_o.eq(0), toff.eq(0), ch_a.eq(self.ch_off), rs.eq(e + 1),
                                     row0.eq(succ), row1.eq(self.edge_data), i.eq(i + 1), last_to.eq(self.t_out == 1),
                                     last_i.eq(i + 2 == self.n_rows)]
                        with m.If(last_i):
                            m.d.sync += [active.eq(0), i.eq(i), last_i.eq(1)]

        # ---- XW address stages (issue + 1, + 2): entry q's address ``col + t_o*N`` is registered
        # (``xw_addr_r<q>``), then copied into one kept register per XW bank (``xw_addr<q>_b<k>``, one
        # block RAM each), which addresses its bank; the die-crossing net is register to register
        # (docs/hardware.md, "Timing closure", step 14). The entry's control and row parameters travel
        # alongside (``a1_*``, ``a2_*``) --------------------------------------------------------------
        B = len(self.xw_bank_widths)
        xw_copies = []
        for q in range(E):
            xw_r = Signal(unsigned(self.aw["xw"]), name=f"xw_addr_r{q}")
            m.d.sync += xw_r.eq((e_cols[q * cw:(q + 1) * cw] + toff)[:self.aw["xw"]])
            xw_copies += kept_copies(m, "sync", xw_r, B, f"xw_addr{q}_b")
        # the engine owns port 0's banks (the load port reads them while it is idle): its first XW read
        # is XW_ADDR_STAGES cycles after its first issue (seven after start), the bits are set two after
        # start; they clear two after busy
        xw_own = ownership_copies(m, "sync", self.busy, B, "xw_own_b")
        m.d.comb += [self.xw_addr.eq(Cat(*xw_copies)), self.xw_own.eq(Cat(*xw_own))]
        s1 = dict(valid=issue, first=first, last=e_last, empty=e_empty, md=md, sd=sd, bits=nxt_bits,
                  base=nxt_base, t_o=t_o, g=g, cnt=(self.next_node_off + i)[:self.aw["count"]], sel=sel, ch=ch_a)
        stages = [s1]
        for k in range(1, XW_ADDR_STAGES + 1):
            stages.append(register_stage(m, stages[-1], f"a{k}"))
        x, in_flight = stages[-1], [st["valid"] for st in stages[1:]]

        # ---- S2: the E XW words arrive and are registered (timing: the block RAM's clock-to-out and
        # the accumulator's carry chain do not share a cycle); the channel word likewise -----------
        s2 = register_stage(m, {n: x[n] for n in ("valid", "first", "last", "md", "sd", "bits", "base", "t_o",
                                                  "g", "cnt", "sel")}, "s2")
        s3 = register_stage(m, s2, "s3")
        # the channel table (P banks, one per PE, all over the die) is addressed by one kept copy of
        # ch_a per bank, taken one address stage early (beside the last XW address stage), and its own copy
        # of the engine's ownership bit selects it over the load port beside the bank; the word leaves the
        # banks in S2 and is registered (``s3_chan``, timing: the block RAM's 5.6 ns clock-to-out and the
        # route to the group register do not share a cycle, step 27), so the group register takes it from
        # S3 as before (no extra latency)
        ch_copies = kept_copies(m, "sync", stages[-2]["ch"], P, "ch_addr_b")
        # ownership: busy is registered once, then copied per bank; the banks are first read at the first
        # issue's second address stage (five cycles after start), when the bits have been set for three
        # cycles; they clear two cycles after busy
        own_copies = ownership_copies(m, "sync", self.busy, P, "ch_own_b")
        m.d.comb += [self.chan_addr.eq(Cat(*ch_copies)), self.chan_own.eq(Cat(*own_copies))]
        s3_chan = Signal.like(self.chan_data, name="s3_chan")
        m.d.sync += s3_chan.eq(self.chan_data)
        dw = self.dw["xw"]
        # each lane keeps its own copy of the control that gates its registers (KEEP_REGISTER): one
        # merged copy would drive all P lanes' E*Y_BITS inputs and accumulator bits across the die
        lane_ctl = []
        for o in range(P):
            ctl = [Signal(len(v), name=f"s2_{n}_l{o}", attrs=KEEP_REGISTER)
                   for v, n in ((x["empty"], "empty"), (x["first"], "first"), (x["valid"], "valid"))]
            m.d.sync += [r.eq(v) for r, v in zip(ctl, (x["empty"], x["first"], x["valid"]), strict=True)]
            lane_ctl.append(ctl)
        # S2's XW registers, one per (entry q, XW bank): each holds exactly one block RAM's word, loaded
        # every cycle with nothing in front and no reset (``valid`` gates their use), so hw/synth.py moves
        # it into the block RAM's own output register (REGMODE OUTREG: 0.96 ns clock-to-out instead of
        # 5.83; docs/hardware.md, "Timing closure", step 31). Padding entries are zeroed in S3 instead,
        # beside the accumulator. Entry 0's registers are also the load port's XW read-back (``xw_q``).
        words = []
        for q in range(E):
            banks = []
            for k, (bw, off) in enumerate(zip(self.xw_bank_widths, self.bank_offsets, strict=True)):
                reg = Signal(bw, name=f"s2_xw{q}_b{k}", reset_less=True)
                m.d.sync += reg.eq(self.xw_data[q * dw + off:q * dw + off + bw])
                banks.append(reg)
            words.append(Cat(*banks))
        m.d.comb += self.xw_q.eq(words[0])

        # ---- S3: accumulate (a padding entry adds 0: its gate sits in parallel with the ``first`` gate on
        # the accumulator's other operand, so the adder's inputs keep one LUT level) --------------------
        nexts = []
        for o in range(P):
            empty_l, first_l, valid_l = lane_ctl[o]
            first3 = Signal(name=f"s3_first_l{o}", attrs=KEEP_REGISTER)
            valid3 = Signal(name=f"s3_valid_l{o}", attrs=KEEP_REGISTER)
            empty3 = Signal(E, name=f"s3_empty_l{o}", attrs=KEEP_REGISTER)
            m.d.sync += [first3.eq(first_l), valid3.eq(valid_l), empty3.eq(empty_l)]
            acc = Signal(signed(wd.aggregate_acc), name=f"acc{o}")
            ys = [Mux(empty3[q], 0, words[q][o * fp.Y_BITS:(o + 1) * fp.Y_BITS].as_signed()) for q in range(E)]
            nx = Signal(signed(wd.aggregate_acc), name=f"acc_next{o}")
            m.d.comb += nx.eq(Mux(first3, 0, acc) + sum(ys[1:], ys[0]))
            with m.If(valid3):
                m.d.sync += acc.eq(nx)
            nexts.append(nx)

        # ---- group registers ----------------------------------------------------------------------
        done = s3["valid"] & s3["last"]
        m.d.sync += self.g_valid.eq(done)
        with m.If(done):
            m.d.sync += [self.g_sum.eq(Cat(*nexts)), self.g_chan.eq(s3_chan),
                         self.g_dst_mult.eq(s3["md"]), self.g_dst_shift.eq(s3["sd"]), self.g_bits.eq(s3["bits"]),
                         self.g_base.eq(s3["base"]), self.g_t_o.eq(s3["t_o"]), self.g_index.eq(s3["g"]),
                         self.g_cnt_addr.eq(s3["cnt"]), self.g_sel.eq(s3["sel"])]
        m.d.comb += self.busy.eq(self.start | su1 | su2 | su3 | su4 | su5 | active | Cat(*in_flight).any()
                                 | s2["valid"] | s3["valid"] | self.g_valid)
        return m
