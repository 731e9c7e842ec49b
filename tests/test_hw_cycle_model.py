"""The cycle model: its closed form on a hand-checked program, and the bit-serial saving it predicts
(and the RTL shows): a 1.7-bit program costs >= 2.3x fewer combine cycles than a 4-bit one."""
import numpy as np

from a2q import cycle_model as cm
from a2q import synth
from hw.amaranth_sim import run_program
from hw.config import AcceleratorConfig
from hw.testing import with_bits


def _bits(n, avg):
    """Per-node bits with the given average: a mix of floor(avg) and floor(avg) + 1."""
    lo = int(np.floor(avg))
    k = round((avg - lo) * n)
    b = np.full(n, lo)
    b[:k] = lo + 1
    return b


def test_closed_form_on_a_small_program():
    p = synth.random_program(seed=0, n=4, dims=(9, 6, 3), hub=False, isolated=1)
    p.arrays["row_ptr"] = np.array([0, 2, 3, 3, 5])
    p.arrays["col_idx"] = np.array([0, 1, 1, 2, 3])
    p.arrays["l0_bits"] = np.array([1, 2, 3, 4], dtype=np.uint8)
    p.arrays["l1_bits"] = np.array([8, 1, 5, 2], dtype=np.uint8)
    r = cm.cycles(p, lanes=4, pes=4, skip=False)
    l0, l1 = r.layers
    # layer 0: T_in = 3, T_out = 2; rows max(len, 1) = 2, 1, 1, 2 walked twice
    assert l0.combine == cm.COMBINE_FIXED + 10 * 3 * 2
    assert l0.aggregate == cm.AGGREGATE_FIXED + 2 * 6
    # groups (i, t_o): A = 2,2,1,1,1,1,2,2 ; W = b'_i (P <= L) = 8,8,1,1,5,5,2,2
    assert l0.stall == (8 - 2) + (8 - 1) + 0 + 0 + (5 - 1) + (5 - 2) + 0
    assert l0.requant == cm.REQUANT_FIXED + 2
    # layer 1 (last): T_in = 2, T_out = 1, W = 1, no stall
    assert l1.combine == cm.COMBINE_FIXED + 16 * 2 and l1.stall == 0 and l1.requant == cm.REQUANT_FIXED + 1
    assert r.total == sum(x.total for x in r.layers) == sum(r.counters()[k] for k in (
        "cyc_combine", "cyc_aggregate", "cyc_stall", "cyc_requant")) + 2 * cm.DESC_CYCLES


def test_skipping_counts_only_non_zero_words():
    """With skipping, combine = fixed + T_out * sum_j max(nz_j, 1), nz_j counted per (tile, plane) word,
    hidden layers on the integer reference's activations; aggregation, stall and requant unchanged."""
    p = synth.random_program(seed=0, n=4, dims=(9, 6, 3), hub=False, isolated=1)
    p.arrays["l0_bits"] = np.array([2, 2, 3, 1], dtype=np.uint8)
    x = np.zeros((4, 9), dtype=np.int16)
    x[0, 0] = 3          # tile 0: planes 0 and 1 non-zero -> 2 words
    x[0, 8] = 2          # tile 2: plane 1 -> 1 word
    x[1, 4:8] = 1        # tile 1: plane 0 -> 1 word
    x[2, 1] = 4          # tile 0: plane 2 -> 1 word; node 3 stores no word
    p.arrays["x"] = x
    nz = cm.nonzero_words(x, p.layer(0, "bits"), 4)
    assert list(nz) == [3, 1, 1, 0]
    on, off = cm.cycles(p, 4, 4, skip=True), cm.cycles(p, 4, 4, skip=False)
    assert on.layers[0].combine == cm.COMBINE_FIXED + 2 * (3 + 1 + 1 + 1)
    assert on.layers[0].combine_ideal == 2 * 5 and on.layers[0].words == 5
    assert on.layers[0].dense_words == off.layers[0].words == 3 * 8
    from a2q import integer

    x1 = integer.run(p)[1].x.numpy()
    assert on.layers[1].words == cm.nonzero_words(x1, p.layer(1, "bits"), 4).sum()
    for a, b in zip(on.layers, off.layers, strict=True):
        assert (a.aggregate, a.stall, a.requant) == (b.aggregate, b.stall, b.requant)


def test_wide_pes_pack_several_tiles():
    p = synth.random_program(seed=1, n=3, dims=(4, 10, 2), hub=False, isolated=0)
    w = cm.pack_words(p.layer(1, "bits"), 10, lanes=4, pes=8)   # T_out = 2 groups, T_next = 3 tiles
    b = p.layer(1, "bits").astype(int)
    assert list(w) == [x for bi in b for x in (2 * bi, 1 * bi)]


def test_combine_ratio_cora_sized_model():
    cora = synth.random_program(seed=0, n=2708, dims=(1433, 16, 7), avg_degree=3.9)
    n = cora.num_nodes
    lo = with_bits(cora, [_bits(n, 1.7), _bits(n, 1.7)])
    hi = with_bits(cora, [_bits(n, 4), _bits(n, 4)])
    for lanes, pes in ((16, 16), (32, 16), (64, 16)):
        r = cm.cycles(hi, lanes, pes, skip=False).combine / cm.cycles(lo, lanes, pes, skip=False).combine
        assert r >= 2.3, (lanes, pes, r)


def test_combine_ratio_in_rtl_simulation():
    base = synth.random_program(seed=2, n=10, dims=(64, 16, 4))
    lo = with_bits(base, [_bits(10, 1.7), _bits(10, 1.7)])
    hi = with_bits(base, [_bits(10, 4), _bits(10, 4)])
    cfg = AcceleratorConfig.fit(hi, lanes=4, pes=4, zero_skip=0)
    got = {}
    for name, p in (("lo", lo), ("hi", hi)):
        res = run_program(p, cfg, load="init")
        assert res.counters == cm.cycles_for_config(p, cfg).counters()
        got[name] = res.counters["cyc_combine"]
    assert got["hi"] / got["lo"] >= 2.3, got


def test_model_constants_follow_the_rtl_pipeline():
    """The model's fixed overheads are built from the RTL's stage counts: a pipeline change in hw/
    must show up here (the simulations above then check the totals)."""
    from hw import aggregate, combine, packer, requant, rescale, select, sequencer

    assert cm.RESCALE_STAGES == rescale.LATENCY and requant.LATENCY == 2 * rescale.LATENCY
    # start + setup cycles + drain (last issue to the XW write) + the registered idle flag + hand-back
    idle = sequencer.IDLE_STAGES
    assert cm.COMBINE_FIXED == combine.FIRST_ISSUE + combine.DRAIN + idle + 1
    # the aggregation drain: XW address stages + S2 + S3 + group register + the requantizer + packer
    # latch + hand-back + the packer's write register; the select pass: start + 5 setup + the same up to
    # the requantizer + hand-back
    assert cm.REQUANT_FIXED == aggregate.XW_ADDR_STAGES + 3 + requant.LATENCY + idle + 1 + packer.WRITE_STAGES
    assert cm.SELECT_FIXED == 1 + 5 + aggregate.XW_ADDR_STAGES + 3 + requant.LATENCY + idle + 1
    for pes in (1, 2, 4, 8, 16, 32):
        assert cm.select_tree_levels(pes) == select.latency(pes) - 3
        assert cm.select_extra(pes) == max(0, rescale.LATENCY + select.latency(pes) - requant.LATENCY)
