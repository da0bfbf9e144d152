"""samples/: the shipped hazy images and video exist, decode, and stay small."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dehazekit.data.images import list_images, read_rgb_uint8
from dehazekit.metrics.noref import dark_channel

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def test_sample_images_are_hazy_and_small():
    files = list_images(SAMPLES / "images")
    assert len(files) >= 3
    for path in files:
        img = read_rgb_uint8(path)
        assert max(img.shape[:2]) <= 640
        assert dark_channel(img) > 0.2  # haze lifts the dark channel well above a clear photo's
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024


def test_sample_video_decodes():
    import av

    with av.open(str(SAMPLES / "video" / "hazy_rocket.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
    assert len(frames) >= 30 and frames[0].shape == (240, 320, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the camera pans
