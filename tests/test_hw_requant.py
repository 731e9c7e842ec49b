"""The requantizer (channel rescale + bias + sat24, node rescale, clamp/ReLU or sat16) against
a2q.integer's REQUANT functions, with 24-bit and 16-bit saturation and 1..8-bit signed/unsigned clamps."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp
from a2q import integer
from hw import memory_map as mm
from hw.config import AcceleratorConfig
from hw.requant import Requantizer
from hw.testing import signed_lanes, stream


def _reference(a, mc, sc, bias, md, sd, bits, out_signed, last):
    t = lambda v: torch.tensor(v, dtype=torch.int64)
    p = integer.channel_rescale(t([a]), t(mc), t(sc), t(bias))
    out_bits = None if last else t([bits])
    return integer.node_requant(p, t([md]), t([sd]), out_bits, out_signed)[0].tolist()


def _run(cfg, groups):
    wd, cf, P = cfg.widths, mm.chan_lane_fields(), cfg.pes
    inputs = []
    for k, (a, mc, sc, bias, md, sd, bits, out_signed, last) in enumerate(groups):
        sums = sum((v & ((1 << wd.aggregate_acc) - 1)) << (o * wd.aggregate_acc) for o, v in enumerate(a))
        chan = sum(cf.pack(mult=mc[o], shift=sc[o], bias=bias[o] & ((1 << fp.P_BITS) - 1)) << (o * cf.width)
                   for o in range(P))
        inputs.append({"sums": sums, "chan": chan, "dst_mult": md, "dst_shift": sd, "bits": bits,
                       "out_signed": int(out_signed), "last": int(last), "payload": k})
    dut = Requantizer(cfg, payload_bits=8)
    got = stream(dut, inputs, ("q", "out_payload"))
    assert [g["out_payload"] for g in got] == list(range(len(groups)))
    return [signed_lanes(g["q"], P, 16).tolist() for g in got]


def _cfg(pes=4, max_row_len=16):
    return AcceleratorConfig(lanes=4, pes=pes, max_row_len=max_row_len)


def test_saturation_of_both_stages():
    cfg = _cfg()
    amax = (1 << (cfg.widths.aggregate_acc - 1)) - 1
    blo, bhi = fp.signed_range(fp.P_BITS)
    M = (1 << 16) - 1
    groups = [
        ([amax, -amax - 1, 0, 5], [M] * 4, [0, 0, 0, 0], [bhi, blo, bhi, blo], M, 0, 8, False, True),   # 24 & 16 sat
        ([amax, -amax - 1, 3, -3], [M] * 4, [0, 0, 1, 1], [0, 0, 0, 0], M, 30, 8, False, False),      # ReLU clamp
        ([amax, -amax - 1, 3, -3], [M] * 4, [0, 0, 1, 1], [0, 0, 0, 0], M, 30, 1, True, False),       # signed 1-bit
        ([7, -7, 100, -100], [1] * 4, [48, 47, 0, 1], [-1, 1, 0, 0], 1, 48, 3, True, False),          # huge shifts
    ]
    got = _run(cfg, groups)
    assert got == [_reference(*g) for g in groups]
    assert got[0][:2] == [(1 << 15) - 1, -(1 << 15)]


@given(st.data())
@settings(max_examples=10, deadline=None)
def test_random_groups(data):
    pes = data.draw(st.sampled_from([1, 2, 4]))
    cfg = _cfg(pes=pes, max_row_len=data.draw(st.integers(1, 300)))
    alo, ahi = fp.signed_range(cfg.widths.aggregate_acc)
    blo, bhi = fp.signed_range(fp.P_BITS)
    groups = []
    for _ in range(data.draw(st.integers(1, 8))):
        lanes = lambda s: data.draw(st.lists(s, min_size=pes, max_size=pes))
        groups.append((
            lanes(st.integers(alo, ahi)), lanes(st.integers(0, (1 << 16) - 1)), lanes(st.integers(0, 48)),
            lanes(st.one_of(st.integers(-3000, 3000), st.integers(blo, bhi))),
            data.draw(st.integers(0, (1 << 16) - 1)), data.draw(st.integers(0, 48)),
            data.draw(st.integers(1, 8)), data.draw(st.booleans()), data.draw(st.booleans())))
    assert _run(cfg, groups) == [_reference(*g) for g in groups]
