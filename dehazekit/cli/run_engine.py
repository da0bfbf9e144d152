"""`dehazekit run --engine ray`: the same run on a Ray cluster (dehazekit.runtimes.ray_engine).

Same output safety (prepare_outputs), progress and summary as the local engine; only the executor differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import ConfigError


def run_engine(
    engine: str,
    source: str,
    model: Path | None,
    default: Path | None,
    out: Path | None,
    dehazer: dict[str, Any],
    engine_options: dict[str, Any],
    **kwargs: Any,
) -> None:
    """Validate, run on Ray, print the local engine's summary. ``dehazer``: Dehazer options per actor."""
    if engine != "ray":
        raise ConfigError.build("unknown --engine", got=engine, expected="local or ray")
    from dehazekit.cli.run_model import choose_model
    from dehazekit.cli.run_support import OutputPlan, prepare_outputs, progress, summary
    from dehazekit.runtimes.budget import parse_memory
    from dehazekit.runtimes.ray_engine import RayOptions, import_ray, run_ray

    import_ray()  # the install fix before any work
    options = RayOptions(**{k: v for k, v in engine_options.items() if v is not None})
    memory = str(dehazer["max_memory"]).strip().lower()
    dehazer["max_memory"] = (
        "auto" if memory == "auto" else parse_memory(memory)
    )  # "auto": each node's own RAM
    choice = choose_model(model, default)  # the file every actor loads; folders resolve to a verified ONNX
    plans: list[OutputPlan] = []
    bar, on_frame = progress(None)
    with bar:
        report = run_ray(
            source,
            choice.path,
            out,
            options=options,
            dehazer=dehazer,
            on_progress=on_frame,
            check_outputs=lambda src, sink: plans.append(prepare_outputs(src, sink)),
            **kwargs,
        )
    threads = dehazer.get("threads") or "onnxruntime default"
    summary(
        report,
        report.backend,
        f"ray, {options.workers} workers, {choice.note or choice.route}",
        f"{threads} per worker",
        plans[0] if plans else OutputPlan(),
    )
