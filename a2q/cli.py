"""The ``a2q`` command line: one verb per step of the flow, each printing a line and writing JSON.

Verbs import their heavy modules lazily: the parser lists every verb with the help text of ``VERBS``
/ ``HW_VERBS`` but imports only the chosen verb's module, so ``a2q --help`` stays fast and a verb that
needs only numpy (e.g. ``hw generate``) does not pay for torch.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

# verb -> (module, function that adds arguments, function that runs, help)
VERBS = {
    "train": ("a2q.trainer", "add_train_arguments", "run_train",
              "train FP32 / INT-k / Degree-Quant / A2Q GCN, GIN or GAT models"),
    "export": ("a2q.export", "add_export_arguments", "run_export", "export a checkpoint as an accelerator program"),
    "infer": ("a2q.infer", "add_infer_arguments", "run_infer", "integer-only inference of a program"),
    "hw": (None, None, None, "accelerator hardware (Verilog generation)"),
    "sim": ("sim.cli", "add_sim_arguments", "run_sim", "simulate a program on the RTL (cocotb)"),
    "flow": ("a2q.flow", "add_flow_arguments", "run_flow", "train, export, generate, simulate, report"),
    "sweep": ("a2q.sweep", "add_sweep_arguments", "run_sweep", "co-sweep bits against accuracy and cycles"),
}
HW_VERBS = {
    "generate": ("hw.generate", "add_generate_arguments", "run_generate", "generate Verilog for a config"),
    "synth": ("hw.synth", "add_synth_arguments", "run_synth",
              "synthesise, place and route for an FPGA part; report resources and Fmax"),
    "project": ("hw.project", "add_project_arguments", "run_project",
                "write a Vivado / Quartus / Yosys-nextpnr project for the Verilog (edalize)"),
}


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _add(sub, name, spec, load: bool):
    """A subcommand with its help text; its module is imported (and its arguments added) only if ``load``."""
    module, add_fn, run_fn, help_text = spec
    p = sub.add_parser(name, help=help_text, description=help_text)
    if not load:
        p.set_defaults(_run=None, _missing=f"{name}: not loaded")
        return p
    try:
        mod = importlib.import_module(module)
    except ImportError as e:  # a verb whose module is not built yet must not break the others
        p.set_defaults(_run=None, _missing=f"{name}: not available ({e})")
        return p
    getattr(mod, add_fn)(p)
    p.set_defaults(_run=getattr(mod, run_fn))
    return p


def _chosen(argv: list[str]) -> list[str]:
    """The verb words of ``argv`` (``["train"]``, ``["hw", "generate"]``): its leading non-option words
    (the top level and ``hw`` take no option but --help)."""
    words = []
    for a in argv:
        if a.startswith("-"):
            continue
        words.append(a)
        if len(words) == 2 or words[0] != "hw":
            break
    return words


def build_parser(argv: list[str] | None = None, load_all: bool = False) -> argparse.ArgumentParser:
    """The parser for ``argv`` (default ``sys.argv[1:]``): every verb listed, only the chosen one loaded
    (``load_all``: every verb loaded, for documentation and tests)."""
    words = _chosen(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="a2q", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, spec in VERBS.items():
        if name == "hw":
            hw = sub.add_parser("hw", help=spec[3], description=spec[3])
            hw_sub = hw.add_subparsers(dest="hw_verb", required=True, metavar="HW_VERB")
            for hname, hspec in HW_VERBS.items():
                _add(hw_sub, hname, hspec, load_all or words == ["hw", hname])
        else:
            _add(sub, name, spec, load_all or words[:1] == [name])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        print(f"a2q: {getattr(args, '_missing', 'verb not available')}", file=sys.stderr)
        return 2
    try:
        result = run(args)
    except CLIError as e:
        print(f"a2q {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # ProgramError, ConfigError, DatasetError are ValueErrors
        print(f"a2q {args.verb}: error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "json", False) and result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
