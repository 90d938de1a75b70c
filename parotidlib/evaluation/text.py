"""How a result is written as text: the one formatter of a metrics.json block.

Every table (:mod:`.frames`), report sentence (:mod:`parotidlib.report.paper`,
:mod:`parotidlib.report.cv_report`), checklist answer (:mod:`parotidlib.report.checklist`) and
figure legend (:mod:`parotidlib.report.figures.external`) writes a value, its interval, its
counts and an undefined quantity through :func:`block_text` and :func:`number_text`, so that
they read the same everywhere. Light on purpose (no scikit-learn, no torch): the checklist
imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from parotidlib.evaluation.stats import UNDEFINED_KEY

__all__ = ["block_text", "number_text", "undefined_text"]


def undefined_text(reason: str | None) -> str:
    """How a table shows an undefined quantity: ``"undefined (<reason>)"``, or ``"n/a"``.

    Parameters
    ----------
    reason : str or None
        The reason recorded in metrics.json; None when there is none.
    """
    return f"undefined ({reason})" if reason else "n/a"


def _fixed(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, without a sign on a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0.0 else text


def block_text(block: Mapping[str, Any] | None, digits: int = 3, interval: bool = True,
               counts: bool = True) -> str:
    """A metrics.json block (docs/metrics.md) as text: ``value [lo, hi] (k/n)``.

    The one way every table, report sentence, checklist answer and figure legend of the kit
    writes a result. An undefined value reads ``undefined (<reason>)`` (or ``n/a`` without a
    reason), an undefined interval `` [CI undefined (<reason>)]``; a value that rounds to zero
    has no sign.

    Parameters
    ----------
    block : mapping or None
        ``{"value", "ci95"?, "ci95_undefined"?, "successes"?, "total"?, "undefined"?}``.
    digits : int
        Decimals of the value and the interval.
    interval, counts : bool
        Whether to write the 95% interval and the ``(k/n)`` counts when the block has them.
    """
    value = block.get("value") if block else None
    if value is None or not math.isfinite(float(value)):
        return undefined_text(block.get(UNDEFINED_KEY) if block else None)
    text = _fixed(float(value), digits)
    if interval and block.get("ci95"):
        low, high = block["ci95"]
        text += f" [{_fixed(float(low), digits)}, {_fixed(float(high), digits)}]"
    elif interval and block.get(f"ci95_{UNDEFINED_KEY}"):
        text += f" [CI {undefined_text(block[f'ci95_{UNDEFINED_KEY}'])}]"
    if counts and "successes" in block and "total" in block:
        text += f" ({block['successes']}/{block['total']})"
    return text


def number_text(mapping: Mapping[str, Any], key: str, digits: int = 3) -> str:
    """A bare number of ``mapping`` (a p-value, a Brier score) as :func:`block_text` writes a
    value, or ``undefined (<reason>)`` / ``n/a`` from ``<key>_undefined`` when it is null."""
    value = mapping.get(key)
    if value is None or not math.isfinite(float(value)):
        return undefined_text(mapping.get(f"{key}_{UNDEFINED_KEY}"))
    return _fixed(float(value), digits)
