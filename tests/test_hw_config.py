"""AcceleratorConfig: validation, JSON, derived widths, fit (smallest config) and check (clear errors)."""
import dataclasses
import json

import pytest

from a2q import fixedpoint as fp
from a2q import synth
from hw.config import AcceleratorConfig, ConfigError


def test_defaults_are_valid_and_round_trip_json(tmp_path):
    cfg = AcceleratorConfig()
    assert AcceleratorConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    path = cfg.replace(lanes=32, feat_words=1234).save(tmp_path / "c.json")
    assert AcceleratorConfig.load(path) == cfg.replace(lanes=32, feat_words=1234)


@pytest.mark.parametrize("field,value,needle", [
    ("lanes", 3, "lanes must be a power of two"),
    ("lanes", 128, "lanes must be a power of two"),
    ("pes", 0, "'pes' must be >= 1"),
    ("weight_bits", 9, "weight_bits must lie in [2, 8]"),
    ("max_feature_bits", 9, "max_feature_bits"),
    ("feat_words", 0, "'feat_words' must be >= 1"),
    ("node_words", 1, "node_words"),
    ("counter_bits", 8, "counter_bits"),
    ("lanes", 4.0, "must be an integer"),
])
def test_invalid_configs_are_refused(field, value, needle):
    with pytest.raises(ConfigError) as e:
        AcceleratorConfig().replace(**{field: value})
    assert needle in str(e.value)


def test_json_errors():
    with pytest.raises(ConfigError, match="unknown config field 'lane'"):
        AcceleratorConfig.from_json({"lane": 4})
    with pytest.raises(ConfigError, match="config_version"):
        AcceleratorConfig.from_json({"config_version": 99})


def test_widths_come_from_fixedpoint():
    cfg = AcceleratorConfig(lanes=16, max_features=1433, max_row_len=169)
    w = cfg.widths
    assert w.combine_acc == fp.combine_acc_bits(1440, 8, 4, False) == 23   # docs/arithmetic.md example
    assert w.aggregate_acc == fp.aggregate_acc_bits(169)
    assert w.src_product == fp.rescale_product_bits(w.combine_acc)
    assert w.node_product == fp.rescale_product_bits(fp.P_BITS)


def test_fit_is_the_smallest_config_that_runs_the_program():
    p = synth.random_program(seed=3, n=11, dims=(21, 9, 5), weight_bits=5)
    cfg = AcceleratorConfig.fit(p, lanes=8, pes=4)
    cfg.check(p)
    assert cfg.weight_bits == 5 and cfg.max_nodes == 11 and cfg.max_features == 21
    # layer 0 stores its non-zero words, the hidden layer is reserved at the dense size
    from a2q.cycle_model import nonzero_words

    nz0 = int(nonzero_words(p.arrays["x"], p.layer(0, "bits"), 8).sum())
    assert cfg.feat_words == nz0 + int(p.layer(1, "bits").sum()) * 2
    assert AcceleratorConfig.fit(p, lanes=8, pes=4, zero_skip=0).feat_words == \
        int(p.layer(0, "bits").sum()) * 3 + int(p.layer(1, "bits").sum()) * 2
    for f in dataclasses.fields(cfg):
        if f.name in ("lanes", "pes", "counter_bits", "zero_skip"):
            continue
        value = getattr(cfg, f.name)
        try:
            smaller = cfg.replace(**{f.name: value - 1})
        except ConfigError:
            continue   # invalid on its own (e.g. 0, or node_words < max_nodes)
        with pytest.raises(ConfigError) as e:
            smaller.check(p)
        msg = str(e.value)
        assert f"'{f.name}' needs {value}, config has {value - 1}" in msg, msg


def test_check_names_the_memory_and_sizes():
    p = synth.random_program(seed=0, n=10, dims=(20, 8, 4))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4).replace(edge_words=5)
    with pytest.raises(ConfigError, match=r"edge memory \(words\) 'edge_words' needs \d+, config has 5"):
        cfg.check(p)
