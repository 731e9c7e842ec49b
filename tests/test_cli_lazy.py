"""The CLI imports only the chosen verb's module: `a2q --help` and `a2q hw generate` never import torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from a2q import cli

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from a2q.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:  # --help exits
    rc = e.code
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "torch_geometric": "torch_geometric" in sys.modules}))
"""


def _probe(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["hw", "--help"], ["hw", "generate", "--help"], ["sim", "--help"]])
def test_help_does_not_import_torch(argv):
    assert _probe(*argv) == {"rc": 0, "torch": False, "torch_geometric": False}


def test_hw_generate_does_not_import_torch(tmp_path):
    r = _probe("hw", "generate", "--lanes", "2", "--pes", "2", "--max-nodes", "8", "--max-features", "4",
               "--feat-words", "64", "--node-words", "16", "--edge-words", "32", "--xw-words", "16",
               "--out-words", "16", "-o", str(tmp_path / "a.v"))
    assert r == {"rc": 0, "torch": False, "torch_geometric": False}
    assert (tmp_path / "a.v").stat().st_size > 0


def test_top_level_help_lists_every_verb_from_the_table(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for name, spec in cli.VERBS.items():
        assert name in text and spec[3] in text


def test_chosen_verb_is_loaded_and_others_are_not():
    args = cli.build_parser(["infer", "p"]).parse_args(["infer", "p"])
    assert args._run is not None and args.program == "p"
    parser = cli.build_parser(["infer", "p"])
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    assert sub.choices["train"].get_default("_run") is None  # listed, not imported


def test_load_all_loads_every_verb():
    parser = cli.build_parser([], load_all=True)
    sub = parser._subparsers._group_actions[0]
    for name in cli.VERBS:
        if name != "hw":
            assert sub.choices[name].get_default("_run") is not None, name
