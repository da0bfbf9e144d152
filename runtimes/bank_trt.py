"""TensorRT side of the adapter bank: a refittable engine of base.onnx, refitted per adapter.

The engine (``BANK_DIR/base.engine`` + ``base.engine.json``) is built with BuilderFlag.REFIT by
``dehazekit bank build --trt``. ``use(name)`` sets every overridable weight (the adapter's value,
else the base's: the previous adapter may have changed blocks this one keeps) through the
TensorRT 10 name-based ``trt.Refitter`` API and refits the engine in place; nothing is rebuilt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dehazekit.runtimes.backends.trt_backend import TensorRTBackend
from dehazekit.runtimes.bank import BASE, Bank
from dehazekit.runtimes.errors import BackendError, ModelFileError

log = logging.getLogger(__name__)

ENGINE = "base.engine"


class TensorRTBankBackend(TensorRTBackend):
    """TensorRTBackend on the bank's refittable engine, with ``use(adapter)``."""

    name = "tensorrt-bank"

    def __init__(
        self, folder: str | Path, device: str = "auto", providers: object = None, adapter: str | None = None
    ) -> None:
        self.bank = Bank(folder)
        super().__init__(self.bank.folder / ENGINE, device=device, providers=providers)
        if not self.engine.refittable:
            raise ModelFileError.build(
                f"{ENGINE} is not refittable",
                got=str(self.bank.folder / ENGINE),
                fix="rebuild it with `dehazekit bank build --trt`",
            )
        self.refitter = self._trt.Refitter(self.engine, self._logger)
        self.adapter: str | None = None
        self.use(adapter or BASE)

    def use(self, name: str) -> None:
        """Refit the engine with adapter ``name`` ("base" = no adapter); a no-op if already current."""
        if name == self.adapter:
            return
        keep = []  # TensorRT reads the host arrays during refit_cuda_engine: they must outlive the loop
        for key, value in self.bank.full_weights(name).items():
            keep.append(self._trt.Weights(np.ascontiguousarray(value)))
            if not self.refitter.set_named_weights(key, keep[-1]):
                raise BackendError.build(
                    "TensorRT refused an adapter weight",
                    got=key,
                    fix=f"rebuild {ENGINE} from this bank's base.onnx",
                )
        missing = list(self.refitter.get_missing_weights())
        if missing:
            raise BackendError.build("TensorRT refit is missing weights", got=missing[:5])
        if not self.refitter.refit_cuda_engine():
            raise BackendError.build("TensorRT refit failed", got=name)
        log.debug("bank engine refitted: %s -> %s", self.adapter, name)
        self.adapter = name

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "backend": self.name,
            "adapter": self.adapter,
            "adapters": self.bank.names,
        }
