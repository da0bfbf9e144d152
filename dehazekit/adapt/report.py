"""Run report: summary.json, a gate ranking chart, loss curves and a before/after grid (matplotlib Agg).

Every file is written atomically (temporary name in the same folder, renamed when complete).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from dehazekit.runtimes.io_utils import atomic_path, atomic_write_text

REPORT_DIR = "report"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never open a window, never need a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_summary(path: Path, summary: Mapping[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")


def plot_gates(path: Path, gates: Mapping[str, float], selected: Sequence[str]) -> Path:
    """Horizontal bars of sigmoid(alpha) per block, best first; selected blocks highlighted."""
    plt = _pyplot()
    order = sorted(gates, key=lambda b: (-gates[b], b))
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.2))
    colours = ["tab:orange" if b in selected else "tab:gray" for b in order]
    values = [float(gates[b]) for b in order]
    # Gates move little from their initial 0.5 in short searches: bars start at 0.5 and the axis
    # zooms on the spread, so the ranking stays visible.
    ax.barh(range(len(order)), [v - 0.5 for v in values], left=0.5, color=colours)
    lo, hi = min(values + [0.5]), max(values + [0.5])
    pad = max((hi - lo) * 0.15, 1e-6)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.5, color="k", lw=0.6, ls="--")  # the initial gate value
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    ax.set_xlabel("gate sigmoid(alpha) after search; bars from the initial 0.5 (orange: selected)")
    ax.set_title("gate ranking")
    return _save(fig, path)


def plot_losses(path: Path, history: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """Upper and lower losses of the search, then the fine-tune loss, on one step axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    search = history.get("search", [])
    if search:
        steps = [h["step"] for h in search]
        ax.plot(steps, [h.get("upper_loss", float("nan")) for h in search], label="search: upper F (S_alpha)")
        ax.plot(steps, [h.get("lower_loss", float("nan")) for h in search], label="search: lower f (S_w)")
    finetune = history.get("finetune", [])
    if finetune:
        offset = len(search)
        ax.plot([offset + h["step"] for h in finetune], [h["loss"] for h in finetune], label="fine-tune")
        ax.axvline(offset + 0.5, color="k", lw=0.6, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.legend(fontsize=8)
    ax.set_title("losses")
    return _save(fig, path)


def plot_before_after(path: Path, inputs: Tensor, before: Tensor, after: Tensor) -> Path:
    """Grid: one row per crop with the hazy input, the base model output and the adapted output."""
    plt = _pyplot()
    rows = inputs.shape[0]
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows + 0.3), squeeze=False)
    for r in range(rows):
        columns = (("hazy input", inputs), ("base model", before), ("adapted", after))
        for c, (title, batch) in enumerate(columns):
            image = batch[r].detach().clamp(0, 1).permute(1, 2, 0).to(torch.float32).numpy()
            axes[r][c].imshow(image)
            axes[r][c].axis("off")
            if r == 0:
                axes[r][c].set_title(title)
    return _save(fig, path)


def write_report(
    out_dir: Path,
    summary: Mapping[str, Any],
    gates: Mapping[str, float],
    selected: Sequence[str],
    history: Mapping[str, Sequence[Mapping[str, Any]]],
    previews: Sequence[Tensor],
) -> dict[str, Path]:
    """Write everything under ``out_dir/report``; returns {name: path}."""
    folder = Path(out_dir) / REPORT_DIR
    paths = {
        "gates_png": plot_gates(folder / "gates.png", gates, selected),
        "loss_png": plot_losses(folder / "loss.png", history),
        "before_after_png": plot_before_after(folder / "before_after.png", *previews),
    }
    paths["summary"] = write_summary(
        folder / "summary.json", {**summary, "report_files": {k: str(v) for k, v in paths.items()}}
    )
    return paths
