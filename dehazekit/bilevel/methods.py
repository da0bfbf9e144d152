"""The hypergradient methods by name, and the default (torch-free: the CLI builds its options from these
before torch loads)."""

METHODS = ("rank1", "first-order", "unrolled", "reference", "cg")
# The default, chosen by benchmarks/hypergrad_exact.py and benchmarks/ablation.py (see benchmarks/README.md):
# 0.02-0.08 below the best cosine to the exact hypergradient (warm cg) in the BiLaLoRA setting, at the
# lowest cost (2 gradient passes per search step; a cg step costs ~3.5x); rank1 stays available as the
# paper's.
DEFAULT_METHOD = "first-order"
