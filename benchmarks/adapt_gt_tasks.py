"""Tasks of benchmarks/adapt_gt.py: an unlabeled adaptation set and a disjoint evaluation set with GT.

Every image is loaded at a reduced size (CPU budget); adaptation and evaluation see the same scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dehazekit.data.images import read_rgb

_REPO = Path(__file__).resolve().parents[1]
# ../shared next to the checkout (main), else the workspace's shared folder (worktrees), or $DEHAZEKIT_SHARED
SHARED = (
    Path(os.environ.get("DEHAZEKIT_SHARED", ""))
    if os.environ.get("DEHAZEKIT_SHARED")
    else next(
        (p for p in (_REPO.parent / "shared", _REPO.parents[1] / "shared") if p.is_dir()),
        _REPO.parent / "shared",
    )
)
DATA = SHARED / "data"
FAMILIES = ("O-HAZE", "I-HAZE", "Dense-HAZE", "NH-HAZE-2020")
SYNTH_DOMAINS = ("patchy", "dust", "bluegrey", "dense", "depth")


@dataclass
class Task:
    """``adapt``: hazy images (float HWC) to adapt on (GT kept only for the supervised ceiling)."""

    name: str
    family: str
    protocol: str  # "disjoint" (never evaluated on an image it adapted on) or "transductive"
    adapt: list[np.ndarray]
    adapt_gt: list[np.ndarray]
    evals: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (name, hazy, gt)


def _halves(img: np.ndarray) -> list[np.ndarray]:
    """One photo as two images (left/right): adaptation needs two (one per BiLaLoRA split)."""
    w = img.shape[1] // 2
    return [img[:, :w], img[:, w:]]


def synthetic(domain: str, n_adapt: int, n_eval: int, size: int, seed: int = 0) -> Task:
    """Domain haze over clear photos; adaptation and evaluation images are disjoint photos."""
    from dehazekit.data.datasets import fixed_pairs
    from dehazekit.data.images import list_images

    if domain == "depth":  # Make3D: the only photos with real depth
        root = DATA / "depth" / "make3d"
        files, depth = sorted(root.glob("img-*.jpg")), root
        n_adapt, n_eval = min(n_adapt, 4), min(n_eval, len(files) - 4)
    else:
        files, depth = list_images(DATA / "clear" / "sunhays80"), None
    pick_adapt, pick_eval = files[:n_adapt], files[len(files) - n_eval :]
    adapt = fixed_pairs(pick_adapt, domain, n_adapt, seed, size, depth)
    evals = fixed_pairs(pick_eval, domain, n_eval, seed + 1, size, depth)
    return Task(
        f"synth:{domain}",
        "synthetic",
        "disjoint",
        [a[1] for a in adapt],
        [a[2] for a in adapt],
        [(e[0], e[1], e[2]) for e in evals],
    )


def ohaze(side: int) -> list[Task]:
    """O-HAZE 27/35: leave-one-out (adapt on one, evaluate the other) both ways, and transductive."""
    root = DATA / "paired_real" / "ohaze"
    pairs = {
        n: (read_rgb(root / f"{n}_outdoor_hazy.jpg", side), read_rgb(root / f"{n}_outdoor_GT.jpg", side))
        for n in (27, 35)
    }
    tasks = []
    for held, other in ((27, 35), (35, 27)):
        tasks.append(
            Task(
                f"ohaze:eval{held}",
                "O-HAZE 27/35",
                "disjoint",
                _halves(pairs[other][0]),
                _halves(pairs[other][1]),
                [(str(held), *pairs[held])],
            )
        )
    tasks.append(
        Task(
            "ohaze:transductive",
            "O-HAZE 27/35",
            "transductive",
            [h for n in pairs for h in _halves(pairs[n][0])],
            [g for n in pairs for g in _halves(pairs[n][1])],
            [(str(n), *pairs[n]) for n in pairs],
        )
    )
    return tasks


def crops(family: str, transductive: bool) -> list[Task]:
    """Figure crops of one real-haze family: two folds (even/odd pairs) and optionally transductive."""
    root = DATA / "paired_real" / "figure_crops" / family
    files = sorted(root.glob("*/*_hazy.png"))
    pairs = [
        (f"{p.parent.name}/{p.stem}", read_rgb(p), read_rgb(p.with_name(p.name.replace("_hazy", "_GT"))))
        for p in files
    ]
    folds = [pairs[0::2], pairs[1::2]]
    tasks = []
    for k, (train, test) in enumerate(((folds[1], folds[0]), (folds[0], folds[1]))):
        tasks.append(
            Task(
                f"crops:{family}:fold{k}",
                family,
                "disjoint",
                [p[1] for p in train],
                [p[2] for p in train],
                test,
            )
        )
    if transductive:
        tasks.append(
            Task(
                f"crops:{family}:transductive",
                family,
                "transductive",
                [p[1] for p in pairs],
                [p[2] for p in pairs],
                pairs,
            )
        )
    return tasks


def bedde() -> Task:
    """BeDDE Chengdu: 5 real hazy days of one scene; the clear day is a rough (unaligned) reference."""
    root = DATA / "paired_real" / "bedde_chengdu"
    clear = read_rgb(root / "chengdu_clear_rs.jpg")
    hazy = [(p.stem, read_rgb(p)) for p in sorted(root.glob("chengdu_*_rs.jpg")) if "clear" not in p.name]
    return Task(
        "bedde:chengdu",
        "BeDDE",
        "transductive",
        [h for _, h in hazy],
        [clear] * len(hazy),
        [(n, h, clear) for n, h in hazy],
    )
