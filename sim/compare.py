"""Compare what the RTL produced with the integer reference and the cycle model.

Kept out of the cocotb module so it can be tested without a simulator. Mismatches are located in
dataflow order (layer 0's requantized output first, the last layer's logits last), so the first one
reported is the one to debug.
"""
from __future__ import annotations

from a2q import integer
from hw import memory_map as mm


def compare_run(program, cfg, out_words, feat_words: dict[int, int], count_words: list[int], xw_words,
                counters: dict, model) -> dict:
    """``feat_words``: {address: word} of the hidden layers' stored feature words (the first count_j
    words of every node, ``memory_map.feature_addresses``); ``count_words``: the count memory from
    address 0 (every layer); ``xw_words``: last layer's y."""
    ref = integer.run(program)
    checks = []  # (layer, phase, got [N, F]) in dataflow order
    for i in range(1, program.num_layers):
        checks.append((i - 1, "out", mm.decode_features(feat_words, count_words, program, cfg, i)))
    last = program.num_layers - 1
    checks.append((last, "y", mm.decode_xw(xw_words, program, cfg, last)))
    checks.append((last, "out", mm.decode_output(out_words, program, cfg)))
    mismatches, first, per_check = 0, None, []
    for layer, phase, got in checks:
        m = integer.first_mismatch(ref, layer, phase, got)
        count = 0 if m is None else m["count"]
        per_check.append({"layer": layer, "phase": phase, "mismatches": count,
                          "values": int(getattr(ref[layer], phase).numel())})
        mismatches += count
        if m is not None and first is None:
            first = m
    rtl = {k.removeprefix("cyc_"): int(v) for k, v in counters.items()}
    mod = {k.removeprefix("cyc_"): int(v) for k, v in model.counters().items()}
    return {"mismatches": mismatches, "first_mismatch": first, "checked": per_check,
            "rtl_cycles": rtl, "model_cycles": mod, "model_layers": [lc.to_json() for lc in model.layers],
            "cycles_match": rtl == mod}
