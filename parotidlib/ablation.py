"""The channel ablation of the paper's Table 3 (filled in by the ablation issue)."""

from __future__ import annotations

from dataclasses import dataclass

from parotidlib.constants import CHANNELS

#: The paper's seven input compositions (Table 3, rows a-g), as "+"-joined channel names.
COMPOSITIONS: tuple[str, ...] = (
    "t1", "ce_t1", "t2", "t1+ce_t1", "t1+t2", "ce_t1+t2", "t1+ce_t1+t2+gland",
)


@dataclass(frozen=True)
class AblationConfig:
    """Settings of the channel ablation batch."""

    # Training seeds per composition (mean and spread are reported).
    seeds: tuple[int, ...] = (0,)
    # Input compositions to compare, "+"-joined channel names in canonical order.
    compositions: tuple[str, ...] = COMPOSITIONS

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed, got ()")
        for comp in self.compositions:
            parts = comp.split("+")
            bad = [p for p in parts if p not in CHANNELS]
            if bad or not parts:
                raise ValueError(
                    f"compositions entry {comp!r} has unknown channel(s) {bad}; "
                    f"allowed: {', '.join(CHANNELS)}"
                )
