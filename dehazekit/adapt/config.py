"""AdaptConfig: every knob of one adaptation run, validated on construction and saved with its outputs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dehazekit.bilevel.hypergrad import DEFAULT_METHOD
from dehazekit.bilevel.hypergrad import METHODS as HYPERGRADS
from dehazekit.runtimes.errors import ConfigError

# Fields that may change between an interrupted run and its resume without changing the result.
RESUME_FREE = ("out", "checkpoint_every", "resume", "preview_count", "guard_every")


@dataclass
class AdaptConfig:
    """Configuration of ``dehazekit.adapt`` (mirrors ``dehazekit adapt``'s options).

    ``candidates``: which blocks get gated LoRA in Stage 1: "auto" (the backbone's ``bilalora``
    preset when it has one, else all candidates), "all", or another preset name.
    ``weights``: a model folder, an official checkpoint, or "default" (the bundled model).
    ``prompts``: an H2C prompt preset ("default", "day", "night") or a list of (hazy, clear) pairs.
    ``checkpoint_every``: steps between atomic checkpoints in ``out/checkpoint`` (0 = never).
    ``guard``: do-no-harm guard (dehazekit.adapt.guard) on a held-out ``guard_holdout`` share of the
    images, checked after the search and every ``guard_every`` fine-tune steps (0 = a quarter of them).
    """

    backbone: str | None = None
    weights: str | None = None
    objective: str = "h2c"
    clip: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    clip_weights: str | None = None
    prompts: Any = None
    top_k: int | None = 3
    gate_threshold: float | None = None
    rank: int = 8
    lora_alpha: float = 16.0
    search_steps: int = 300
    search_patience: int = 0  # stop the search once the top-K set is unchanged this many steps (0 = never)
    finetune_steps: int = 600
    batch_size: int = 4
    size: int = 224
    seed: int = 0
    lr_w: float = 1e-4
    lr_alpha: float = 3e-4
    hypergrad: str = DEFAULT_METHOD
    candidates: str = "auto"
    checkpoint_every: int = 50
    video_frames: int = 64
    preview_count: int = 4
    out: str = "adapt_out"
    resume: bool = False
    guard: bool = True
    guard_holdout: float = 0.2
    guard_every: int = 0

    def __post_init__(self) -> None:
        self.out = str(self.out)
        for name in ("weights", "clip_weights"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        self._check_ints()
        self._check_floats()
        if self.hypergrad not in HYPERGRADS:
            raise ConfigError.build("unknown --hypergrad", got=self.hypergrad, expected=list(HYPERGRADS))
        if self.top_k is None and self.gate_threshold is None:
            raise ConfigError.build("selection needs --top-k or --gate-threshold", fix="e.g. --top-k 3")
        if self.gate_threshold is not None and not 0.0 < float(self.gate_threshold) < 1.0:
            raise ConfigError.build("--gate-threshold must be in (0, 1)", got=self.gate_threshold,
                                    fix="gates are sigmoid values; 0.5 is the initial gate")
        if not isinstance(self.objective, str) or not self.objective.strip():
            raise ConfigError.build("--objective is empty", expected="h2c, dcp or h2c+dcp")
        if not isinstance(self.candidates, str) or not self.candidates:
            raise ConfigError.build("candidates must be a preset name", got=self.candidates,
                                    expected="auto, all or a backbone preset")

    def _check_ints(self) -> None:
        minimum = {"rank": 1, "search_steps": 1, "finetune_steps": 0, "batch_size": 1, "size": 16,
                   "search_patience": 0, "checkpoint_every": 0, "video_frames": 2, "preview_count": 1,
                   "guard_every": 0}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError.build(f"{name} must be an integer >= {low}", got=value)
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ConfigError.build("--top-k must be a positive integer", got=self.top_k)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError.build("--seed must be a non-negative integer", got=self.seed)

    def _check_floats(self) -> None:
        if isinstance(self.guard_holdout, bool) or not 0.0 <= float(self.guard_holdout) < 1.0:
            raise ConfigError.build("guard_holdout must be in [0, 1)", got=self.guard_holdout)
        for name in ("lora_alpha", "lr_w", "lr_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError.build(f"{name} must be > 0", got=value)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(data["prompts"], (list, tuple)):
            data["prompts"] = [list(p) for p in data["prompts"]]
        return data

    def fingerprint(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUME_FREE}

    def objective_options(self) -> dict[str, dict[str, Any]]:
        """Keyword arguments for each objective factory (see dehazekit.objectives.create_objective)."""
        return {"h2c": {"clip": self.clip, "pretrained": self.clip_pretrained, "weights": self.clip_weights,
                        "prompts": self.prompts}}
