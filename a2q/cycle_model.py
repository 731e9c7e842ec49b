"""Closed-form cycle model of the bit-serial accelerator RTL in ``hw/`` (docs/hardware.md, "Cycle model").

It reproduces the RTL cycle counters exactly (tests assert equality on every simulated program), from
the program's per-node bits, layer dims, CSR row lengths and the datapath shape (L lanes, P PEs).
For layer l with F_in -> F_out, T_in = ceil(F_in/L), T_out = ceil(F_out/P), T_next = ceil(F_out/L):

* combine   = COMBINE_FIXED + T_out * sum_j max(w_j, 1), w_j = node j's stored bit-plane words:
              with zero-word skipping (the default) the words that are not all zero, else b_j * T_in
              (a node with no word still costs one cycle per output tile: its y = 0 is written)
* aggregate = AGGREGATE_FIXED + T_out * sum_i ceil(max(len_i, 1) / E)  (E = edges per cycle)
* stall     = sum over consecutive groups g-1, g of max(0, W_{g-1} - A_g)
              (groups g = (i, t_o) in row-major order, A_g = ceil(max(len_i, 1) / E),
              W_g = 1 on the last layer, else b'_i * ntiles(t_o) with b' the next layer's bits and
              ntiles = 1 if P <= L else min(P/L, T_next - t_o * P/L))
* requant   = REQUANT_FIXED + W_last (drain of the requantizer and packer after the last entry)
* select    = SELECT_FIXED + select_extra(P) + T_out * sum_i A_i on a layer whose next input is an NNS pool (the select
              pass: one walk computing each row's max -> its pair), else 0
* total     = DESC_CYCLES + combine + select + aggregate + stall + requant, summed over layers.

Format v2 layer kinds (docs/hardware.md, "Layer kinds"): combine walks the layer's R input rows, the
aggregation its Q output rows; A_i = ceil(max(len_i, 1) / E) over the graph's CSR (gcn, gin) or over
the graph membership (pool: len = the graph's nodes); a dense layer walks no edge stream (A_i = 1, one
group per cycle from an identity stream) and its walk (AGGREGATE_FIXED + T_out * Q) is counted in
``requant`` (it pays no aggregation cycles; the requantizer and packer stream still costs them).
The rows' bits (w_j, b'_i) are the ones the run uses: static, or the NNS pair selected at run time
(``a2q.integer.run``).

The hidden layers' stored words depend on the data (ReLU outputs are sparse): with skipping on they
are counted on the integer reference's activations (``a2q.integer.run``, imported lazily; torch), so
the model stays closed-form from the program, without simulating the RTL. Otherwise numpy only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Fixed overheads per layer, in cycles (see docs/hardware.md for where each cycle goes).
DESC_CYCLES = 1       # the sequencer addresses the descriptor table
COMBINE_FIXED = 20    # engine start + 2 setup (node-table prefetch) + 15-stage drain + idle register + hand-back
AGGREGATE_FIXED = 6   # engine start + 5 setup (prefetch of rows 0-2 and of edge entries 0-1 into registers)
REQUANT_FIXED = 20    # 2 XW address stages + S2 + S3 + group register + 12 requantizer stages + packer latch
                      # ... + idle register + hand-back + the packer's write register
SELECT_FIXED = 25     # engine start + 5 setup + 2 XW address stages + S2 + S3 + group register + 12 requantizer
                      # stages + idle register + hand-back
RESCALE_STAGES = 6    # stages of one rescale unit (hw/rescale.py)


def select_tree_levels(pes: int) -> int:
    """Stages of the NNS selector's lane-max tree (hw/select.py): ceil(log2 P), one compare per stage."""
    return max(0, (pes - 1).bit_length())


def select_extra(pes: int) -> int:
    """Cycles the select pass takes beyond SELECT_FIXED: the selector writes a row's pair
    3 + ceil(log2 P) cycles after the channel rescale (RESCALE_STAGES), the requantizer drains after
    2 * RESCALE_STAGES; the later of the two ends the pass."""
    return max(0, RESCALE_STAGES + 3 + select_tree_levels(pes) - 2 * RESCALE_STAGES)

PHASES = ("combine", "select", "aggregate", "stall", "requant")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class LayerCycles:
    combine: int
    aggregate: int
    stall: int
    requant: int
    select: int = 0          # the NNS select pass (layers whose next input is an NNS pool)
    desc: int = DESC_CYCLES
    combine_ideal: int = 0   # T_out * sum_j w_j: one cycle per stored word and output tile, no overhead
    words: int = 0           # stored feature words of the layer's input (sum_j w_j)
    dense_words: int = 0     # T_in * sum_j b_j: the words without skipping

    @property
    def total(self) -> int:
        return self.desc + self.combine + self.select + self.aggregate + self.stall + self.requant

    def to_json(self) -> dict:
        return {**asdict(self), "total": self.total}


@dataclass
class CycleReport:
    lanes: int
    pes: int
    layers: list[LayerCycles]
    skip: bool = True
    edges: int = 1

    def phase(self, name: str) -> int:
        return sum(getattr(layer, name) for layer in self.layers)

    @property
    def combine(self) -> int:
        return self.phase("combine")

    @property
    def aggregate(self) -> int:
        return self.phase("aggregate")

    @property
    def stall(self) -> int:
        return self.phase("stall")

    @property
    def requant(self) -> int:
        return self.phase("requant")

    @property
    def select(self) -> int:
        return self.phase("select")

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    def counters(self) -> dict[str, int]:
        """The values the RTL counters must show after a run (same names as the RTL ports)."""
        return {"cyc_total": self.total, "cyc_combine": self.combine, "cyc_aggregate": self.aggregate,
                "cyc_requant": self.requant, "cyc_stall": self.stall, "cyc_select": self.select}

    def to_json(self) -> dict:
        return {"lanes": self.lanes, "pes": self.pes, "skip": self.skip, "edges": self.edges, **self.counters(),
                "layers": [layer.to_json() for layer in self.layers]}


def pack_words(next_bits: np.ndarray, f_out: int, lanes: int, pes: int) -> np.ndarray:
    """W_g of a hidden layer for every group (i, t_o) in row-major order: the bit-plane words the
    packer writes for that group (the last layer writes one output word per group)."""
    t_out = _ceil_div(f_out, pes)
    if pes <= lanes:
        ntiles = np.ones(t_out, dtype=np.int64)
    else:
        r = pes // lanes
        t_next = _ceil_div(f_out, lanes)
        ntiles = np.minimum(r, t_next - np.arange(t_out) * r).astype(np.int64)
    return (np.asarray(next_bits, dtype=np.int64)[:, None] * ntiles[None, :]).reshape(-1)


def nonzero_words(x, bits, lanes: int) -> np.ndarray:
    """Per node: the bit-plane words of features ``x`` [N, F] (two's complement, node j's ``bits[j]``
    planes, L-lane tiles) that are not all zero -- the words the sparse layout stores."""
    x = np.asarray(x, dtype=np.int64)
    n, f = x.shape
    t = _ceil_div(f, lanes)
    u = np.zeros((n, t * lanes), dtype=np.int64)
    u[:, :f] = x & 0xFF
    u = u.reshape(n, t, lanes)
    bits = np.asarray(bits, dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    for p in range(int(bits.max(initial=0))):
        nz = ((u >> p) & 1).any(axis=2).sum(axis=1)
        out += np.where(bits > p, nz, 0)
    return out


def region_bits(program, layer: int) -> np.ndarray:
    """Per input row of ``layer``: the bits its feature region is reserved for -- the static bits, or
    the largest bits of the layer's NNS pool (the pair is selected at run time)."""
    if program.has_pool_input(layer):
        return np.full(program.rows_in(layer), int(program.layer(layer, "pool_bits").max()), dtype=np.int64)
    return program.layer(layer, "bits").astype(np.int64)


def _needs_trace(program, skip: bool) -> bool:
    return (skip and program.num_layers > 1) or any(program.has_pool_input(i) for i in range(program.num_layers))


def _traces(program, traces=None):
    if traces is None:
        from . import integer

        traces = integer.run(program)
    return traces


def run_bits(program, traces=None) -> list[np.ndarray]:
    """Per layer, per input row: the bits the run uses (static, or the NNS pair selected at run time)."""
    if not any(program.has_pool_input(i) for i in range(program.num_layers)):
        return [program.layer(i, "bits").astype(np.int64) for i in range(program.num_layers)]
    return [t.bits.numpy().astype(np.int64) for t in _traces(program, traces)]


def stored_words(program, lanes: int, skip: bool = True, traces=None) -> list[np.ndarray]:
    """Per layer, per input row: the feature words the combination engine walks (w_j in the module
    doc). Without skipping b_j * T_in; with skipping the non-zero words of the layer's input, which for
    a hidden layer is the integer reference's output of the layer before (``a2q.integer.run``)."""
    if _needs_trace(program, skip):
        traces = _traces(program, traces)
    bits = run_bits(program, traces)
    dense = [bits[i] * _ceil_div(s.in_features, lanes) for i, s in enumerate(program.layers)]
    if not skip:
        return dense
    xs = [program.arrays["x"]] + [t.out.numpy() for t in traces[:-1]] if program.num_layers > 1 \
        else [program.arrays["x"]]
    return [nonzero_words(x, bits[i], lanes) for i, x in enumerate(xs)]


def walk_lengths(program, layer: int) -> np.ndarray | None:
    """Per output row of ``layer``: the entries its aggregation walks -- CSR row lengths (gcn, gin),
    graph sizes (pool), or None for a dense layer (no edge stream)."""
    kind = program.layers[layer].kind
    if kind == "dense":
        return None
    if kind == "pool":
        return np.diff(np.asarray(program.arrays["graph_ptr"], dtype=np.int64))
    return np.diff(np.asarray(program.arrays["row_ptr"], dtype=np.int64))


def next_bits(program, layer: int, traces=None) -> np.ndarray | None:
    """Per output row of ``layer``: b', the bits of the next layer's input row (None: last layer)."""
    if layer + 1 >= program.num_layers:
        return None
    if program.has_pool_input(layer + 1):
        return _traces(program, traces)[layer].out_bits.numpy().astype(np.int64)
    return program.layer(layer + 1, "bits").astype(np.int64)


def layer_cycles(program, layer: int, lanes: int, pes: int, words: np.ndarray | None = None,
                 edges: int = 1, traces=None) -> LayerCycles:
    """Cycles of one layer; ``words``: its per-row stored words (default: dense, no skipping);
    ``edges``: edge-stream entries aggregated per cycle (E); ``traces``: ``a2q.integer.run(program)``
    (computed if a pool input needs it)."""
    spec = program.layers[layer]
    if any(program.has_pool_input(i) for i in (layer, layer + 1) if i < program.num_layers):
        traces = _traces(program, traces)
    q = program.rows_out(layer)
    t_in, t_out = _ceil_div(spec.in_features, lanes), _ceil_div(spec.out_features, pes)
    bits = run_bits(program, traces)[layer] if program.has_pool_input(layer) else \
        program.layer(layer, "bits").astype(np.int64)
    dense = int(bits.sum()) * t_in
    words = (bits * t_in) if words is None else np.asarray(words)
    ideal = int(words.sum()) * t_out
    issued = int(np.maximum(words, 1).sum()) * t_out
    lens = walk_lengths(program, layer)
    a_row = np.ones(q, dtype=np.int64) if lens is None else -(-np.maximum(lens, 1) // edges)
    a = np.repeat(a_row, t_out)                                       # A_g, row-major groups
    walk = int(a.sum())
    nb = next_bits(program, layer, traces)
    w = np.ones(q * t_out, dtype=np.int64) if nb is None else pack_words(nb, spec.out_features, lanes, pes)
    stall = int(np.maximum(w[:-1] - a[1:], 0).sum())
    selects = layer + 1 < program.num_layers and program.has_pool_input(layer + 1)
    select = SELECT_FIXED + select_extra(pes) + walk if selects else 0
    requant = REQUANT_FIXED + int(w[-1])
    aggregate = AGGREGATE_FIXED + walk
    if lens is None:   # dense: no aggregation; its group stream is counted as requantizer time
        requant, aggregate = requant + aggregate, 0
    return LayerCycles(combine=COMBINE_FIXED + issued, aggregate=aggregate, stall=stall, requant=requant,
                       select=select, combine_ideal=ideal, words=int(words.sum()), dense_words=dense)


def cycles(program, lanes: int = 16, pes: int = 16, skip: bool = True, edges: int = 1) -> CycleReport:
    """Cycle counts of ``program`` on an accelerator with ``lanes`` L and ``pes`` P, with or without
    zero-word skipping, aggregating ``edges`` entries per cycle (any config that fits the program:
    memory depths do not change the count)."""
    traces = _traces(program) if _needs_trace(program, skip) else None
    words = stored_words(program, lanes, skip, traces)
    return CycleReport(lanes=lanes, pes=pes, skip=bool(skip), edges=edges,
                       layers=[layer_cycles(program, i, lanes, pes, words[i], edges, traces)
                               for i in range(program.num_layers)])


def cycles_for_config(program, config) -> CycleReport:
    """``cycles`` with L, P, skipping and E taken from an ``hw.config.AcceleratorConfig``."""
    return cycles(program, config.lanes, config.pes, bool(getattr(config, "zero_skip", 1)),
                  int(getattr(config, "edges_per_cycle", 1)))


def speedup(report, baseline) -> dict:
    """``baseline``'s cycles over ``report``'s, in total and per layer (both ``CycleReport`` or their
    ``to_json()``): how many times fewer cycles ``report`` takes."""
    def parts(r):
        if isinstance(r, CycleReport):
            return r.total, [layer.total for layer in r.layers]
        return r["cyc_total"], [layer["total"] for layer in r["layers"]]

    tot, layers = parts(report)
    btot, blayers = parts(baseline)
    return {"total": btot / tot, "layers": [b / a for a, b in zip(layers, blayers, strict=True)]}
