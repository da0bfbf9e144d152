"""The tensor-only unpickler: whole pickled modules load without importing their code; hostile pickles do
nothing."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import uuid
import zipfile

import pytest
import torch

from dehazekit.backbones import read_state_dict
from dehazekit.backbones.weights import load_tensors_only
from dehazekit.runtimes.errors import ModelFileError

_THROWAWAY = textwrap.dedent("""
    import torch
    from torch import nn

    class Throwaway(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.register_buffer("scratch", torch.ones(2), persistent=False)
            self.head = nn.Sequential(nn.PReLU(), nn.Linear(4, 2).half())
            self.tied = self.head[1]  # the same module twice: state_dict lists it under both names

        def __setstate__(self, state):
            raise RuntimeError("the checkpoint's own class code ran")
""")


@pytest.fixture()
def whole_module_checkpoint(tmp_path):
    """torch.save(whole module) of a class from a temp module that is gone before loading."""
    name = f"dk_throwaway_{uuid.uuid4().hex[:8]}"
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    (src_dir / f"{name}.py").write_text(_THROWAWAY)
    sys.path.insert(0, str(src_dir))
    try:
        module = __import__(name)
        model = module.Throwaway()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        expected = {k: v.clone() for k, v in model.state_dict().items()}
        torch.save(model, tmp_path / "whole.pth")
        # torch < 1.6 wrote the legacy (non-zip) format; checkpoints from 2020 (MSBDN's) may use it.
        torch.save(model, tmp_path / "whole_legacy.pth", _use_new_zipfile_serialization=False)
    finally:
        sys.path.remove(str(src_dir))
        sys.modules.pop(name, None)
    for file in src_dir.rglob("*"):
        if file.is_file():
            file.unlink()
    return {
        False: (name, tmp_path / "whole.pth", expected),
        True: (name, tmp_path / "whole_legacy.pth", expected),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_whole_module_state_dict_without_importing_it(whole_module_checkpoint, legacy):
    name, path, expected = whole_module_checkpoint[legacy]
    with pytest.raises(ModuleNotFoundError):  # a normal unpickle would need the class's module
        torch.load(path, weights_only=False)
    got = read_state_dict(path)
    assert name not in sys.modules
    assert list(got) == list(expected)  # nn.Module order, non-persistent buffer left out
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_malicious_reduce_never_runs(tmp_path, with_weights, legacy):
    marker = tmp_path / "pwned"
    payload = {"hook": _Evil(marker)}
    if with_weights:
        payload["state_dict"] = {"w": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "evil.pth"
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    if with_weights:
        got = read_state_dict(path)
        assert list(got) == ["w"] and torch.equal(got["w"], torch.arange(6.0).reshape(2, 3))
    else:
        with pytest.raises(ModelFileError, match="no tensors"):
            read_state_dict(path)
    assert not marker.exists()


def test_module_wrapped_in_dict_and_data_parallel_prefix(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.PReLU())
    wrapper = torch.nn.DataParallel(model)  # pickles the model under a 'module' child
    path = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "model": wrapper}, path)
    got = load_tensors_only(path)
    assert list(got) == list(model.state_dict())


def test_legacy_shared_storage_and_dtypes(tmp_path):
    base = torch.arange(12, dtype=torch.float64)
    payload = {
        "state_dict": {
            "a": base[:6].view(2, 3),
            "b": base[6:],
            "c": torch.tensor([True, False]),
            "d": torch.arange(4, dtype=torch.int64),
        },
        "extra": _Evil(tmp_path / "x"),
    }
    path = tmp_path / "legacy_dict.pth"
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    got = load_tensors_only(path)
    for key, value in payload["state_dict"].items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
    assert got["a"].untyped_storage().data_ptr() == got["b"].untyped_storage().data_ptr()


def test_unreadable_files_raise_model_file_error(tmp_path):
    not_torch = tmp_path / "plain.pkl"
    not_torch.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="not a torch checkpoint"):
        load_tensors_only(not_torch)
    truncated = tmp_path / "truncated.pth"
    torch.save({"w": torch.ones(100)}, truncated, _use_new_zipfile_serialization=False)
    truncated.write_bytes(truncated.read_bytes()[:-40])
    with pytest.raises(ModelFileError, match="truncated"):
        load_tensors_only(truncated)
    broken = tmp_path / "broken.pth"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02garbage")
    with pytest.raises(ModelFileError):
        load_tensors_only(broken)
