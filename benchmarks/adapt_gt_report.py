"""JSON, markdown tables and a PNG contact sheet for benchmarks/adapt_gt.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

KEYS = ("psnr", "ssim", "psnr_gain", "ssim_gain", "fade", "luma", "gt_luma", "clipped", "colour")
HARM_DB = 0.1  # a run "harms" when it loses more than this on its evaluation images


def mean_of(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in KEYS if rows and k in rows[0]}


def summarise(records: list[dict]) -> list[dict]:
    out = []
    for rec in records:
        means = {m: mean_of(rows) for m, rows in rec["methods"].items()}
        base = means["none"]["psnr"]
        out.append(
            {
                "task": rec["task"],
                "family": rec["family"],
                "protocol": rec["protocol"],
                "n_adapt": rec["n_adapt"],
                "n_eval": rec["n_eval"],
                "means": means,
                "delta_psnr": {m: v["psnr"] - base for m, v in means.items()},
                "guard": {m: _guard_brief(g) for m, g in rec.get("guard", {}).items()},
                "wall_s": rec.get("wall_s", {}),
            }
        )
    return out


def _guard_brief(guard: dict | None) -> dict | None:
    if guard is None:
        return None
    return {
        "recommended": guard["recommended"],
        "chosen_step": guard["chosen_step"],
        "last_step": guard["checks"][-1]["step"] if guard["checks"] else None,
        "failures": [c["failures"] for c in guard["checks"]],
        "holdout": guard["holdout"],
    }


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "" if v is None else format(v, spec)


def task_table(summary: list[dict]) -> list[str]:
    methods = sorted({m for s in summary for m in s["means"]}, key=lambda m: (m != "none", m))
    lines = [
        (
            "| task | method | PSNR | dPSNR | SSIM | PSNR gain-fit | SSIM gain-fit | FADE | luma (GT) "
            "| clipped % "
            "| colourf. |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        for m in methods:
            v = s["means"].get(m)
            if v is None:
                continue
            lines.append(
                f"| {s['task']} | {m} | {v['psnr']:.2f} | {s['delta_psnr'][m]:+.2f} | {v['ssim']:.3f} | "
                f"{v['psnr_gain']:.2f} | {v['ssim_gain']:.3f} | {_fmt(v.get('fade'), '.3f')} | "
                f"{v['luma']:.0f} ({v['gt_luma']:.0f}) | {100 * v['clipped']:.2f} | {v['colour']:.1f} |"
            )
    return lines


def overview(summary: list[dict]) -> list[str]:
    """One row per task: base PSNR and each method's change; shipped = what the guard lets adapt ship."""
    methods = sorted({m for s in summary for m in s["means"] if m != "none"})
    lines = [
        ("| task | protocol | n adapt/eval | none PSNR | luma none / GT | " + " | ".join(methods) + " |"),
        "|---|---|---|---|---|" + "---|" * len(methods),
    ]
    for s in summary:
        none = s["means"]["none"]
        cells = [_fmt(s["delta_psnr"].get(m), "+.2f") for m in methods]
        lines.append(
            f"| {s['task']} | {s['protocol']} | {s['n_adapt']}/{s['n_eval']} | {none['psnr']:.2f} | "
            f"{none['luma']:.0f} / {none['gt_luma']:.0f} | " + " | ".join(cells) + " |"
        )
    return lines


def compact(summary: list[dict]) -> list[str]:
    """The headline table: PSNR change of what each method ships, and luma against GT."""
    cols = [
        "lora:offline",
        "lora:offline:last",
        "lora:dcp",
        "lora:dcp:last",
        "full:offline",
        "full:dcp",
        "l1",
    ]
    lines = [
        "| task | n adapt/eval | none PSNR | " + " | ".join(cols) + " | luma none / offline / GT |",
        "|---|---|---|" + "---|" * len(cols) + "---|",
    ]
    for s in summary:
        m = s["means"]
        cells = [_fmt(s["delta_psnr"].get(c), "+.2f") for c in cols]
        off = m.get("lora:offline", {}).get("luma")
        lines.append(
            f"| {s['task']} | {s['n_adapt']}/{s['n_eval']} | {m['none']['psnr']:.2f} | "
            + " | ".join(cells)
            + f" | {m['none']['luma']:.0f} / {_fmt(off, '.0f')} / {m['none']['gt_luma']:.0f} |"
        )
    return lines


def guard_table(summary: list[dict]) -> list[str]:
    """Guard decisions vs the truth (the last step's PSNR change on GT)."""
    counts = {
        "harm_rejected": 0,
        "harm_shipped": 0,
        "good_kept": 0,
        "good_rejected": 0,
        "shipped_harm": 0,
        "runs": 0,
    }
    rows = [
        "| task | method | last-step dPSNR | guard | shipped dPSNR | first failure |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        for m, g in s["guard"].items():
            if g is None:
                continue
            last, shipped = s["delta_psnr"][f"{m}:last"], s["delta_psnr"][m]
            kept_last = g["recommended"] and g["chosen_step"] == g["last_step"]
            verdict = (
                "ships last" if kept_last else ("ships earlier step" if g["recommended"] else "rejects all")
            )
            harmful = last < -HARM_DB
            key = (
                ("harm_shipped" if kept_last else "harm_rejected")
                if harmful
                else ("good_kept" if kept_last else "good_rejected")
            )
            counts[key] += 1
            first = next((f[0] for f in g["failures"] if f), "")
            rows.append(f"| {s['task']} | {m} | {last:+.2f} | {verdict} | {shipped:+.2f} | {first} |")
            counts["shipped_harm"] += shipped < -HARM_DB
            counts["runs"] += 1
    head = [
        (
            f"Harmful last steps (< -{HARM_DB} dB): {counts['harm_rejected']} stopped by the guard, "
            f"{counts['harm_shipped']} shipped. Good last steps: {counts['good_kept']} kept, "
            f"{counts['good_rejected']} replaced by an earlier step or rejected. What the guard ships loses "
            f"more than {HARM_DB} dB in {counts['shipped_harm']} of {counts['runs']} runs."
        ),
        "",
    ]
    return head + rows


def contact_sheet(records: list[dict], path: Path) -> None:
    from dehazekit.data.images import to_uint8
    from dehazekit.metrics.eval import contact_sheet as sheet

    order = ["hazy", "none", "lora:offline", "lora:dcp", "full:offline", "full:dcp", "l1", "gt"]
    rows = [[to_uint8(r["previews"][k]) for k in order if k in r["previews"]] for r in records]
    path.write_bytes(sheet(rows, height=120))


def write_outputs(out: Path, records: list[dict], meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = summarise(records)
    clean = [{k: v for k, v in r.items() if k != "previews"} for r in records]
    if not all("previews" in r for r in records):  # re-rendered from a JSON: keep its JSON as it is
        out = out.with_name(out.name + "_rerendered")
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summary, "records": clean}, indent=1, default=str) + "\n"
    )
    setup = (
        f"tasks done {meta.get('tasks_done', 'all')}, wall {meta['wall_s']:.0f} s; "
        f"search/fine-tune steps {meta['search']}/{meta['finetune']}, crops "
        f"{meta['size']} px, images at {meta['side']} px, adapt overrides {meta.get('adapt_overrides')}"
    )
    sheet = (
        "Contact sheet (.png), one row per task, first evaluation image: hazy | none | lora:offline | "
        "lora:dcp | full:offline | full:dcp | l1 | GT (methods that ran)."
    )
    md = [
        f"# adapt_gt ({meta['mode']})",
        "",
        f"    {meta['command']}",
        "",
        setup,
        "",
        sheet,
        "",
        "## dPSNR vs no adaptation",
        "",
        *compact(summary),
        "",
        "## Guard",
        "",
        *guard_table(summary),
        "",
        "## All metrics",
        "",
        *task_table(summary),
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    if all("previews" in r for r in records):
        contact_sheet(records, out.with_suffix(".png"))
