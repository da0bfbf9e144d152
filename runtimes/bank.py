"""Adapter bank at run time: one base network, scene adapters switched between frames.

    from dehazekit.runtimes import Dehazer
    with Dehazer("bank/", adapter="dense") as dehazer:
        clear = dehazer(frame)
        dehazer.use("light")            # the next frame runs with the light-haze adapter

ONNX Runtime: one InferenceSession on ``base.onnx``. The bank builder listed every initializer an
adapter touches as a graph input as well, so onnxruntime treats them as *overridable*: a run
that feeds them uses the fed values, a run that does not uses the base values. Switching is
therefore a dict swap (no session, no reload), and N adapters cost the base plus their K blocks.

TensorRT: ``TensorRTBankBackend`` refits a refittable engine (built from base.onnx with
BuilderFlag.REFIT by ``dehazekit bank build --trt``) with the adapter's weights via
``trt.Refitter.set_named_weights``; switching costs one refit, still no rebuild.
numpy + onnxruntime/tensorrt only (no torch).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dehazekit.runtimes.backends.onnx_backend import OnnxBackend, _import_ort
from dehazekit.runtimes.errors import ModelFileError, UnknownNameError

log = logging.getLogger(__name__)

MANIFEST = "bank.json"
BANK_FORMAT = "dehazekit-bank/1"
BASE = "base"


def adapter_file(name: str) -> str:
    return f"adapters/{name}.npz"


def is_bank(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


class Bank:
    """The manifest and the adapter arrays of a bank folder (all adapters loaded: they are small)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        file = self.folder / MANIFEST
        if not file.is_file():
            raise ModelFileError.build(
                "not an adapter bank",
                got=str(self.folder),
                expected=f"{MANIFEST} inside",
                fix="build one with `dehazekit bank build ADAPTER_DIR... --out DIR`",
            )
        try:
            self.manifest = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelFileError.build("bank.json is not valid JSON", got=f"{file}: {exc}") from exc
        if self.manifest.get("format") != BANK_FORMAT:
            raise ModelFileError.build(
                "unsupported bank format",
                got=self.manifest.get("format"),
                expected=BANK_FORMAT,
                fix="rebuild the bank with this dehazekit",
            )
        self.weights = {name: self._load(name, entry) for name, entry in self.manifest["adapters"].items()}

    def _load(self, name: str, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        path = self.folder / entry["file"]
        if not path.is_file():
            raise ModelFileError.build(f"adapter {name} is missing from the bank", got=str(path))
        blob = path.read_bytes()
        if entry.get("sha256") and hashlib.sha256(blob).hexdigest() != entry["sha256"]:
            raise ModelFileError.build(
                f"adapter {name} does not match bank.json's sha256",
                got=str(path),
                fix="the bank was modified; rebuild it",
            )
        with np.load(path, allow_pickle=False) as data:
            return {key: np.ascontiguousarray(data[key]) for key in data.files}

    @property
    def base_onnx(self) -> Path:
        return self.folder / self.manifest["base_onnx"]

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    def check(self, name: str) -> str:
        if name not in self.weights:
            import difflib

            close = difflib.get_close_matches(name, self.names, n=3)
            raise UnknownNameError.build(
                "no such adapter in the bank",
                got=name,
                expected=self.names,
                fix=f"did you mean {', '.join(close)}?" if close else None,
            )
        return name

    def signatures(self) -> dict[str, float]:
        """adapter -> haze signature, for every adapter that has one (the base has none)."""
        return {
            n: float(e["haze"]) for n, e in self.manifest["adapters"].items() if e.get("haze") is not None
        }

    def full_weights(self, name: str) -> dict[str, np.ndarray]:
        """Values of every overridable initializer for ``name`` (base values where it changes nothing)."""
        return {**self.weights[BASE], **self.weights[self.check(name)]}


def open_bank(
    folder: str | Path,
    device: str = "auto",
    providers: Sequence[str] | None = None,
    adapter: str | None = None,
    **kwargs: Any,
) -> Any:
    """Backend factory for bank folders (registered for directories holding bank.json)."""
    if device == "trt" and (Path(folder) / "base.engine").is_file():
        from dehazekit.runtimes.bank_trt import TensorRTBankBackend

        return TensorRTBankBackend(folder, adapter=adapter)
    return OnnxBankBackend(folder, device=device, providers=providers, adapter=adapter, **kwargs)


class OnnxBankBackend(OnnxBackend):
    """OnnxBackend on base.onnx whose runs feed the current adapter's weights."""

    name = "onnxruntime-bank"

    def __init__(
        self,
        folder: str | Path,
        device: str = "auto",
        providers: Sequence[str] | None = None,
        adapter: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.bank = Bank(folder)
        ort = _import_ort()
        # onnxruntime warns once per overridable initializer that it will not constant-fold it: that is
        # the point of the bank, so the warning is silenced while the session is built (2 = its default).
        ort.set_default_logger_severity(3)
        try:
            # No CUDA I/O binding: its launch path feeds only the image, not the adapter weights.
            super().__init__(
                self.bank.base_onnx, device=device, providers=providers, threads=threads, io_binding=False
            )
        finally:
            ort.set_default_logger_severity(2)
        overridable = {i.name for i in self.session.get_overridable_initializers()}
        missing = sorted(set(self.bank.manifest["overridable"]) - overridable)
        if missing:
            raise ModelFileError.build(
                "base.onnx does not expose the adapters' weights as overridable",
                got=missing[:5],
                fix="rebuild the bank with `dehazekit bank build`",
            )
        self.adapter = BASE
        self._feeds: dict[str, np.ndarray] = {}
        self.use(adapter or BASE)

    def use(self, name: str) -> None:
        """Run the next frames with adapter ``name`` ("base" = no adapter). Costs a dict swap."""
        self._feeds = self.bank.weights[self.bank.check(name)] if name != BASE else {}
        if name != self.adapter:
            log.debug("bank: adapter %s -> %s", self.adapter, name)
        self.adapter = name

    def extra_feeds(self) -> dict[str, np.ndarray]:
        return self._feeds

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "backend": self.name,
            "adapter": self.adapter,
            "adapters": self.bank.names,
        }
