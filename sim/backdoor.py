"""Backdoor memory access for the cocotb testbench: write and read the RTL's memory arrays directly.

Going through the load port costs one simulated clock per word (a clock of the whole design) plus a
cocotb trigger, and reading back costs a clock and a conversion of the full ``mem_rdata`` word (the
widest memory's width) per address. The backdoor instead writes each word into the memory array of
the generated Verilog through the simulator's handles (VPI), with no clock at all: the testbench
uses it while the accelerator is idle (after reset, before ``start``; after ``done``).

The arrays are found generically from the memory map (``hw.memory_map.memory_shapes``), not by a
list of names: memory ``NAME`` is either an unpacked array ``mem_NAME`` in the top module, or an
instance ``mem_NAME`` holding ``bank0 .. bankK-1`` arrays that each keep a slice of the word
(``hw/memories.py``'s ``BankedMemory``, bank 0 least significant; banks may differ in width). Icarus
exposes every signal; Verilator only the public ones, and ``sim.runner`` makes exactly these arrays (and
the top's ports) public (``sim/verilator_public.py``); see docs/hardware.md ("Testbench I/O", "Simulation speed").
"""
from __future__ import annotations

#: cocotb's write action for "now, no delay" (``cocotb.handle.Immediate``; ``_GPISetAction.NO_DELAY``).
_NO_DELAY = 3


class BackdoorError(RuntimeError):
    """The design has no array where the memory map says a memory is."""


class MemoryBackdoor:
    """One memory of the design: ``write(words)`` from address 0, ``read(start, count)``."""

    def __init__(self, dut, name: str, width: int, depth: int):
        self.name, self.width, self.depth = name, width, depth
        try:
            handle = getattr(dut, f"mem_{name}")
        except AttributeError:
            raise BackdoorError(f"no mem_{name} in the design") from None
        if _is_array(handle):
            self.banks = [handle]
        else:  # an instance of banks
            self.banks = []
            while True:
                try:
                    self.banks.append(getattr(handle, f"bank{len(self.banks)}"))
                except AttributeError:
                    break
            if not self.banks or not all(_is_array(b) for b in self.banks):
                raise BackdoorError(f"mem_{name} is neither an array nor an instance of bank arrays")
        lo = min(self.banks[0].range.left, self.banks[0].range.right)
        self._base = lo  # arrays are declared [depth-1:0]
        # each bank's word width from the array itself (the XW buffer's banks are not all equal)
        self.bank_widths = [len(bank[lo]) for bank in self.banks]
        if sum(self.bank_widths) != width:
            raise BackdoorError(f"mem_{name}: banks of {self.bank_widths} bits do not make its {width}-bit word")
        self.bank_offsets = [sum(self.bank_widths[:k]) for k in range(len(self.banks))]
        if len(self.banks[0]) < depth:
            raise BackdoorError(f"mem_{name} holds {len(self.banks[0])} words, the memory map needs {depth}")

    def write(self, words, start: int = 0, skip_zero: bool = False) -> int:
        """Write ``words`` from address ``start`` at once (no clock); returns the count of words written.

        ``skip_zero``: leave all-zero words (bank slices) out, for a simulator that guarantees every
        memory starts at zero (``sim.runner.ZERO_INIT_SIMULATORS``: Verilator built with
        ``--x-initial 0``); the memory then holds exactly the image. Never on one that starts at X.

        Per word this is one index lookup and one write on the simulator object (``sim_obj``, the
        layer under cocotb's handle classes): building a Python handle per word costs more than the
        write itself (~45 us against a few us on Verilator)."""
        for bank, bw, shift in zip(self.banks, self.bank_widths, self.bank_offsets, strict=True):
            raw, mask = bank._handle, (1 << bw) - 1
            for a, w in enumerate(words, start=start + self._base):
                v = (int(w) >> shift) & mask
                if skip_zero and not v:
                    continue
                word = raw.get_handle_by_index(a)
                if bw <= 32:
                    word.set_signal_val_int(_NO_DELAY, v)
                else:
                    word.set_signal_val_binstr(_NO_DELAY, format(v, f"0{bw}b"))
        return sum(1 for w in words if int(w)) if skip_zero else len(words)

    def read(self, start: int, count: int, unresolved: list | None = None) -> list[int]:
        """``count`` words from ``start``; a word with X/Z bits reads as 0 and is named in ``unresolved``."""
        words = [0] * count
        bad = set()
        for bank, shift in zip(self.banks, self.bank_offsets, strict=True):
            raw = bank._handle
            for i in range(count):
                bits = raw.get_handle_by_index(start + i + self._base).get_signal_val_binstr()
                try:
                    words[i] |= int(bits, 2) << shift
                except ValueError:  # X or Z bits
                    bad.add(i)
        if unresolved is not None:
            unresolved += [f"{self.name}[{start + i}]" for i in sorted(bad)]
        return words


def _is_array(handle) -> bool:
    from cocotb.handle import ArrayObject

    return isinstance(handle, ArrayObject)


def memories(dut, shapes: dict[str, tuple[int, int]]) -> dict[str, MemoryBackdoor]:
    """A backdoor per memory of ``shapes`` ({name: (width, depth)}, ``hw.memory_map.memory_shapes``)."""
    return {name: MemoryBackdoor(dut, name, width, depth) for name, (width, depth) in shapes.items()}
