"""dehazekit runtime: torch-free inference on images, folders, videos and camera streams.

Importing this package needs numpy only; onnxruntime, tensorrt, av, Pillow, OpenCV and torch are
imported lazily inside the backends, sources and sinks that use them.

    from dehazekit.runtimes import Dehazer
    dehazer = Dehazer("model.onnx")
    clear = dehazer(hazy_uint8_rgb)
"""

__version__ = "0.1.0"

from dehazekit.runtimes.errors import DehazeKitError
from dehazekit.runtimes.meta import ModelMeta


def __getattr__(name: str):
    # Lazy so `import dehazekit.runtimes` stays numpy-only and fast; these pull nothing heavy either way.
    if name == "Dehazer":
        from dehazekit.runtimes.dehazer import Dehazer

        return Dehazer
    if name == "open_backend":
        from dehazekit.runtimes.backends import open_backend

        return open_backend
    if name in ("Pipeline", "run_pipeline", "RunReport"):
        from dehazekit.runtimes import pipeline

        return getattr(pipeline, name)
    if name in ("open_source", "open_sink"):
        from dehazekit.runtimes import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'dehazekit.runtimes' has no attribute {name!r}")


__all__ = [
    "DehazeKitError",
    "Dehazer",
    "ModelMeta",
    "Pipeline",
    "RunReport",
    "__version__",
    "open_backend",
    "open_sink",
    "open_source",
    "run_pipeline",
]
