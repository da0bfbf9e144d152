"""Parity runs through Polygraphy's Comparator: PyTorch, ONNX Runtime and TensorRT runners on the same inputs.

Polygraphy runs the runners and pairs their outputs; dehazekit judges each pair with its own image-aware
statistics (``dehazekit.exporters.verify.compare``) passed to ``Comparator.compare_accuracy`` as the
compare function, so the Comparator's pass/fail is exactly our tolerance.

Polygraphy's own ``PytRunner`` is not used (as of 0.53): it moves every input to CUDA and zips the
returned tensor as if it were a tuple of outputs, so it cannot run a single-output network on a CPU-only
machine. ``TorchRunner`` below is a small runner on Polygraphy's ``BaseRunner`` contract, on the CPU.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata

from dehazekit.runtimes.errors import ExportError, missing_dependency

INPUT_NAME, OUTPUT_NAME = "hazy", "clear"
DYNAMIC_NCHW = (None, 3, None, None)


class TorchRunner(BaseRunner):
    """A ``torch.nn.Module`` on the CPU: ``{"hazy": (B,3,H,W) float32}`` -> ``{"clear": (B,3,H,W)}``."""

    def __init__(self, model: Any, name: str = "pytorch-cpu") -> None:
        super().__init__(name=name, prefix="pytorch-cpu")
        self._model = model

    def activate_impl(self) -> None:
        self.model = self._model.eval()

    def get_input_metadata_impl(self) -> TensorMetadata:
        return TensorMetadata().add(INPUT_NAME, dtype=np.float32, shape=DYNAMIC_NCHW)

    def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(feed_dict[INPUT_NAME]))
        start = time.perf_counter()
        with torch.no_grad():
            y = self.model(x)
        self.inference_time = time.perf_counter() - start
        return OrderedDict([(OUTPUT_NAME, y.detach().cpu().numpy())])

    def deactivate_impl(self) -> None:
        del self.model


def onnxrt_runner(model_bytes: bytes, threads: int | None = None, name: str = "onnxruntime-cpu") -> Any:
    """Polygraphy's ONNX Runtime runner on the CPU provider, built from the in-memory ONNX bytes."""
    from polygraphy.backend.onnxrt import OnnxrtRunner

    def session() -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # CPU "optimized model" chatter is noise in a report
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    return OnnxrtRunner(session, name=name)


def trt_runner(engine_bytes: bytes, name: str = "tensorrt") -> Any:
    """Polygraphy's TensorRT runner on a serialised engine (needs tensorrt and a GPU)."""
    try:
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
    except ImportError as exc:  # polygraphy imports tensorrt lazily; this only fails on a broken install
        raise missing_dependency("polygraphy", "trt", "checking TensorRT engines") from exc
    return TrtRunner(EngineFromBytes(engine_bytes), name=name)


class ImageCompare:
    """Polygraphy compare function: judges each output pair with dehazekit's image-aware statistics."""

    def __init__(self, judge: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        self.judge = judge  # (reference, candidate) -> object whose truth value is "passed"

    def __call__(self, reference: Any, candidate: Any) -> OrderedDict[str, Any]:
        return OrderedDict(
            (name, self.judge(np.asarray(reference[name]), np.asarray(candidate[name])))
            for name in reference
            if name in candidate
        )


def run_comparison(
    runners: Sequence[Any],
    feeds: Sequence[np.ndarray],
    judge: Callable[[np.ndarray, np.ndarray], Any],
    on_feed: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run ``runners`` on each (B,3,H,W) feed; the judged result of runners[0] vs runners[1] per feed.

    ``on_feed(index)`` is called as each feed is produced (the Comparator caches the feeds after the first
    runner, so this is progress through the reference run); Polygraphy's own log stays quiet.
    """
    from polygraphy.comparator import Comparator
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    loader = _Feeds(feeds, on_feed)
    try:
        with G_LOGGER.verbosity(G_LOGGER.CRITICAL + 1):
            results = Comparator.run(list(runners), data_loader=loader)
            accuracy = Comparator.compare_accuracy(results, compare_func=ImageCompare(judge))
    except PolygraphyException as exc:
        raise ExportError.build(
            "parity run failed", got=str(exc).strip().splitlines()[-1][:300], fix="report the error"
        ) from exc
    pair = next(iter(accuracy[0]))
    return [match[OUTPUT_NAME] for match in accuracy[0][pair]]


class _Feeds:
    """A re-iterable data loader that reports progress as it produces each feed."""

    def __init__(self, feeds: Sequence[np.ndarray], on_feed: Callable[[int], None] | None) -> None:
        self.feeds, self.on_feed = feeds, on_feed

    def __iter__(self) -> Any:
        for index, x in enumerate(self.feeds):
            if self.on_feed is not None:
                self.on_feed(index)
            yield {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
