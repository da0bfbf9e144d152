"""Adapter bank: build checks, switching parity with each adapter's own merged model, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.exporters.bank_helpers import make_adapter, make_base

ATOL = 1e-5


@pytest.fixture(scope="module")
def bank_setup(tmp_path_factory):
    """A tiny base, two adapters on different blocks, their bank and each adapter's own merged ONNX."""
    from dehazekit.exporters.bank import build_bank
    from dehazekit.exporters.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("bank")
    base = make_base(root / "base")
    adapters = {
        "night": make_adapter(base, root / "night", (0, 2), seed=1),
        "dense": make_adapter(base, root / "dense", (1, 3), seed=2),
    }
    bank = build_bank(
        [f"{n}={p}" for n, p in adapters.items()],
        root / "bank",
        base=root / "base",
        haze={"night": 0.2, "dense": 0.6},
    )
    own = {
        name: export_onnx(path, root / f"{name}.onnx")
        for name, path in {**adapters, "base": root / "base"}.items()
    }
    return {"root": root, "base": base, "bank": bank, "own": own, "adapters": adapters}


def _batch(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 3, 40, 56), dtype=np.float32)


def test_switching_matches_each_adapters_own_model(bank_setup):
    from dehazekit.runtimes import Dehazer
    from dehazekit.runtimes.backends.onnx_backend import OnnxBackend

    x = _batch()
    with Dehazer(bank_setup["bank"], adapter="night") as dehazer:
        outputs = {}
        for name in ("night", "dense", "base", "night", "dense"):  # back and forth: nothing leaks across
            dehazer.use(name)
            outputs.setdefault(name, []).append(dehazer.backend.infer(x))
    for name, outs in outputs.items():
        with OnnxBackend(bank_setup["own"][name]) as own:
            reference = own.infer(x)
        for out in outs:
            np.testing.assert_allclose(out, reference, atol=ATOL, rtol=0)
    assert np.abs(outputs["night"][0] - outputs["dense"][0]).max() > 100 * ATOL  # the adapters really differ


def test_bank_stores_only_the_adapters_blocks(bank_setup):
    manifest = json.loads((bank_setup["bank"] / "bank.json").read_text())
    for name in ("night", "dense"):
        entry = manifest["adapters"][name]
        assert entry["initializers"], name
        assert all(any(k.startswith(b + ".") for b in entry["blocks"]) for k in entry["initializers"])
    total = sum(p.stat().st_size for p in (bank_setup["bank"] / "adapters").glob("*.npz"))
    assert total < (bank_setup["bank"] / "base.onnx").stat().st_size


def test_adapter_from_another_base_is_refused(bank_setup, tmp_path):
    from dehazekit.exporters.bank import build_bank
    from dehazekit.runtimes.errors import ConfigError

    other = make_base(tmp_path / "other", seed=7)
    stranger = make_adapter(other, tmp_path / "stranger", (0,), seed=3)
    with pytest.raises(ConfigError, match="not adapted from this base"):
        build_bank(
            [str(bank_setup["adapters"]["night"]), str(stranger)],
            tmp_path / "bank",
            base=bank_setup["root"] / "base",
        )
    assert not (tmp_path / "bank").exists()


def test_tampered_adapter_file_is_refused(bank_setup, tmp_path):
    import shutil

    from dehazekit.runtimes.bank import Bank
    from dehazekit.runtimes.errors import ModelFileError

    copy = shutil.copytree(bank_setup["bank"], tmp_path / "bank")
    with np.load(copy / "adapters" / "night.npz") as data:
        arrays = {k: data[k] * 2 for k in data.files}
    np.savez(copy / "adapters" / "night.npz", **arrays)
    with pytest.raises(ModelFileError, match="sha256"):
        Bank(copy)


@pytest.mark.parametrize("where", ["adapter", "parent"])
def test_force_never_replaces_an_input_folder(bank_setup, where):
    """--force deletes the old bank folder: pointing --out at an adapter (or above it) must be refused."""
    from dehazekit.exporters.bank import build_bank
    from dehazekit.runtimes.errors import OutputError

    night = bank_setup["adapters"]["night"]
    out = night if where == "adapter" else night.parent
    before = sorted(p.name for p in night.iterdir())
    with pytest.raises(OutputError, match="would replace an input"):
        build_bank([f"night={night}"], out, base=bank_setup["root"] / "base", force=True)
    assert sorted(p.name for p in night.iterdir()) == before


def test_unknown_adapter_suggests_close_names(bank_setup):
    from dehazekit.runtimes import Dehazer
    from dehazekit.runtimes.errors import UnknownNameError

    with Dehazer(bank_setup["bank"]) as dehazer, pytest.raises(UnknownNameError, match="night"):
        dehazer.use("nigth")


def test_cli_bank_info_and_run_with_route(bank_setup, tmp_path):
    from typer.testing import CliRunner

    from dehazekit.cli.main import app
    from tests.runtimes.media import make_video

    runner = CliRunner()
    info = runner.invoke(app, ["bank", "info", str(bank_setup["bank"])])
    assert info.exit_code == 0 and "dense" in info.output
    video = make_video(tmp_path / "clip.mp4", count=6, width=48, height=32)
    out = tmp_path / "out.mp4"
    run = runner.invoke(
        app,
        [
            "run",
            str(video),
            "--bank",
            str(bank_setup["bank"]),
            "--route",
            "auto",
            "--stabilize",
            "--out",
            str(out),
            "--no-audio",
        ],
    )
    assert run.exit_code == 0, run.output
    assert out.is_file() and "adapter" in run.output
    bad = runner.invoke(app, ["run", str(video), "--adapter", "night", "--out", str(tmp_path / "x.mp4")])
    assert bad.exit_code != 0 and "--adapter needs --bank" in bad.output


@pytest.mark.trt
def test_tensorrt_refit_matches_onnxruntime(bank_setup):
    from dehazekit.exporters.bank import build_bank_engine
    from dehazekit.runtimes.bank import OnnxBankBackend
    from dehazekit.runtimes.bank_trt import TensorRTBankBackend

    build_bank_engine(
        bank_setup["bank"], min_shape=(1, 3, 32, 32), opt_shape=(2, 3, 40, 56), max_shape=(2, 3, 64, 64)
    )
    x = _batch()
    with TensorRTBankBackend(bank_setup["bank"]) as engine, OnnxBankBackend(bank_setup["bank"]) as ort:
        for name in ("night", "dense", "base", "night"):
            engine.use(name)
            ort.use(name)
            np.testing.assert_allclose(engine.infer(x), ort.infer(x), atol=1e-3, rtol=0)


def test_default_base_is_the_bundled_model_adapt_starts_from(tmp_path):
    """An adapter made from `adapt --weights synthetic` banks without --base; `default` refuses it."""
    from dehazekit.catalog import WEIGHTS_DEFAULT, WEIGHTS_SYNTHETIC, bundled_model_dir
    from dehazekit.exporters.bank import build_bank
    from dehazekit.models import load_model
    from dehazekit.runtimes.errors import ConfigError

    if not (bundled_model_dir(WEIGHTS_SYNTHETIC) / "model.safetensors").is_file():
        pytest.skip("no bundled synthetic model in this checkout")
    adapter = make_adapter(load_model(bundled_model_dir(WEIGHTS_SYNTHETIC)), tmp_path / "a", (0,), seed=1)
    bank = build_bank([f"fog={adapter}"], tmp_path / "bank")
    assert json.loads((bank / "bank.json").read_text())["adapters"]["base"]["source"].endswith("synthetic")
    with pytest.raises(ConfigError, match="not adapted from this base"):
        build_bank([f"fog={adapter}"], tmp_path / "bank2", base=WEIGHTS_DEFAULT)
