"""README.md's Python API block runs as written, on the sample photos (downscaled)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Python API section has no python code block"
    return match.group(1)


def _real_folder(tmp_path: Path) -> None:
    from PIL import Image

    real = tmp_path / "real"
    real.mkdir()
    for path in sorted((ROOT / "samples" / "images").glob("*.jpg")):
        Image.open(path).convert("RGB").resize((160, 120)).save(real / path.name)
    shutil.copy(min(real.glob("*.jpg")), real / "photo.jpg")


def _run(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    _real_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the point of the test
    return namespace


def test_readme_python_api_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLIP-free default schedule is short enough to run the block exactly as written.
    ns = _run(python_api_block(), tmp_path, monkeypatch)
    assert ns["clear"].shape == ns["frame"].shape and ns["clear"].dtype.name == "uint8"
    assert (tmp_path / "photo_dehazed.jpg").is_file() and (tmp_path / "adapt_out" / "model.onnx").is_file()
    assert ns["result"].backbone == "gunet-t"
