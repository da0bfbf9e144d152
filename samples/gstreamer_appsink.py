"""GStreamer embedding: frames leave a pipeline at an appsink, are dehazed, and re-enter at an appsrc.

    python samples/gstreamer_appsink.py --model model.onnx --input hazy.mp4 --out clear.mp4
    # a camera instead of a file: --source "v4l2src device=/dev/video0"

Needs GStreamer 1.x with PyGObject (``apt install python3-gi gir1.2-gst-plugins-base-1.0
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly``). The frame hand-over is plain numpy, so the
same loop fits DeepStream or any appsink-based application.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

log = logging.getLogger("gstreamer_appsink")

CAPS = "video/x-raw,format=RGB"


def frame_from_buffer(data: bytes, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 view of an RGB buffer whose rows may be padded (GStreamer aligns strides to 4)."""
    stride = len(data) // height
    if stride < width * 3 or len(data) % height:
        raise ValueError(f"buffer of {len(data)} bytes does not hold {height} rows of {width} RGB pixels")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, stride)
    return rows[:, : width * 3].reshape(height, width, 3)


def build_pipelines(Gst, source: str, out: str, fps: int):
    reader = Gst.parse_launch(
        f"{source} ! decodebin ! videoconvert ! {CAPS} ! "
        "appsink name=sink sync=false max-buffers=4 drop=false"
    )
    writer = Gst.parse_launch(
        f"appsrc name=src is-live=false format=time ! videoconvert ! x264enc ! mp4mux ! "
        f"filesink location={out}"
    )
    return reader, writer


def dehaze_gstreamer(model: str, source: str, out: str, fps: int = 25) -> int:
    """Pull RGB frames from ``source``, dehaze, push to an H.264 mp4; returns the frame count."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    from dehazekit.runtimes import Dehazer

    Gst.init(None)
    reader, writer = build_pipelines(Gst, source, out, fps)
    sink, src = reader.get_by_name("sink"), writer.get_by_name("src")
    reader.set_state(Gst.State.PLAYING)
    frames = 0
    with Dehazer(model) as dehazer:
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:  # end of stream
                break
            structure = sample.get_caps().get_structure(0)
            width, height = structure.get_value("width"), structure.get_value("height")
            if frames == 0:
                src.set_property(
                    "caps", Gst.Caps.from_string(f"{CAPS},width={width},height={height},framerate={fps}/1")
                )
                writer.set_state(Gst.State.PLAYING)
            buffer = sample.get_buffer()
            ok, info = buffer.map(Gst.MapFlags.READ)
            if not ok:
                raise RuntimeError(f"cannot map GStreamer buffer of frame {frames}")
            try:
                clear = dehazer(frame_from_buffer(bytes(info.data), width, height))
            finally:
                buffer.unmap(info)
            out_buffer = Gst.Buffer.new_wrapped(clear.tobytes())
            out_buffer.pts = buffer.pts
            out_buffer.duration = buffer.duration
            src.emit("push-buffer", out_buffer)
            frames += 1
    src.emit("end-of-stream")
    writer.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    writer.set_state(Gst.State.NULL)
    reader.set_state(Gst.State.NULL)
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", help="video file to read (filesrc)")
    parser.add_argument("--source", help="a GStreamer source element instead of --input")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import gi  # noqa: F401
    except ImportError:
        log.error("this sample needs GStreamer's Python bindings (PyGObject): see the module docstring")
        return 2
    source = args.source or f'filesrc location="{args.input}"'
    log.info("dehazed %d frames", dehaze_gstreamer(args.model, source, args.out, args.fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
