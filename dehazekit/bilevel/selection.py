"""Pick the blocks that keep LoRA after the search: top-K by gate value, ties broken by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dehazekit.runtimes.errors import ConfigError


def rank_blocks(gates: Mapping[str, float]) -> list[str]:
    """Block names ordered by gate value (descending), equal values ordered by name."""
    return sorted(gates, key=lambda b: (-float(gates[b]), b))


def select_top_k(gates: Mapping[str, float], k: int | None = 3, threshold: float | None = None) -> list[str]:
    """Selected block names, best first. Names are returned exactly as given (never matched by substring).

    ``k``: keep the K highest gates. ``threshold``: keep blocks whose gate is >= threshold (capped at
    ``k`` when both are given). At least one of them must be set.
    """
    if not gates:
        raise ConfigError.build("no gate values to select from", fix="run the search on gated LoRA first")
    if k is None and threshold is None:
        raise ConfigError.build("selection needs top-k or a gate threshold", fix="pass k=3 or threshold=0.5")
    if k is not None and (not isinstance(k, int) or k < 1):
        raise ConfigError.build("top-k must be a positive integer", got=k)
    if k is not None and k > len(gates):
        raise ConfigError.build(
            "top-k is larger than the number of candidate blocks",
            got=k,
            expected=f"<= {len(gates)}",
            fix=f"use --top-k {len(gates)} or fewer",
        )
    ranked = rank_blocks(gates)
    if threshold is not None:
        ranked = [b for b in ranked if float(gates[b]) >= threshold]
        if not ranked:
            best = max(float(v) for v in gates.values())
            raise ConfigError.build(
                "no block reaches the gate threshold",
                got=threshold,
                expected=f"<= {best:.4f} (the highest gate)",
                fix="lower --gate-threshold",
            )
    return ranked[:k] if k is not None else ranked


def precision_at_k(selected: Iterable[str], relevant: Iterable[str]) -> float:
    """|selected & relevant| / |selected| (exact names)."""
    selected = list(selected)
    if not selected:
        return 0.0
    return len(set(selected) & set(relevant)) / len(selected)
