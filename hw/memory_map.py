"""The memory map: the ONE place that turns a ``Program`` + ``AcceleratorConfig`` into memory images.

Used by the RTL (field layouts), the amaranth.sim tests and the cocotb testbench. Everything about
where a value lives on chip is decided here and documented in docs/hardware.md ("Memory map").

Typical use::

    from hw import memory_map as mm
    imgs = mm.images(program, config)          # {mem name: [word, ...]} to write from address 0
    for sel, addr, word in mm.load_words(imgs):  # one clock per word through the load port
        ...                                    # mem_sel=sel, mem_addr=addr, mem_wdata=word, mem_we=1
    # start, wait for done, read config.out_words... words of mm.MEM_SEL["out"]
    logits = mm.decode_output(out_words, program, config)   # int64 [N, F_out]

Memories (``mem_sel`` = index in ``MEMORIES``):

====== ======================================================== ===================================
name   word                                                     address
====== ======================================================== ===================================
desc   layer descriptor (``desc_fields``)                       layer
node   node table entry (``node_fields``)                       layer * N + node
feat   one bit-plane word of one L-lane tile of one node, with  base[l][j] + k (k-th stored word of
       its (tile, plane) tag (``feat_fields``)                  node j, (tile, plane) order)
weight P*L weights of one (output tile, input tile), wb each    w_off[l] + t_out * T_in + t_in
chan   P channel entries (``chan_lane_fields``)                 ch_off[l] + t_out
edge   E CSR edge stream entries of one row (``edge_fields``)   word (rows in order)
xw     P Y_BITS-wide y values of one (node, output tile)      t_out * N + node
out    P 16-bit logits of one (node, output tile)               node * T_out + t_out
count  stored feature words of one row + its NNS pair (``sel``)  node_off[l] + row
pool   one NNS pair of a layer input (``pool_fields``)          pool_off[l] + pair
thr    the NNS thresholds layer l's select pass compares with   layer
====== ======================================================== ===================================

Rows: layer l combines its R_l input rows (N nodes, or G graphs after a pool layer) and aggregates
into its Q_l output rows (Q = G for a pool layer); its node-table entries are ``node_off[l] + row``
(``node_off`` = the cumulative R of the layers before).

With ``zero_skip`` only the bit-plane words that are not all zero are stored (layer 0 by this module,
hidden layers by the packer at run time, which also writes their counts); without it every word is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from a2q import fixedpoint as fp

from .config import NODE_BITS_FIELD, SHIFT_BITS, AcceleratorConfig, addr_bits, ceil_div, count_bits

MEMORIES = ("desc", "node", "feat", "weight", "chan", "edge", "xw", "out", "count", "pool", "thr")
#: Width of one NNS threshold (the row max v lies in [0, 2^23]; unused slots hold 2^24 - 1 > v).
THR_BITS = fp.P_BITS
THR_UNUSED = (1 << THR_BITS) - 1
MEM_SEL = {name: i for i, name in enumerate(MEMORIES)}
#: Memories the engines write while running (not loaded by a testbench; readable afterwards).
RESULT_MEMORIES = ("xw", "out")
#: Clocks for which (mem_sel, mem_addr) are held with mem_we=0 before mem_rdata holds the word (the XW
#: buffer's word arrives through the aggregation engine's S2 registers, one clock after the others')
READ_LATENCY = 2


class Fields:
    """An ordered list of (name, width) bit fields, least significant first."""

    def __init__(self, fields: list[tuple[str, int]]):
        self.fields = list(fields)
        self.offsets = {}
        off = 0
        for name, width in self.fields:
            if width < 1:
                raise ValueError(f"field {name!r} has width {width}")
            self.offsets[name] = (off, width)
            off += width
        self.width = off

    def __iter__(self):
        return iter(self.fields)

    def __contains__(self, name):
        return name in self.offsets

    def pack(self, **values) -> int:
        word = 0
        for name, (off, width) in self.offsets.items():
            v = int(values.get(name, 0))
            if not 0 <= v < (1 << width):
                raise ValueError(f"field {name!r}={v} does not fit {width} bits (unsigned)")
            word |= v << off
        return word

    def pack_arrays(self, **values) -> list[int]:
        """Vectorised ``pack`` over equal-length arrays of non-negative field values."""
        n = len(next(iter(values.values())))
        if self.width <= 63:
            word = np.zeros(n, dtype=np.int64)
            for name, (off, width) in self.offsets.items():
                v = np.asarray(values.get(name, np.zeros(n)), dtype=np.int64)
                if v.size and (v.min() < 0 or v.max() >= (1 << width)):
                    raise ValueError(f"field {name!r} values do not fit {width} bits (unsigned)")
                word |= v << off
            return [int(w) for w in word]
        cols = {k: [int(x) for x in np.asarray(v)] for k, v in values.items()}
        return [self.pack(**{k: c[i] for k, c in cols.items()}) for i in range(n)]

    def unpack(self, word: int) -> dict:
        return {name: (int(word) >> off) & ((1 << width) - 1) for name, (off, width) in self.offsets.items()}

    def get(self, word: int, name: str) -> int:
        off, width = self.offsets[name]
        return (int(word) >> off) & ((1 << width) - 1)


# -- field layouts (functions of the config) --------------------------------------------------------
def feat_addr_bits(cfg: AcceleratorConfig) -> int:
    return addr_bits(cfg.depth("feat"))


def feat_fields(cfg: AcceleratorConfig) -> Fields:
    """Feature word: L lanes of one plane of one tile, tagged with the tile and the plane, so a node's
    words can be stored compacted (all-zero words left out) and still be matched to their weights."""
    return Fields([("lanes", cfg.lanes), ("tile", max(1, addr_bits(cfg.max_tiles_in))), ("plane", 3)])


def count_width(cfg: AcceleratorConfig) -> int:
    """Width of a count word: up to T_in * 8 stored words per node."""
    return count_bits(cfg.max_tiles_in * cfg.max_feature_bits)


def sel_bits(cfg: AcceleratorConfig) -> int:
    """Width of a selected NNS pair index (0 .. max_pool - 1)."""
    return count_bits(max(1, cfg.max_pool - 1))


def count_fields(cfg: AcceleratorConfig) -> Fields:
    """Count memory word: the row's stored feature words, and the NNS pair selected for the row at run
    time (0 for a static input). The packer (and the select pass) write it."""
    return Fields([("count", count_width(cfg)), ("sel", sel_bits(cfg))])


def pool_fields() -> Fields:
    """One NNS pair of a layer input: the bits and SRC multiplier the layer reads the row with, and the
    node-rescale multiplier of the layer before that writes it."""
    return Fields([("bits", NODE_BITS_FIELD), ("src_mult", fp.MULT_BITS), ("src_shift", SHIFT_BITS),
                   ("dst_mult", fp.MULT_BITS), ("dst_shift", SHIFT_BITS)])


def thr_width(cfg: AcceleratorConfig) -> int:
    """Threshold word: max_pool - 1 thresholds of THR_BITS, threshold t at bits [t*24, (t+1)*24)."""
    return THR_BITS * max(1, cfg.max_pool - 1)


def node_fields(cfg: AcceleratorConfig) -> Fields:
    """Node table: the node's feature base address and bits in this layer, and its multipliers."""
    return Fields([("base", feat_addr_bits(cfg)), ("bits", NODE_BITS_FIELD),
                   ("src_mult", fp.MULT_BITS), ("src_shift", SHIFT_BITS),
                   ("dst_mult", fp.MULT_BITS), ("dst_shift", SHIFT_BITS)])


def chan_lane_fields() -> Fields:
    """One PE's slice of a channel-table word (P slices per word, PE 0 least significant)."""
    return Fields([("mult", fp.MULT_BITS), ("shift", SHIFT_BITS), ("bias", fp.P_BITS)])


def edge_fields(cfg: AcceleratorConfig) -> Fields:
    """Edge stream word: E source nodes of one row (entry e at bits [e*cw, (e+1)*cw) of ``col``), the
    row's last word, and per entry a placeholder bit (``empty``: padding, or the one entry of an empty
    row). With E = 1 this is one (col, last, empty) entry per word."""
    e = cfg.edges_per_cycle
    return Fields([("col", e * addr_bits(max(2, cfg.max_nodes))), ("last", 1), ("empty", e)])


def desc_fields(cfg: AcceleratorConfig) -> Fields:
    """Layer descriptor. Tiles: t_in = ceil(F_in/L), t_out = ceil(F_out/P), t_next = ceil(F_out/L)."""
    return Fields([
        ("t_in", count_bits(cfg.max_tiles_in)),
        ("t_out", count_bits(cfg.max_tiles_out)),
        ("t_next", count_bits(cfg.max_tiles_in)),
        ("in_signed", 1),       # this layer's features are two's complement (sign plane subtracts)
        ("out_signed", 1),      # next layer's features are signed (signed clamp, else clamp at 0 = ReLU)
        ("last", 1),            # last layer: saturate to 16-bit logits into the output memory, then done
        ("n_nodes", count_bits(cfg.max_nodes)),
        ("node_off", addr_bits(cfg.depth("node"))),        # node table entries of this layer
        ("next_node_off", addr_bits(cfg.depth("node"))),   # ... and of the next layer (bits, base)
        ("w_off", addr_bits(cfg.depth("weight"))),
        ("ch_off", addr_bits(cfg.depth("chan"))),
        ("n_rows", count_bits(cfg.max_nodes)),         # output rows Q (n_nodes = input rows R)
        ("edge_off", addr_bits(cfg.depth("edge"))),    # first word of the stream this layer walks
        ("dense", 1),           # no edge stream: row i aggregates only itself (a = y)
        ("select", 1),          # the next input is an NNS pool: select pass, then pair-dependent b', Md
        ("pool_in", 1),         # this layer's inputs take bits and Ms/Ss from the pool table (sel)
        ("pool_off", addr_bits(cfg.depth("pool"))),        # this layer's pool (its inputs)
        ("next_pool_off", addr_bits(cfg.depth("pool"))),   # the next layer's pool (select, b', Md)
    ])


def word_widths(cfg: AcceleratorConfig) -> dict[str, int]:
    """Width in bits of a word of every memory."""
    return {
        "desc": desc_fields(cfg).width,
        "node": node_fields(cfg).width,
        "feat": feat_fields(cfg).width,
        "weight": cfg.pes * cfg.lanes * cfg.weight_bits,
        "chan": cfg.pes * chan_lane_fields().width,
        "edge": edge_fields(cfg).width,
        "xw": cfg.pes * fp.Y_BITS,
        "out": cfg.pes * fp.OUT_BITS,
        "count": count_fields(cfg).width,
        "pool": pool_fields().width,
        "thr": thr_width(cfg),
    }


def memory_shapes(cfg: AcceleratorConfig) -> dict[str, tuple[int, int]]:
    """{name: (word width, depth)} of every memory, in ``mem_sel`` order."""
    w = word_widths(cfg)
    return {name: (w[name], cfg.depth(name)) for name in MEMORIES}


def load_port_widths(cfg: AcceleratorConfig) -> dict[str, int]:
    """Widths of the load/read port: mem_sel, mem_addr (widest address), mem_wdata/rdata (widest word)."""
    shapes = memory_shapes(cfg)
    return {"mem_sel": count_bits(len(MEMORIES) - 1),
            "mem_addr": max(addr_bits(d) for _, d in shapes.values()),
            "mem_data": max(w for w, _ in shapes.values())}


# -- layout of a program ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerLayout:
    t_in: int
    t_out: int
    t_next: int
    feat_base: int      # first feature word of this layer's region
    feat_words: int     # words of this layer's region
    node_off: int
    w_off: int
    ch_off: int
    rows_in: int = 0    # R: input rows (combine)
    rows_out: int = 0   # Q: output rows (aggregation)
    edge_off: int = 0   # first edge-stream word this layer walks (0: the graph; pool: the membership)
    pool_off: int = 0   # this layer's NNS pool in the pool table (0 without one: a layer after the last pool
                        # would point one past the table, which its address field cannot hold)


def layout(program, cfg: AcceleratorConfig) -> list[LayerLayout]:
    """Where each layer lives. Layer l's input features occupy their own region of the feature memory
    (layer 0 loaded, layer l+1 written by layer l's packer), so every layer's input stays readable.
    Layer 0's region holds exactly its stored words; a hidden layer's region is reserved at the dense
    size (b_j * T_in words per node), of which the packer fills the first ``count`` words per node."""
    L, P = cfg.lanes, cfg.pes
    out, feat, w, ch, node, pool = [], 0, 0, 0, 0, 0
    member_off = int((-(-np.maximum(program.row_lengths, 1) // cfg.edges_per_cycle)).sum())
    for i, spec in enumerate(program.layers):
        t_in, t_out = ceil_div(spec.in_features, L), ceil_div(spec.out_features, P)
        words = int(region_words(program, cfg, i).sum())
        out.append(LayerLayout(t_in=t_in, t_out=t_out, t_next=ceil_div(spec.out_features, L),
                               feat_base=feat, feat_words=words, node_off=node, w_off=w, ch_off=ch,
                               rows_in=program.rows_in(i), rows_out=program.rows_out(i),
                               edge_off=member_off if spec.kind == "pool" else 0,
                               pool_off=pool if program.has_pool_input(i) else 0))
        feat += words
        w += t_in * t_out
        ch += t_out
        node += program.rows_in(i)
        pool += program.pool_size(i)
    return out


def region_words(program, cfg: AcceleratorConfig, layer: int) -> np.ndarray:
    """Words reserved per row in ``layer``'s feature region (an NNS pool input: its largest bits)."""
    from a2q.cycle_model import nonzero_words, region_bits

    if layer == 0 and cfg.zero_skip:
        return nonzero_words(program.arrays["x"], program.layer(0, "bits"), cfg.lanes)
    return region_bits(program, layer) * ceil_div(program.layers[layer].in_features, cfg.lanes)


def node_bases(program, cfg: AcceleratorConfig, layer: int) -> np.ndarray:
    """Feature base address of every node in ``layer`` (nodes in order, each with its reserved words;
    a node that stores no word gets base 0, which the engine never reads)."""
    lay = layout(program, cfg)[layer]
    words = region_words(program, cfg, layer)
    bases = lay.feat_base + np.concatenate([[0], np.cumsum(words)[:-1]]).astype(np.int64)
    return np.where(words > 0, bases, 0)


def _to_unsigned(v: np.ndarray, bits: int) -> np.ndarray:
    return np.asarray(v, dtype=np.int64) & ((1 << bits) - 1)


def feature_words(x: np.ndarray, bits: np.ndarray, lanes: int) -> np.ndarray:
    """Bit-plane words of features ``x`` [N, F] (two's complement) with per-node ``bits``.

    Node j contributes b_j * ceil(F/L) words in (tile, plane) order; lane k of a word is feature
    tile*L + k. Returns int64 words (L <= 64 bits; lanes beyond F are 0).
    """
    x = np.asarray(x, dtype=np.int64)
    n, f = x.shape
    t = ceil_div(f, lanes)
    u = np.zeros((n, t * lanes), dtype=np.int64)
    u[:, :f] = x & 0xFF
    u = u.reshape(n, t, lanes)
    weights = (np.ones(1, dtype=np.uint64) << np.arange(lanes, dtype=np.uint64)).astype(np.uint64)
    planes = np.stack([(((u >> p) & 1).astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
                       for p in range(fp.MAX_NODE_BITS)], axis=2)  # [N, T, 8]
    keep = np.arange(fp.MAX_NODE_BITS)[None, None, :] < np.asarray(bits, dtype=np.int64)[:, None, None]
    keep = np.broadcast_to(keep, planes.shape)
    return planes[keep].astype(np.int64) if lanes < 64 else planes[keep]


def stored_features(x: np.ndarray, bits: np.ndarray, cfg: AcceleratorConfig) -> tuple[list[int], np.ndarray]:
    """The tagged feature words of ``x`` [N, F] as the engines store them, and the count per node.

    Node j's words in (tile, plane) order; with ``cfg.zero_skip`` the all-zero ones are left out.
    """
    x = np.asarray(x, dtype=np.int64)
    n, f = x.shape
    L, t = cfg.lanes, ceil_div(f, cfg.lanes)
    ff = feat_fields(cfg)
    dense = feature_words(x, bits, L)            # every node's b_j * T words, (tile, plane) order
    bits = np.asarray(bits, dtype=np.int64)
    node = np.repeat(np.arange(n), bits * t)
    starts = np.concatenate([[0], np.cumsum(bits * t)[:-1]])
    k = np.arange(dense.shape[0]) - starts[node]   # index within the node
    tile, plane = k // bits[node], k % bits[node]
    keep = dense != 0 if cfg.zero_skip else np.ones(dense.shape[0], dtype=bool)
    counts = np.bincount(node[keep], minlength=n).astype(np.int64)
    lo, ti, pl = ff.offsets["lanes"][0], ff.offsets["tile"][0], ff.offsets["plane"][0]
    words = [(int(w) & ((1 << L) - 1)) << lo | int(a) << ti | int(b) << pl
             for w, a, b in zip(dense[keep], tile[keep], plane[keep], strict=True)]
    return words, counts


def weight_words(weight: np.ndarray, cfg: AcceleratorConfig) -> list[int]:
    """Weight words of one layer in (t_out, t_in) order: PE o, lane k at bit (o*L + k) * wb."""
    L, P, wb = cfg.lanes, cfg.pes, cfg.weight_bits
    f_in, f_out = weight.shape
    t_in, t_out = ceil_div(f_in, L), ceil_div(f_out, P)
    w = np.zeros((t_in * L, t_out * P), dtype=np.int64)
    w[:f_in, :f_out] = weight
    w = _to_unsigned(w, wb)
    words = []
    for to in range(t_out):
        for ti in range(t_in):
            block = w[ti * L:(ti + 1) * L, to * P:(to + 1) * P]  # [k, o]
            word = 0
            for o in range(P):
                for k in range(L):
                    word |= int(block[k, o]) << ((o * L + k) * wb)
            words.append(word)
    return words


def chan_words(mult, shift, bias, cfg: AcceleratorConfig) -> list[int]:
    """Channel-table words of one layer, one per output tile; padding channels are all zero."""
    P, lane = cfg.pes, chan_lane_fields()
    f_out = len(mult)
    words = []
    for to in range(ceil_div(f_out, P)):
        word = 0
        for o in range(P):
            c = to * P + o
            if c < f_out:
                word |= lane.pack(mult=int(mult[c]), shift=int(shift[c]),
                                  bias=int(bias[c]) & ((1 << fp.P_BITS) - 1)) << (o * lane.width)
        words.append(word)
    return words


def edge_stream(row_ptr: np.ndarray, col_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR as the aggregation engine walks it: (col, last, empty) per entry, rows in order; an empty
    row is one placeholder entry (empty=1, last=1), so every row ends with a ``last`` entry."""
    lens = np.diff(np.asarray(row_ptr, dtype=np.int64))
    cols, last, empty = [], [], []
    for i, ln in enumerate(lens):
        if ln == 0:
            cols.append(0)
            last.append(1)
            empty.append(1)
        else:
            s = int(row_ptr[i])
            cols.extend(int(c) for c in col_idx[s:s + ln])
            last.extend([0] * (ln - 1) + [1])
            empty.extend([0] * ln)
    return np.array(cols, dtype=np.int64), np.array(last, dtype=np.int64), np.array(empty, dtype=np.int64)


def edge_words(row_ptr: np.ndarray, col_idx: np.ndarray, cfg: AcceleratorConfig) -> list[int]:
    """Edge memory words: each row's entries in words of E (a row starts a new word; the last word
    is padded with placeholders), ``last`` on the row's final word; an empty row is one placeholder."""
    e, ef = cfg.edges_per_cycle, edge_fields(cfg)
    cw = ef.offsets["col"][1] // e
    lens = np.diff(np.asarray(row_ptr, dtype=np.int64))
    words = []
    for i, ln in enumerate(lens):
        cols = [int(c) for c in col_idx[int(row_ptr[i]):int(row_ptr[i]) + ln]]
        nw = max(1, -(-int(ln) // e))
        for k in range(nw):
            chunk = cols[k * e:(k + 1) * e]
            col = sum(c << (cw * q) for q, c in enumerate(chunk))
            empty = ((1 << e) - 1) & ~((1 << len(chunk)) - 1)
            words.append(ef.pack(col=col, last=int(k == nw - 1), empty=empty))
    return words


def edge_image(program, cfg: AcceleratorConfig) -> list[int]:
    """The edge memory: the graph's stream (rows = nodes), then, for a program with a pool layer, the
    membership stream (row g = graph g's nodes; an empty graph is one placeholder word)."""
    words = edge_words(program.arrays["row_ptr"], program.arrays["col_idx"], cfg)
    if program.num_graphs is not None:
        gptr = np.asarray(program.arrays["graph_ptr"], dtype=np.int64)
        words += edge_words(gptr, np.arange(int(gptr[-1]), dtype=np.int64), cfg)
    return words


def descriptors(program, cfg: AcceleratorConfig) -> list[int]:
    df = desc_fields(cfg)
    lay = layout(program, cfg)
    nl = program.num_layers
    words = []
    for i, spec in enumerate(program.layers):
        last = i == nl - 1
        select = not last and program.has_pool_input(i + 1)
        words.append(df.pack(
            t_in=lay[i].t_in, t_out=lay[i].t_out, t_next=lay[i].t_next,
            in_signed=int(spec.in_signed), out_signed=0 if last else int(program.layers[i + 1].in_signed),
            last=int(last), n_nodes=lay[i].rows_in, node_off=lay[i].node_off,
            next_node_off=lay[i + 1].node_off if not last else 0,
            w_off=lay[i].w_off, ch_off=lay[i].ch_off, n_rows=lay[i].rows_out, edge_off=lay[i].edge_off,
            dense=int(spec.kind == "dense"), select=int(select), pool_in=int(program.has_pool_input(i)),
            pool_off=lay[i].pool_off, next_pool_off=lay[i + 1].pool_off if not last else 0))
    return words


def pool_image(program, cfg: AcceleratorConfig) -> list[int]:
    """The NNS pool table: every pool-input layer's pairs in order (``layout(...)[l].pool_off``)."""
    pf = pool_fields()
    words = []
    for i in range(program.num_layers):
        if program.has_pool_input(i):
            words += pf.pack_arrays(**{k: program.layer(i, f"pool_{k}") for k, _ in pf})
    return words


def thr_image(program, cfg: AcceleratorConfig) -> list[int]:
    """Threshold words, one per layer: word l holds the thresholds of layer l+1's NNS pool (what layer
    l's select pass compares each row's max with), unused slots THR_UNUSED (never below a row max)."""
    words = []
    for i in range(program.num_layers):
        thr = [THR_UNUSED] * max(1, cfg.max_pool - 1)
        if i + 1 < program.num_layers and program.has_pool_input(i + 1):
            for t, v in enumerate(program.layer(i + 1, "pool_thr")):
                thr[t] = int(v)
        words.append(sum(v << (THR_BITS * t) for t, v in enumerate(thr)))
    return words


def images(program, cfg: AcceleratorConfig) -> dict[str, list[int]]:
    """Memory images of ``program`` for ``cfg``: {name: words to write from address 0}.

    Every memory of ``MEMORIES`` is a key; ``xw`` and ``out`` are empty (the engines write them).
    The feature image holds layer 0's region only (later regions are written by the hardware).
    Raises ``ConfigError`` if the program does not fit.
    """
    from a2q.cycle_model import region_bits

    cfg.check(program)
    nf = node_fields(cfg)
    node = []
    for i in range(program.num_layers):
        r = program.rows_in(i)

        def arr(name, i=i, r=r):
            """Static per-row values padded to R rows; 0 where the pool table holds them instead."""
            out = np.zeros(r, dtype=np.int64)
            if f"l{i}_{name}" in program.arrays:
                v = program.layer(i, name).astype(np.int64)
                out[:len(v)] = v
            return out

        node += nf.pack_arrays(
            base=node_bases(program, cfg, i), bits=region_bits(program, i),
            src_mult=arr("src_mult"), src_shift=arr("src_shift"),
            dst_mult=arr("dst_mult"), dst_shift=arr("dst_shift"))
    assert len(node) == sum(program.rows_in(i) for i in range(program.num_layers))
    weight, chan = [], []
    for i in range(program.num_layers):
        weight += weight_words(program.layer(i, "weight").astype(np.int64), cfg)
        chan += chan_words(program.layer(i, "ch_mult"), program.layer(i, "ch_shift"),
                           program.layer(i, "bias"), cfg)
    feat, counts = stored_features(program.arrays["x"], program.layer(0, "bits"), cfg)
    return {
        "desc": descriptors(program, cfg),
        "node": node,
        "feat": feat,
        "weight": weight,
        "chan": chan,
        "edge": edge_image(program, cfg),
        "xw": [],
        "out": [],
        "count": [int(c) for c in counts],   # layer 0's rows (sel = 0: layer 0's inputs are static)
        "pool": pool_image(program, cfg),
        "thr": thr_image(program, cfg),
    }


def feature_image(program, cfg: AcceleratorConfig, xs, sels=None) -> tuple[list[int], list[int]]:
    """The feature memory and the count memory with every layer's input ``xs[l]`` [R, F_in(l)] in its
    region (what they hold after a run: ``xs[l] = integer.run(program)[l].x``; the unused tail of a
    row's reserved words is 0 here). ``sels[l]``: the NNS pair of every input row of a pool-input
    layer (``integer.run(program)[l - 1].sel``). For tests and debugging."""
    lay = layout(program, cfg)
    feat = [0] * (lay[-1].feat_base + lay[-1].feat_words)
    counts = []
    cf = count_fields(cfg)
    for i, x in enumerate(xs):
        sel = np.zeros(program.rows_in(i), dtype=np.int64)
        if program.has_pool_input(i):
            sel = np.asarray(sels[i], dtype=np.int64)
            bits = program.layer(i, "pool_bits").astype(np.int64)[sel]
        else:
            bits = program.layer(i, "bits")
        words, cnt = stored_features(np.asarray(x), bits, cfg)
        bases = node_bases(program, cfg, i)
        starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        for j in range(program.rows_in(i)):
            feat[bases[j]:bases[j] + cnt[j]] = words[starts[j]:starts[j] + cnt[j]]
        counts += [cf.pack(count=int(c), sel=int(s)) for c, s in zip(cnt, sel, strict=True)]
    return feat, counts


def feature_kb(program, cfg: AcceleratorConfig) -> dict[str, float]:
    """Feature storage of ``program`` in KB (1024 bytes), summed over every layer's input: ``dense``,
    every bit-plane word of L bits; ``sparse``, the stored (non-zero) words with their (tile, plane)
    tags plus the count memory; ``reserved``, the feature memory the layout reserves (layer 0 as
    stored, hidden layers at the dense size, tagged words) plus the count memory."""
    from a2q.cycle_model import stored_words

    ff = feat_fields(cfg)
    dense = sum(stored_words(program, cfg.lanes, skip=False)[i].sum() for i in range(program.num_layers))
    nz = sum(w.sum() for w in stored_words(program, cfg.lanes, skip=bool(cfg.zero_skip)))
    counts = sum(program.rows_in(i) for i in range(program.num_layers)) * count_fields(cfg).width
    reserved = sum(lay.feat_words for lay in layout(program, cfg))
    kb = 8 * 1024
    return {"dense": float(dense * cfg.lanes / kb), "sparse": float((nz * ff.width + counts) / kb),
            "reserved": float((reserved * ff.width + counts) / kb)}


def feature_addresses(count_words, program, cfg: AcceleratorConfig, layer: int) -> list[int]:
    """Addresses of the words ``layer``'s region really holds (the first count_j of every node), given
    the count memory (from address 0): what a testbench reads back."""
    lay = layout(program, cfg)[layer]
    cf = count_fields(cfg)
    cnt = [cf.get(c, "count") for c in list(count_words)[lay.node_off:lay.node_off + lay.rows_in]]
    bases = node_bases(program, cfg, layer)
    return [int(a) for j in range(lay.rows_in) for a in range(bases[j], bases[j] + cnt[j])]


def xw_image(y, cfg: AcceleratorConfig) -> list[int]:
    """XW buffer words holding y [N, F_out] (address t_out * N + node). For tests and debugging."""
    y = np.asarray(y, dtype=np.int64)
    n, f_out = y.shape
    t_out = ceil_div(f_out, cfg.pes)
    pad = np.zeros((n, t_out * cfg.pes), dtype=np.int64)
    pad[:, :f_out] = y & ((1 << fp.Y_BITS) - 1)
    words = []
    for to in range(t_out):
        for j in range(n):
            word = 0
            for o in range(cfg.pes):
                word |= int(pad[j, to * cfg.pes + o]) << (fp.Y_BITS * o)
            words.append(word)
    return words


def load_words(imgs: dict[str, list[int]]):
    """(mem_sel, mem_addr, mem_wdata) for every word of ``imgs``, memory by memory."""
    for name in MEMORIES:
        sel = MEM_SEL[name]
        for addr, word in enumerate(imgs.get(name, ())):
            yield sel, addr, int(word)


# -- decoders ---------------------------------------------------------------------------------------
def _signed(v: np.ndarray, bits: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)


def _lanes(words, pes: int, bits: int) -> np.ndarray:
    """Split P*bits-wide words into an int64 array [len(words), P] of signed ``bits``-wide values."""
    out = np.zeros((len(words), pes), dtype=np.int64)
    for r, w in enumerate(words):
        w = int(w)
        for o in range(pes):
            out[r, o] = (w >> (bits * o)) & ((1 << bits) - 1)
    return _signed(out, bits)


def decode_output(words, program, cfg: AcceleratorConfig) -> np.ndarray:
    """Output memory words (address 0..Q*T_out-1) -> int64 logits [Q, F_out] (Q: nodes, or graphs)."""
    n, f_out = program.num_rows_out, program.layers[-1].out_features
    t_out = ceil_div(f_out, cfg.pes)
    v = _lanes(list(words)[:n * t_out], cfg.pes, fp.OUT_BITS).reshape(n, t_out * cfg.pes)
    return v[:, :f_out]


def decode_xw(words, program, cfg: AcceleratorConfig, layer: int) -> np.ndarray:
    """XW buffer words -> y [R, F_out] of ``layer`` (the buffer holds the most recent layer's y)."""
    n, f_out = program.rows_in(layer), program.layers[layer].out_features
    t_out = ceil_div(f_out, cfg.pes)
    v = _lanes(list(words)[:n * t_out], cfg.pes, fp.Y_BITS).reshape(t_out, n, cfg.pes)
    return v.transpose(1, 0, 2).reshape(n, t_out * cfg.pes)[:, :f_out]


def row_bits(program, cfg: AcceleratorConfig, layer: int, count_words) -> np.ndarray:
    """Bits of every input row of ``layer``: static, or the pool pair the hardware selected (the
    ``sel`` field of the row's count word)."""
    if not program.has_pool_input(layer):
        return program.layer(layer, "bits").astype(np.int64)
    lay = layout(program, cfg)[layer]
    cf = count_fields(cfg)
    sel = np.array([cf.get(c, "sel") for c in list(count_words)[lay.node_off:lay.node_off + lay.rows_in]],
                   dtype=np.int64)
    pool = program.layer(layer, "pool_bits").astype(np.int64)
    if sel.size and sel.max() >= pool.size:
        raise ValueError(f"layer {layer}: selected pair {sel.max()} outside its pool of {pool.size}")
    return pool[sel]


def decode_features(words, count_words, program, cfg: AcceleratorConfig, layer: int) -> np.ndarray:
    """Feature memory words (from address 0, or a dict {address: word}) and count memory words -> int64
    input features [N, F_in] of ``layer``: node j's first count_j words from its base, placed by their
    (tile, plane) tags; words left out are zero.

    Layer 0 is what was loaded; layer l >= 1 is what layer l-1's packer wrote. Vectorised over the words
    (a REDDIT batch stores ~2 M), in chunks of ``DECODE_CHUNK`` words to bound the [words, L] lane array.
    """
    lay = layout(program, cfg)[layer]
    spec = program.layers[layer]
    L, n, t = cfg.lanes, lay.rows_in, lay.t_in
    cf = count_fields(cfg)
    raw = list(count_words)[lay.node_off:lay.node_off + n]
    if len(raw) < n:
        raise ValueError(f"count words end at {len(count_words)}, layer {layer} needs {lay.node_off + n}")
    cnt = np.array([cf.get(c, "count") for c in raw], dtype=np.int64)
    bits = row_bits(program, cfg, layer, count_words)
    over = np.flatnonzero(cnt > bits * t)
    if over.size:
        j = int(over[0])
        raise ValueError(f"layer {layer} node {j}: count {cnt[j]} exceeds its {bits[j] * t} words")
    node = np.repeat(np.arange(n, dtype=np.int64), cnt)
    k = np.arange(node.size, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)   # word index in its row
    tile, plane, lanes = _feature_fields(words, node_bases(program, cfg, layer)[node] + k, feat_fields(cfg))
    bad = np.flatnonzero((tile >= t) | (plane >= bits[node]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"layer {layer} node {node[i]} word {k[i]}: tag (tile {tile[i]}, plane {plane[i]}) is "
                         f"outside its {t} tiles x {bits[node[i]]} planes")
    out = np.zeros((n, t, L), dtype=np.int64)
    shifts = np.arange(L, dtype=np.uint64)
    for s in range(0, node.size, DECODE_CHUNK):
        c = slice(s, s + DECODE_CHUNK)
        lane_bits = ((lanes[c, None] >> shifts) & np.uint64(1)).astype(np.int64) << plane[c, None]
        np.bitwise_or.at(out, (node[c], tile[c]), lane_bits)   # .at: a repeated tag ORs, as the loop did
    out = out.reshape(n, t * L)
    if spec.in_signed:
        top = (1 << bits)[:, None]
        out = np.where(out >= top // 2, out - top, out)
    return out[:, :spec.in_features]


#: Words per chunk of ``decode_features``' lane expansion (chunk x L int64: 32 MB at L = 16).
DECODE_CHUNK = 1 << 18


def _feature_fields(words, addr: np.ndarray, ff: Fields) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile, plane, lanes) of the feature words at ``addr``; ``words`` is a sequence from address 0 or
    a dict {address: word}. Lanes come back as uint64 (L <= 64)."""
    seq = words if isinstance(words, (dict, list, np.ndarray)) else list(words)
    vals = [int(seq[a]) for a in addr.tolist()]
    packed = np.array(vals, dtype=np.int64).reshape(-1) if ff.width <= 63 else None   # built once

    def field(name, dtype):
        off, width = ff.offsets[name]
        if packed is not None:
            return ((packed >> off) & ((1 << width) - 1)).astype(dtype)
        return np.array([(v >> off) & ((1 << width) - 1) for v in vals], dtype=dtype).reshape(-1)

    return field("tile", np.int64), field("plane", np.int64), field("lanes", np.uint64)
