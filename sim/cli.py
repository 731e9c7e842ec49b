"""``a2q sim PROGRAM``: run a program on the generated RTL and check it bit for bit."""
from __future__ import annotations

from pathlib import Path

from . import runner


def add_sim_arguments(p) -> None:
    p.add_argument("program", help="program directory written by `a2q export`")
    p.add_argument("--sim", default="verilator", choices=runner.SIMULATORS)
    p.add_argument("--config", default=None, help="accelerator config JSON (default: fit the program)")
    p.add_argument("--lanes", type=int, default=16, help="L when fitting the config")
    p.add_argument("--pes", type=int, default=16, help="P when fitting the config")
    p.add_argument("--io", default="backdoor", choices=("backdoor", "port"),
                   help="load and read back through the memory arrays (fast) or the load port (one clock a word)")
    p.add_argument("--bus", default="none", choices=("none", "axi"),
                   help="run through the bare core (none) or the AXI wrapper (axi: every word over AXI4)")
    from hw.primitives import FAMILIES

    p.add_argument("--primitives", default="none", choices=FAMILIES,
                   help="simulate the Verilog with a vendor's primitives (ecp5: the MULT18X18Ds that `a2q hw "
                        "synth` instantiates, on hw/sim_models), not the plain RTL")
    p.add_argument("--out", default=None, help="report JSON (default: PROGRAM/sim_<simulator>.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_sim(args) -> dict:
    from a2q import program as prog
    from a2q.progress import Progress
    from hw.config import AcceleratorConfig

    from .simulate import simulate

    prog.load(args.program)  # a bad program is reported before any generation or build
    ok, why = runner.simulator_available(args.sim)
    if not ok:
        raise ValueError(why)
    cfg = AcceleratorConfig.load(args.config) if args.config else None
    bus = getattr(args, "bus", "none")
    out = args.out or Path(args.program) / f"sim_{args.sim}{'_axi' if bus == 'axi' else ''}.json"
    how = "AXI" if bus == "axi" else args.io
    stages = ["generate Verilog", f"build ({args.sim})", f"load, run, read back ({how})"]
    with Progress(total=len(stages), desc="a2q sim", unit="stage") as bar:
        def progress(stage):
            if stage != stages[0]:
                bar.set_postfix()
                bar.update(1, note=f"{stages[bar.n]} done")
            bar.set_postfix(stage=stage)
        rep = simulate(args.program, config=cfg, lanes=args.lanes, pes=args.pes, sim=args.sim, out=out,
                       progress=progress, io=args.io, bus=bus, primitives=getattr(args, "primitives", "none"))
        bar.set_postfix()
        bar.update(1, note=f"{stages[-1]} done")
    rc, mc = rep["rtl_cycles"], rep["model_cycles"]
    verdict = "bit-exact" if rep["mismatches"] == 0 and not rep.get("unresolved_words") else \
        f"{rep['mismatches']} MISMATCHES (first {rep['first_mismatch']})"
    where = f"{args.sim}{', AXI' if bus == 'axi' else ''}"
    print(f"a2q sim [{where}]: {verdict}; cycles {rc['total']:,} (model {mc['total']:,}, "
          f"{'equal' if rep['cycles_match'] else 'DIFFERENT'}); run {rep['wall_s']['run']:.2f} s, "
          f"{rep['sim_cycles_per_s'] or 0:,.0f} cycles/s -> {out}")
    return rep
