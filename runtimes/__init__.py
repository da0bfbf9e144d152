"""dehazekit runtime: torch-free inference on images, folders, videos and camera streams.

Importing this package needs numpy only; onnxruntime, tensorrt, av and torch are imported lazily
inside the backends and sources that use them.
"""
__version__ = "0.1.0"

from runtimes.errors import DehazeKitError  # noqa: E402
from runtimes.meta import ModelMeta  # noqa: E402

__all__ = ["DehazeKitError", "ModelMeta", "__version__"]
