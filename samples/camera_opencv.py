"""Live dehazing of an OpenCV capture: a camera index, an rtsp:// URL or a video file.

    python samples/camera_opencv.py --model model.onnx --camera 0 --show
    python samples/camera_opencv.py --model model.onnx --camera rtsp://cam/stream --out clear.mp4 \
        --max-frames 300

OpenCV delivers BGR frames; ``Dehazer(bgr=True)`` takes them as they are, so no copies are made for
channel swaps. Needs ``pip install opencv-python`` (the rest is the runtimes package).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger("camera_opencv")


def _capture_target(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def dehaze_capture(
    model: str, camera: int | str, out: str | None = None, show: bool = False, max_frames: int | None = None
) -> int:
    """Read, dehaze and write/show frames until the capture ends, Esc, or ``max_frames``; returns the
    count."""
    import cv2

    from dehazekit.runtimes import Dehazer
    from dehazekit.runtimes.io_utils import atomic_path

    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        raise SystemExit(f"cannot open capture {camera!r}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames, start = 0, time.perf_counter()
    with Dehazer(model, bgr=True) as dehazer, _maybe_writer(cv2, atomic_path, out, fps) as writer:
        while max_frames is None or frames < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            clear = dehazer(frame)
            writer(clear)
            frames += 1
            if show:
                cv2.imshow("dehazed", clear)
                if cv2.waitKey(1) == 27:  # Esc
                    break
    capture.release()
    log.info("%d frames, %.1f fps", frames, frames / max(time.perf_counter() - start, 1e-9))
    return frames


class _maybe_writer:
    """cv2.VideoWriter on a temporary name, renamed into place only if the loop ends without error."""

    def __init__(self, cv2, atomic_path, out: str | None, fps: float) -> None:
        self.cv2, self.out, self.fps = cv2, out, fps
        self._atomic = atomic_path(out) if out else None
        self._writer = None

    def __enter__(self):
        self._tmp = self._atomic.__enter__() if self._atomic else None
        return self.write

    def write(self, frame) -> None:
        if self._tmp is None:
            return
        if self._writer is None:
            height, width = frame.shape[:2]
            fourcc = self.cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = self.cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (width, height))
        self._writer.write(frame)

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._atomic is not None:
            self._atomic.__exit__(*exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--camera", default="0", help="camera index, rtsp:// URL or video file")
    parser.add_argument("--out", default=None, help="write the dehazed stream to this .mp4")
    parser.add_argument("--show", action="store_true", help="show a window (Esc quits)")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import cv2  # noqa: F401
    except ImportError:
        log.error("this sample needs OpenCV: pip install opencv-python")
        return 2
    dehaze_capture(args.model, _capture_target(args.camera), args.out, args.show, args.max_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
