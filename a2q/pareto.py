"""Pareto fronts for the co-sweep: maximise accuracy while minimising a cost (cycles or bits)."""
from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], accs: Sequence[float]) -> list[bool]:
    """Mark the points no other point dominates (cost <= and acc >=, one of them strictly)."""
    n = len(costs)
    if n != len(accs):
        raise ValueError(f"costs ({n}) and accs ({len(accs)}) differ in length")
    front = []
    for i in range(n):
        dominated = any(
            costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j] < costs[i] or accs[j] > accs[i])
            for j in range(n) if j != i)
        front.append(not dominated)
    return front


def dominates_all(a_points: Sequence[tuple[float, float]], b_points: Sequence[tuple[float, float]]) -> bool:
    """True when every B point (cost, acc) is weakly dominated by some A point."""
    return all(any(ca <= cb and aa >= ab for ca, aa in a_points) for cb, ab in b_points)
