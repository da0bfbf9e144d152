"""Parity reports catch real differences, NaNs and shape errors; photos are centre-cropped, never resized."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from dehazekit.exporters.verify import Tolerance, compare, image_inputs, verify
from dehazekit.runtimes.errors import ConfigError, ParityError


def test_compare_statistics():
    ref = np.linspace(0, 1, 3000, dtype=np.float32).reshape(1, 3, 20, 50)
    same = compare("same", ref, ref.copy(), Tolerance.for_precision("fp32"))
    assert same.passed and same.max_abs == 0 and math.isinf(same.psnr_db)
    noisy = ref + np.float32(1 / 255)
    res = compare("noisy", ref, noisy, Tolerance.for_precision("fp16"))
    assert abs(res.psnr_db - 20 * math.log10(255)) < 0.01 and not res.passed
    assert [f.split()[0] for f in res.failures] == ["mean"]  # 1/255 everywhere: mean fails, PSNR 48 dB passes
    bad = ref.copy()
    bad[0, 0, 0, :2] = np.nan
    res = compare("nan", ref, bad, Tolerance.for_precision("fp16"))
    assert res.nonfinite == 2 and not res.passed
    assert not compare("shape", ref, ref[..., :10], Tolerance.for_precision("fp32")).passed


def test_tolerance_validation():
    with pytest.raises(ConfigError):
        Tolerance(max_abs=-1.0)
    with pytest.raises(ConfigError):
        Tolerance.for_precision("int4")


def test_verify_fails_on_a_corrupted_artifact(exports, tmp_path):
    model, good = exports.model("tiny-gunet"), exports.onnx("tiny-gunet")
    proto = onnx.load(str(good))
    weights = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    array = numpy_helper.to_array(weights).copy()
    array *= 1.05  # one layer 5% off: a plausible "wrong artifact"
    weights.CopyFrom(numpy_helper.from_array(array, weights.name))
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    report = verify(model, tmp_path / "bad.onnx", report_path=tmp_path / "bad.json")
    assert not report.passed
    saved = json.loads((tmp_path / "bad.json").read_text())
    assert saved["passed"] is False and all(c["failures"] for c in saved["cases"])
    with pytest.raises(ParityError, match="--force"):
        report.raise_if_failed()


def test_real_photos_are_cropped(shared_data, exports):
    folder = shared_data / "real_hazy" / "fattal_bilalora"
    if not folder.is_dir():
        pytest.skip(f"{folder} missing")
    crops = image_inputs(folder, [(48, 48), (64, 88)])
    assert len(crops) == 4 and {a.shape for a in crops.values()} == {(1, 3, 48, 48), (1, 3, 64, 88)}
    assert all(0 <= a.min() and a.max() <= 1 for a in crops.values())
    own = image_inputs(folder, [], own_size=(512, 16, 16))
    assert len(own) == 2 and all(a.shape[2] <= 512 >= a.shape[3] for a in own.values())
    assert all(a.shape[2] % 16 == a.shape[3] % 16 == 0 and max(a.shape[2:]) > 256 for a in own.values())
    report = verify(exports.model("tiny-gunet"), exports.onnx("tiny-gunet"), images_dir=folder)
    # 2 small random + 1 realistic random + 2 photos x (2 small sizes + own size up to 512 px)
    assert report.passed and len(report.cases) == 9


def test_polygraphy_comparator_verdict_is_our_tolerance(exports):
    """The runs and pairing are Polygraphy's (Comparator.run / compare_accuracy); the verdict is ours."""
    from polygraphy.comparator import Comparator

    from dehazekit.exporters.comparison import ImageCompare, TorchRunner, onnxrt_runner

    model, path = exports.model("tiny-gunet"), exports.onnx("tiny-gunet")
    feeds = [{"hazy": np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)}]
    results = Comparator.run([TorchRunner(model), onnxrt_runner(path.read_bytes())], data_loader=feeds)
    verdicts = {
        limit: bool(
            Comparator.compare_accuracy(
                results,
                compare_func=ImageCompare(lambda r, c, t=Tolerance(max_abs=limit): compare("", r, c, t)),
            )
        )
        for limit in (1e-4, 1e-12)
    }
    assert verdicts == {1e-4: True, 1e-12: False}  # fp32 export within 1e-4, but not bit-exact
