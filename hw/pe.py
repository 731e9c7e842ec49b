"""Bit-serial processing element: an adder tree over L weights gated by one feature bit-plane word,
then shift-and-add over the planes; the sign plane of a signed node subtracts.

One PE computes one output channel: per cycle it takes one bit-plane word (L feature bits of one plane
``p`` of one input tile) and the L weights of that tile for its channel, and does

    acc <- (first ? 0 : acc) + (negate ? -1 : 1) * (sum_k bit_k * w_k) << p

so after every (tile, plane) of a node ``acc = sum_k x[k] * w[k]`` exactly (docs/arithmetic.md, COMBINE).
Four pipeline stages: the inputs are registered (the weights come straight from the weight banks,
across the die), then the lane gates with the tree's first two levels (one partial sum per group of
``GROUP`` lanes), then the rest of the tree, then the accumulator (timing: the whole 16-lane tree in one
cycle was the default config's routed critical path after step 17, docs/hardware.md "Timing closure",
step 18). ``done`` is high in the cycle after the update that consumed a ``last`` input, while ``acc``
holds the finished sum.

Every PE of the combine engine gets the same bit-plane word and control, so the input registers of
the P PEs are logically equivalent and a synthesis tool merges them into one register that drives all
P x L lane gates across the die (the default config's critical path before, docs/hardware.md "Timing
closure"). They carry ``KEEP_REGISTER`` (``hw/replicate.py``): each PE keeps its own copy, placed
beside it.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from .pipeline import register_stage
from .replicate import KEEP_REGISTER

PLANE_BITS = max(1, (fp.MAX_NODE_BITS - 1).bit_length())  # 3 bits: plane 0..7
LATENCY = 4  # inputs in cycle c -> acc/done valid in cycle c + 4
#: Lanes per registered partial sum: the gates and two adder levels share a cycle, the rest of the tree the next.
GROUP = 4


def adder_tree(m: Module, terms: list, name: str):
    """Balanced tree of adders (combinational); each level's widths grow by one bit."""
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            a, b = terms[i], terms[i + 1]
            s = Signal(signed(max(len(a), len(b)) + 1), name=f"{name}_l{level}_{i // 2}")
            m.d.comb += s.eq(a + b)
            nxt.append(s)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, level = nxt, level + 1
    return terms[0]


class BitSerialPE(wiring.Component):
    """One bit-serial PE over ``lanes`` lanes of ``weight_bits``-bit signed weights.

    ``weights`` packs lane k at bits [k*wb, (k+1)*wb). ``acc_bits`` is the accumulator width (derive it
    with ``a2q.fixedpoint.combine_acc_bits``); ``tree_bits`` the adder tree width.
    """

    def __init__(self, lanes: int, weight_bits: int, acc_bits: int):
        self.lanes, self.weight_bits, self.acc_bits = lanes, weight_bits, acc_bits
        wlo, whi = fp.signed_range(weight_bits)
        self.tree_bits = fp.bits_for_range(lanes * wlo, lanes * whi)
        super().__init__({
            "valid": In(1),
            "first": In(1),     # first (tile, plane) of a node: start from 0
            "last": In(1),      # last (tile, plane): the sum is complete after this update
            "plane": In(unsigned(PLANE_BITS)),
            "negate": In(1),    # the sign plane of a signed node subtracts
            "bits": In(unsigned(lanes)),
            "weights": In(unsigned(lanes * weight_bits)),
            "acc": Out(signed(acc_bits)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L, wb = self.lanes, self.weight_bits
        # stage 0: input register. bits and control are the same for all PEs: keep one copy per PE
        # (see the module docstring); the weights differ per PE anyway
        bits_i = Signal(unsigned(L), name="bits_i", attrs=KEEP_REGISTER)
        weights_i = Signal(unsigned(L * wb), name="weights_i")
        valid_i, first_i, last_i, neg_i = (Signal(name=n, attrs=KEEP_REGISTER)
                                           for n in ("valid_i", "first_i", "last_i", "neg_i"))
        plane_i = Signal(unsigned(PLANE_BITS), name="plane_i", attrs=KEEP_REGISTER)
        m.d.sync += [bits_i.eq(self.bits), weights_i.eq(self.weights), valid_i.eq(self.valid),
                     first_i.eq(self.first), last_i.eq(self.last), neg_i.eq(self.negate), plane_i.eq(self.plane)]
        terms = []
        for k in range(L):
            t = Signal(signed(wb), name=f"term{k}")
            m.d.comb += t.eq(Mux(bits_i[k], weights_i[k * wb:(k + 1) * wb].as_signed(), 0))
            terms.append(t)
        # stage 1: one registered partial sum per group of GROUP lanes, and the control
        parts = []
        for g in range(0, L, GROUP):
            part = adder_tree(m, terms[g:g + GROUP], f"part{g // GROUP}")
            part_r = Signal(signed(len(part)), name=f"part_r{g // GROUP}")
            m.d.sync += part_r.eq(part)
            parts.append(part_r)
        ctl_p = register_stage(m, dict(valid=valid_i, first=first_i, last=last_i, neg=neg_i, plane=plane_i), "p")
        tree = adder_tree(m, parts, "tree")

        # stage 2: registered tree sum and control
        tree_r = Signal(signed(self.tree_bits))
        m.d.sync += tree_r.eq(tree)
        ctl_r = register_stage(m, ctl_p, "r")

        # stage 3: shift-and-add (the sign plane subtracts)
        term = Signal(signed(self.tree_bits + (1 << PLANE_BITS) - 1))
        m.d.comb += term.eq(tree_r << ctl_r["plane"])
        base = Mux(ctl_r["first"], 0, self.acc)
        with m.If(ctl_r["valid"]):
            m.d.sync += self.acc.eq(Mux(ctl_r["neg"], base - term, base + term))
        m.d.sync += self.done.eq(ctl_r["valid"] & ctl_r["last"])
        return m
