"""One exception hierarchy for dehazekit, rooted in DehazeKitError.

Messages follow "what | got | expected | fix" so a user can act without reading code. Use
``DehazeKitError.build`` to keep that shape consistent.
"""

from __future__ import annotations


class DehazeKitError(Exception):
    """Base of every error dehazekit raises on purpose."""

    @classmethod
    def build(cls, what: str, *, got: object = None, expected: object = None, fix: str | None = None):
        parts = [what]
        if got is not None:
            parts.append(f"got {got}")
        if expected is not None:
            parts.append(f"expected {expected}")
        if fix:
            parts.append(f"fix: {fix}")
        return cls(" | ".join(parts))


class ConfigError(DehazeKitError, ValueError):
    """A configuration value or CLI argument is invalid."""


class InputError(DehazeKitError, ValueError):
    """Input data (images, frames, folders, arrays) is missing, empty or malformed."""


class ModelFileError(DehazeKitError):
    """A model/checkpoint/adapter file is missing, unreadable or of the wrong kind."""


class CheckpointMismatchError(ModelFileError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""


class UnknownNameError(DehazeKitError, KeyError):
    """A registry lookup (backbone, objective, backend) failed; message suggests close names."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(DehazeKitError, ImportError):
    """An optional dependency is not installed; message names the extra to install."""


class NumericalError(DehazeKitError):
    """Non-finite weights or outputs (e.g. refused safe merge)."""


class ExportError(DehazeKitError):
    """Export to ONNX/TensorRT failed or the combination of options is unsupported."""


class ParityError(ExportError):
    """An exported artifact does not reproduce its reference within tolerance."""


class BackendError(DehazeKitError):
    """A runtime backend could not be opened or failed during inference."""


class VideoError(InputError):
    """A video source or sink could not be decoded/encoded."""


class OfflineError(DehazeKitError):
    """Weights that must be downloaded are not cached and the network is unreachable."""


def missing_dependency(package: str, extra: str | None, purpose: str) -> MissingDependencyError:
    """Build the error for an absent optional package, naming the pip command that fixes it."""
    fix = f"pip install 'dehazekit[{extra}]'" if extra else f"pip install {package}"
    return MissingDependencyError.build(
        f"{purpose} needs the {package} package", got="not installed", fix=fix
    )


class OutputError(DehazeKitError):
    """An output cannot be written (read-only, no space, permission) or would overwrite an input."""
