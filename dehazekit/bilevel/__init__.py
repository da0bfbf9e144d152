"""BiLaLoRA's optimisation core: hypergradients, bilevel gate search, top-K selection, fine-tune.

Names load lazily so torch-free modules (the CLI's option table) can import ``dehazekit.bilevel.methods``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "hypergrad": "dehazekit.bilevel.hypergrad",
    "FinetuneConfig": "dehazekit.bilevel.finetune",
    "FineTuner": "dehazekit.bilevel.finetune",
    "PrefixCache": "dehazekit.bilevel.prefix",
    "BilevelSearch": "dehazekit.bilevel.search",
    "SearchConfig": "dehazekit.bilevel.search",
    "trainable_split": "dehazekit.bilevel.search",
    "precision_at_k": "dehazekit.bilevel.selection",
    "rank_blocks": "dehazekit.bilevel.selection",
    "select_top_k": "dehazekit.bilevel.selection",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dehazekit.bilevel' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    return module if name == "hypergrad" else getattr(module, name)
