"""BiLaLoRA's optimisation core: rank-one hypergradient, bilevel gate search, top-K selection, fine-tune."""
from dehazekit.bilevel import hypergrad
from dehazekit.bilevel.finetune import FinetuneConfig, FineTuner
from dehazekit.bilevel.search import BilevelSearch, SearchConfig, trainable_split
from dehazekit.bilevel.selection import precision_at_k, rank_blocks, select_top_k

__all__ = [
    "BilevelSearch", "FineTuner", "FinetuneConfig", "SearchConfig", "hypergrad", "precision_at_k",
    "rank_blocks", "select_top_k", "trainable_split",
]
