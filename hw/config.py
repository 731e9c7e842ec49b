"""``AcceleratorConfig``: the parameters of one accelerator instance, and every width derived from them.

A config fixes the datapath (``lanes`` L feature bits per word, ``pes`` P processing elements, the
weight width) and the depth of every on-chip memory. ``AcceleratorConfig.fit(program)`` gives the
smallest config that runs a program; ``config.check(program)`` refuses a program that does not fit
with a ``ConfigError`` naming the memory (or limit) and both sizes.

All accumulator and intermediate widths (``config.widths``) are derived from worst-case bounds with
the functions of ``a2q.fixedpoint`` -- never guessed. This module imports numpy only (no Amaranth), so
the memory map, the cycle model and the CLI can use it cheaply.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from a2q import fixedpoint as fp
from a2q.jsonio import write_json

#: Version of the config JSON format (bump when fields change meaning).
CONFIG_VERSION = 1
#: Per-PE fields of a channel-table word: multiplier, shift, bias (see docs/hardware.md).
SHIFT_BITS = max(1, fp.MAX_SHIFT.bit_length())  # 6 bits hold 0..48
NODE_BITS_FIELD = max(1, fp.MAX_NODE_BITS.bit_length())  # 4 bits hold 1..8


class ConfigError(ValueError):
    """A config that is invalid, or too small for a program; the message names the limit at fault."""


def _pow2(v: int) -> bool:
    return v >= 1 and (v & (v - 1)) == 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def addr_bits(depth: int) -> int:
    """Address width of a memory with ``depth`` words (Amaranth's ``ceil_log2``, at least 0)."""
    return max(0, (depth - 1).bit_length())


def count_bits(n: int) -> int:
    """Unsigned width holding every value in [0, n]."""
    return max(1, int(n).bit_length())


#: Human names of the config limits, for error messages.
_DESCRIBE = {
    "weight_bits": "weight width (bits)",
    "max_feature_bits": "node feature width (bits)",
    "max_layers": "descriptor table (layers)",
    "max_features": "features per layer",
    "max_nodes": "nodes",
    "max_row_len": "CSR row length (aggregation accumulator)",
    "feat_words": "feature memory (words)",
    "node_words": "node table (words)",
    "weight_words": "weight memory (words)",
    "chan_words": "channel table (words)",
    "edge_words": "edge memory (words)",
    "edges_per_cycle": "edges per cycle",
    "xw_words": "XW buffer (words)",
    "out_words": "output memory (words)",
    "max_pool": "NNS pool size (pairs per layer)",
    "pool_words": "NNS pool table (words)",
}


@dataclass(frozen=True)
class Widths:
    """Widths derived from a config (all in bits). See docs/hardware.md, "Widths"."""

    tree: int          # adder tree of one PE: sum of L gated signed weights
    combine_acc: int   # PE accumulator: combine_acc_bits over the padded F_in
    src_product: int   # SRC_RESCALE product acc*Ms + round
    y: int             # XW buffer entries (Y_BITS)
    aggregate_acc: int  # aggregation accumulator over the longest CSR row
    chan_product: int  # channel rescale product a*Mc + round
    p: int             # channel-rescaled aggregate + bias (P_BITS)
    node_product: int  # node rescale product p*Md + round
    out: int           # logits (OUT_BITS)


@dataclass(frozen=True)
class AcceleratorConfig:
    """Parameters of one accelerator instance. Depths are in words of the memory concerned."""

    lanes: int = 16             # L: feature bits per bit-plane word = weights per PE per cycle
    pes: int = 16               # P: processing elements = output channels per cycle
    weight_bits: int = 4        # stored weight width (programs may use fewer bits; sign-extended)
    max_feature_bits: int = 8   # widest node feature (<= 8)
    max_layers: int = 4         # descriptor table depth
    max_features: int = 64      # widest F_in / F_out of any layer
    max_nodes: int = 256        # N
    max_row_len: int = 64       # longest CSR row (sets the aggregation accumulator width)
    feat_words: int = 8192      # feature bit-plane memory (all layers' regions)
    node_words: int = 1024      # node table: one word per (layer, node)
    weight_words: int = 256     # one word per (layer, output tile, input tile)
    chan_words: int = 64        # one word per (layer, output tile)
    edge_words: int = 4096      # CSR edge stream: nnz + number of empty rows
    xw_words: int = 1024        # XW buffer: N * ceil(F_out / P), the widest layer
    out_words: int = 1024       # output logits: N * ceil(F_out / P) of the last layer
    counter_bits: int = 32      # width of the cycle counters
    zero_skip: int = 1          # 1: all-zero bit-plane words are not stored and cost no combine cycle
    edges_per_cycle: int = 1    # E: edge-stream entries the aggregation engine adds per cycle
    max_pool: int = 16          # largest NNS pool of a layer input (pairs; thresholds = max_pool - 1)
    pool_words: int = 64        # NNS pool table: one word per (layer with a pool input, pair)

    def __post_init__(self):
        self.validate()

    # -- validation -------------------------------------------------------------------------------
    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"config field '{f.name}' must be an integer, got {v!r}")
            if f.name == "zero_skip":
                if v not in (0, 1):
                    raise ConfigError(f"config field 'zero_skip' must be 0 or 1, got {v}")
            elif v < 1:
                raise ConfigError(f"config field '{f.name}' must be >= 1, got {v}")
        if not _pow2(self.lanes) or self.lanes > 64:
            raise ConfigError(f"lanes must be a power of two in [1, 64], got {self.lanes}")
        if not _pow2(self.pes) or self.pes > 64:
            raise ConfigError(f"pes must be a power of two in [1, 64], got {self.pes}")
        if not 2 <= self.weight_bits <= 8:
            raise ConfigError(f"weight_bits must lie in [2, 8], got {self.weight_bits}")
        if not fp.MIN_NODE_BITS <= self.max_feature_bits <= fp.MAX_NODE_BITS:
            raise ConfigError(f"max_feature_bits must lie in [{fp.MIN_NODE_BITS}, {fp.MAX_NODE_BITS}], "
                              f"got {self.max_feature_bits}")
        if not 1 <= self.edges_per_cycle <= 8:
            raise ConfigError(f"edges_per_cycle must lie in [1, 8], got {self.edges_per_cycle}")
        if not 16 <= self.counter_bits <= 64:
            raise ConfigError(f"counter_bits must lie in [16, 64], got {self.counter_bits}")
        if self.max_pool > 64:
            raise ConfigError(f"max_pool must lie in [1, 64], got {self.max_pool}")
        if self.node_words < self.max_nodes:
            raise ConfigError(f"node_words ({self.node_words}) must hold at least one layer of "
                              f"max_nodes ({self.max_nodes})")

    # -- derived sizes ----------------------------------------------------------------------------
    @property
    def max_tiles_in(self) -> int:
        """Input tiles of the widest layer: ceil(max_features / L)."""
        return ceil_div(self.max_features, self.lanes)

    @property
    def max_tiles_out(self) -> int:
        """Output tiles of the widest layer: ceil(max_features / P)."""
        return ceil_div(self.max_features, self.pes)

    @property
    def widths(self) -> Widths:
        wlo, whi = fp.signed_range(self.weight_bits)
        tree = fp.bits_for_range(self.lanes * wlo, self.lanes * whi)
        # The engine sums whole tiles, so bound the accumulator over the padded input width (the
        # padding lanes carry zero weights, but the width must not rely on it).
        f_pad = self.max_tiles_in * self.lanes
        comb = max(fp.combine_acc_bits(f_pad, self.max_feature_bits, self.weight_bits, s) for s in (False, True))
        agg = fp.aggregate_acc_bits(self.max_row_len)
        return Widths(tree=tree, combine_acc=comb, src_product=fp.rescale_product_bits(comb), y=fp.Y_BITS,
                      aggregate_acc=agg, chan_product=fp.rescale_product_bits(agg), p=fp.P_BITS,
                      node_product=fp.rescale_product_bits(fp.P_BITS), out=fp.OUT_BITS)

    def depth(self, name: str) -> int:
        """Physical depth of memory ``name`` (at least 2, so every address port is >= 1 bit wide)."""
        words = {"desc": self.max_layers, "node": self.node_words, "count": self.node_words, "feat": self.feat_words,
                 "weight": self.weight_words, "chan": self.chan_words, "edge": self.edge_words,
                 "xw": self.xw_words, "out": self.out_words, "pool": self.pool_words,
                 "thr": self.max_layers}[name]
        return max(2, words)

    # -- JSON -------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"config_version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, obj: dict) -> AcceleratorConfig:
        if not isinstance(obj, dict):
            raise ConfigError("config JSON must be an object")
        obj = dict(obj)
        version = obj.pop("config_version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"config_version {version!r} is not supported (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ConfigError(f"unknown config field '{unknown[0]}' (known: {', '.join(sorted(known))})")
        return cls(**obj)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> AcceleratorConfig:
        try:
            obj = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_json(obj)

    def replace(self, **changes) -> AcceleratorConfig:
        return AcceleratorConfig(**{**asdict(self), **changes})

    # -- programs ---------------------------------------------------------------------------------
    @staticmethod
    def requirements(program, lanes: int = 16, pes: int = 16, zero_skip: int = 1, edges_per_cycle: int = 1) -> dict:
        """What ``program`` needs from a config with L=lanes, P=pes (every depth and limit).

        Feature memory: layer 0's region holds its stored words (only the non-zero ones with
        ``zero_skip``); every hidden layer's region is reserved at the dense size b_j * T_in per row
        (b_j: the row's static bits, or the largest bits of the layer's NNS pool), since the packer
        fills it at run time. Rows: a layer's input rows (N nodes, or G graphs after a pool layer).
        Edge memory: the graph's edge stream, then the membership stream of a pool layer."""
        from a2q.cycle_model import nonzero_words, region_bits

        n = program.num_nodes
        rows = program.row_lengths
        row_lens = [rows]
        if program.num_graphs is not None:
            row_lens.append(np.diff(np.asarray(program.arrays["graph_ptr"], dtype=np.int64)))
        f_max = max(max(s.in_features, s.out_features) for s in program.layers)
        feat = 0
        weight = chan = 0
        pools = [program.pool_size(i) for i in range(program.num_layers)]
        for i, spec in enumerate(program.layers):
            t_in = ceil_div(spec.in_features, lanes)
            t_out = ceil_div(spec.out_features, pes)
            if i == 0 and zero_skip:
                feat += int(nonzero_words(program.arrays["x"], program.layer(0, "bits"), lanes).sum())
            else:
                feat += int(region_bits(program, i).sum()) * t_in
            weight += t_in * t_out
            chan += t_out
        t_out = [ceil_div(s.out_features, pes) for s in program.layers]
        return {
            "weight_bits": max(s.weight_bits for s in program.layers),
            "max_feature_bits": max(int(region_bits(program, i).max(initial=1)) for i in range(program.num_layers)),
            "max_layers": program.num_layers,
            "max_features": f_max,
            "max_nodes": n,
            "max_row_len": max([1, *(int(r.max()) for r in row_lens if r.size)]),
            "feat_words": max(1, feat),
            "node_words": sum(program.rows_in(i) for i in range(program.num_layers)),
            "weight_words": weight,
            "chan_words": chan,
            "edge_words": sum(int((-(-np.maximum(r, 1) // edges_per_cycle)).sum()) for r in row_lens),
            "xw_words": max(program.rows_in(i) * t_out[i] for i in range(program.num_layers)),
            "out_words": program.num_rows_out * t_out[-1],
            "max_pool": max([1, *pools]),
            "pool_words": max(1, sum(pools)),
        }

    @classmethod
    def fit(cls, program, lanes: int = 16, pes: int = 16, **overrides) -> AcceleratorConfig:
        """The smallest config with ``lanes`` and ``pes`` that runs ``program``."""
        req = cls.requirements(program, lanes, pes, overrides.get("zero_skip", 1),
                               overrides.get("edges_per_cycle", 1))
        return cls(lanes=lanes, pes=pes, **{**req, **overrides})


    @classmethod
    def covering(cls, programs, lanes: int = 16, pes: int = 16, zero_skip: int = 1,
                 edges_per_cycle: int = 1) -> AcceleratorConfig:
        """The smallest config that runs every one of ``programs`` (field-wise max of their fits), so
        several programs can be compared on one piece of hardware."""
        fits = [cls.fit(p, lanes=lanes, pes=pes, zero_skip=zero_skip, edges_per_cycle=edges_per_cycle)
                for p in programs]
        if not fits:
            raise ConfigError("covering() needs at least one program")
        return cls(**{f.name: max(getattr(c, f.name) for c in fits) for f in fields(cls)})

    def check(self, program) -> None:
        """Raise ``ConfigError`` if ``program`` does not fit this config (names the first misfit)."""
        req = self.requirements(program, self.lanes, self.pes, self.zero_skip, self.edges_per_cycle)
        for key, need in req.items():
            have = getattr(self, key)
            if need > have:
                raise ConfigError(f"program does not fit: {_DESCRIBE[key]} '{key}' needs {need}, "
                                  f"config has {have}")
