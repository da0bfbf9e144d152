"""Fleet dehazing on Ray Data: image folders and videos mapped through a pool of Dehazer actors.

    report = run_ray("archive/", "model.onnx", out="archive_dehazed/", options=RayOptions(workers=8))

Same inputs, output names, atomic writes, skip list and RunReport as the local pipeline; only the
executor differs. Images: one row per file, batches of rows go to actors that each load the model once.
Videos: keyframe-aligned chunks, one per task, encoded by the actors into part files that the driver
remuxes in order with the source's audio. Ray retries the tasks of a lost worker (its actors restart);
since every write is atomic and names are fixed, a retried task rewrites the same outputs.

Ray is imported lazily: without it, asking for this engine raises the install fix.
"""

from __future__ import annotations

import functools
import glob as globlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import (
    BackendError,
    ConfigError,
    DehazeKitError,
    InputError,
    missing_dependency,
)
from dehazekit.runtimes.frames import Skipped
from dehazekit.runtimes.images import ImageFilesSource
from dehazekit.runtimes.media import is_image, is_video
from dehazekit.runtimes.pipeline import RunReport
from dehazekit.runtimes.video import VideoSource
from dehazekit.runtimes.video_chunks import CHUNK_FRAMES, join_chunks, plan_chunks

log = logging.getLogger(__name__)

IMAGES_PER_TASK = 16  # rows per actor call: a lost worker redoes at most this many images
# Parts go through NUT, which stores any time base exactly (MP4 parts would round a part's start to its
# edit list's millisecond timescale and shift every frame of the part by up to a millisecond).
PART_SUFFIX = ".nut"


@dataclass
class RayOptions:
    """Where and how wide to run. ``address``: None starts a local cluster, "auto" joins the running one,
    "ray://host:10001" a remote one. ``gpus_per_worker`` may be fractional (4 actors per GPU: 0.25)."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    chunk_frames: int = CHUNK_FRAMES
    images_per_task: int = IMAGES_PER_TASK
    init_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # passed to ray.init when this module starts Ray

    def __post_init__(self) -> None:
        for name in ("workers", "chunk_frames", "images_per_task"):
            if int(getattr(self, name)) < 1:
                raise ConfigError.build(f"--{name.replace('_', '-')} must be >= 1", got=getattr(self, name))
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 0:
            raise ConfigError.build(
                "resources per worker must be >= 0", got=(self.cpus_per_worker, self.gpus_per_worker)
            )


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise missing_dependency("ray[data]", "ray", "--engine ray") from exc
    return ray


def run_ray(
    source: str | Path,
    model: str | Path,
    out: str | Path | None = None,
    *,
    options: RayOptions | None = None,
    dehazer: dict[str, Any] | None = None,
    side_by_side: bool = False,
    copy_audio: bool = True,
    preset: str | None = None,
    on_progress: Callable[[RunReport], None] | None = None,
    factory: Callable[[], Any] | None = None,
    check_outputs: Callable[[Any, Any], Any] | None = None,
) -> RunReport:
    """Dehaze an image/folder/glob or a video (or a folder/glob of videos) on a Ray cluster.

    ``dehazer``: Dehazer keyword options (device, batch, tile, overlap, bgr, ...). ``factory``: builds each
    actor's Dehazer instead (picklable; for custom backends). ``check_outputs(source, sink)``: the output
    safety checks run before any work (default: refuse outputs that are inputs); the CLI passes its own.
    """
    ray = import_ray()
    options = options or RayOptions()
    dehazer = dict(dehazer or {})
    from dehazekit.runtimes.dehazer import Dehazer

    factory = factory or functools.partial(Dehazer, str(model), **dehazer)
    started = not ray.is_initialized()
    if started:
        ray.init(address=options.address, include_dashboard=False, **options.init_kwargs)
    _quiet_progress()
    start = time.perf_counter()
    try:
        videos = _video_inputs(str(source))
        job = _VideoJob if videos else _ImageJob
        report = job(
            source,
            out,
            options,
            factory,
            dehazer.get("bgr", False),
            side_by_side,
            copy_audio,
            preset,
            on_progress,
            check_outputs or _refuse_inputs_as_outputs,
        ).run(videos)
    except Exception as exc:
        raise _user_error(exc) from exc
    finally:
        if started:
            ray.shutdown()
    report.seconds = time.perf_counter() - start
    return report


def _quiet_progress() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar from the rows coming back
    context.execution_options.preserve_order = True


def _video_inputs(spec: str) -> list[Path]:
    """Video files named by ``spec`` (a video, or a folder/glob holding videos and no images)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path] if is_video(path) else []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif globlib.has_magic(spec):
        files = sorted(Path(p) for p in globlib.glob(spec, recursive=True))
    else:
        return []
    if any(is_image(p) for p in files):
        return []
    return [p for p in files if is_video(p)]


def _user_error(exc: BaseException) -> BaseException:
    """The DehazeKitError behind a Ray task failure (Ray wraps them), else a BackendError naming it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DehazeKitError):
            return seen
        cause = getattr(seen, "cause", None)  # RayTaskError keeps the worker's exception here
        seen = cause if isinstance(cause, BaseException) else (seen.__cause__ or seen.__context__)
    return BackendError.build(
        "the Ray job failed",
        got=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
        fix="see the Ray worker logs (/tmp/ray/session_latest/logs)",
    )


class _Job:
    def __init__(
        self,
        source: str | Path,
        out: str | Path | None,
        options: RayOptions,
        factory: Callable,
        bgr: bool,
        side_by_side: bool,
        copy_audio: bool,
        preset: str | None,
        on_progress: Callable[[RunReport], None] | None,
        check_outputs: Callable[[Any, Any], Any],
    ) -> None:
        self.source, self.out, self.options, self.factory = source, out, options, factory
        self.bgr, self.side_by_side, self.copy_audio, self.preset = bgr, side_by_side, copy_audio, preset
        self.on_progress, self.check_outputs = on_progress, check_outputs
        self.report = RunReport()

    def _map(self, rows: list[dict[str, Any]], worker: type, kwargs: dict[str, Any], batch: int):
        import ray.data

        o = self.options
        dataset = ray.data.from_items(rows)
        return dataset.map_batches(
            worker,
            fn_constructor_kwargs={"factory": self.factory, **kwargs},
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=o.workers),
            num_cpus=o.cpus_per_worker,
            num_gpus=o.gpus_per_worker or None,
        )

    def _progress(self, backend: str) -> None:
        if not self.report.backend:
            self.report.backend = json.loads(backend)
        if self.on_progress is not None:
            self.on_progress(self.report)


class _ImageJob(_Job):
    def run(self, videos: list[Path]) -> RunReport:
        from dehazekit.runtimes.remote_files import is_remote
        from dehazekit.runtimes.sources import SideBySideSink, default_output, open_sink, open_source

        if is_remote(str(self.source)):
            src, target, sink, remote = self._remote()
        else:
            src = open_source(str(self.source), bgr=self.bgr)
            if not isinstance(src, ImageFilesSource):
                raise ConfigError.build(
                    "--engine ray reads image and video files",
                    got=src.info.kind,
                    fix="run cameras and live streams with the local engine",
                )
            target = Path(self.out) if self.out is not None else default_output(src)
            sink, remote = open_sink(target, src, bgr=self.bgr), None
        if self.side_by_side:
            sink = SideBySideSink(sink)
        if remote is None:
            self.check_outputs(src, sink)  # before any work; may drop earlier outputs from the listing
        rows = [
            {"index": i, "path": str(p), "name": name}
            for i, (p, name) in enumerate(zip(src.files, src.names()))
        ]
        kwargs = {"sink": sink, "bgr": self.bgr, "remote": remote}
        results = self._map(rows, _worker("ImageWorker"), kwargs, self.options.images_per_task)
        for row in results.iter_rows():
            if row["ok"]:
                self.report.frames += 1
            else:
                self.report.skipped.append(Skipped(str(row["item"]), str(row["reason"])))
            self._progress(row["backend"])
        _sweep_partials(target)
        if self.report.frames == 0:
            reasons = [f"{s.item}: {s.reason}" for s in self.report.skipped[:5]]
            raise InputError.build(
                "no frames could be read from the input",
                got=src.info.description,
                expected=">= 1 decodable frame",
                fix="; ".join(reasons) or None,
            )
        self.report.output = str(target)
        return self.report

    def _remote(self) -> tuple[Any, Path, Any, str]:
        """Images under a filesystem URI (s3://, gs://, ...): listed here, read by the actors."""
        from dehazekit.runtimes.images import FolderSink, ImageFileSink
        from dehazekit.runtimes.remote_files import list_remote_images

        if self.out is None:
            raise ConfigError.build(
                "an input URI needs an output path",
                got=str(self.source),
                fix="pass --out DIR (a folder every node can write)",
            )
        src, target = list_remote_images(str(self.source)), Path(self.out)
        single = len(src.files) == 1 and is_image(target)
        return (
            src,
            target,
            ImageFileSink(target, self.bgr) if single else FolderSink(target, self.bgr),
            src.uri,
        )


@dataclass
class _VideoPlan:
    video: Path
    target: Path
    info: Any
    parts: Path
    chunks: list


class _VideoJob(_Job):
    """Chunks of every video go into ONE dataset, so a fleet of clips keeps all workers busy; each video is
    joined once its chunks are back."""

    def run(self, videos: list[Path]) -> RunReport:
        single = len(videos) == 1 and Path(self.source).expanduser().is_file()
        plans = [self._plan(v, t) for v, t in zip(videos, self._targets(videos, single))]
        try:
            done: dict[int, dict[int, dict]] = {i: {} for i in range(len(plans))}
            kwargs = {"bgr": self.bgr, "side_by_side": self.side_by_side, "preset": self.preset}
            rows = [row for i, plan in enumerate(plans) for row in _chunk_rows(i, plan)]
            for row in self._map(rows, _worker("ChunkWorker"), kwargs, 1).iter_rows():
                video, chunk = int(row["video"]), int(row["chunk"])
                done[video][chunk] = row
                self.report.frames += int(row["frames"])
                if row["reason"]:
                    self.report.skipped.append(
                        Skipped(f"{plans[video].video}#chunk{chunk}", str(row["reason"]))
                    )
                self._progress(row["backend"])
            for i, plan in enumerate(plans):
                parts = [
                    Path(str(done[i][c]["part"])) for c in sorted(done[i]) if int(done[i][c]["frames"]) > 0
                ]
                audio = plan.video if self.copy_audio and plan.info.has_audio else None
                join_chunks(parts, plan.target, audio_from=audio, time_base=plan.info.time_base)
        finally:
            for plan in plans:
                shutil.rmtree(plan.parts, ignore_errors=True)
        self.report.output = str(plans[0].target if single else plans[0].target.parent)
        return self.report

    def _targets(self, videos: list[Path], single: bool) -> list[Path]:
        if single:
            video = videos[0]
            return [Path(self.out) if self.out else video.with_name(f"{video.stem}_dehazed{video.suffix}")]
        root = _root_of(str(self.source))
        folder = Path(self.out) if self.out else Path(f"{root}_dehazed" if root.name else "dehazed")
        return [folder / v.relative_to(root) for v in videos]

    def _plan(self, video: Path, target: Path) -> _VideoPlan:
        from dehazekit.runtimes.sources import open_sink

        if not is_video(target):
            raise ConfigError.build(
                "a video output needs a video suffix", got=str(target), expected="e.g. --out clip_dehazed.mp4"
            )
        src = VideoSource(video, self.bgr)  # probes rate, time base and audio like the local path
        src.close()
        self.check_outputs(src, open_sink(target, src))  # the sink is only described, never opened
        parts = target.with_name(f".{target.stem}.ray-parts")
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        return _VideoPlan(video, target, src.info, parts, plan_chunks(video, self.options.chunk_frames))


def _chunk_rows(video: int, plan: _VideoPlan) -> list[dict[str, Any]]:
    info = plan.info
    return [
        {
            "video": video,
            "chunk": c.index,
            "path": str(plan.video),
            "part": str(plan.parts / f"part_{c.index:06d}{PART_SUFFIX}"),
            "start_pts": c.start_pts,
            "end_pts": -1 if c.end_pts is None else c.end_pts,
            "first_index": c.first_index,
            "frames": c.frames,
            "fps": str(info.fps),
            "time_base": str(info.time_base),
        }
        for c in plan.chunks
    ]


def _worker(name: str) -> type:
    from dehazekit.runtimes import ray_workers

    return getattr(ray_workers, name)


def _root_of(spec: str) -> Path:
    from dehazekit.runtimes.media import glob_root

    path = Path(spec).expanduser()
    return path if path.is_dir() else glob_root(spec)


def _sweep_partials(target: Path) -> None:
    """Delete temporaries a killed worker left mid-write, only where the finished output now exists (the
    owner pid in a temporary's name means nothing on the driver when the worker ran on another node)."""
    from dehazekit.runtimes.io_utils import TEMP_MARK, is_temp_name

    folder = target if target.is_dir() else target.parent
    if not folder.is_dir():
        return
    for tmp in folder.rglob(".*"):
        if not (tmp.is_file() and is_temp_name(tmp.name)):
            continue
        final = tmp.parent / f"{tmp.name[1 : tmp.name.rindex(TEMP_MARK)]}{tmp.suffix}"
        if final.is_file():
            log.info("removing a partial write left by a lost worker: %s", tmp)
            tmp.unlink()


def _refuse_inputs_as_outputs(src: Any, sink: Any) -> None:
    """The default output check (the CLI passes its fuller one): no output may be an input."""
    from dehazekit.runtimes.media import refuse_overwriting_inputs

    inner = getattr(sink, "inner", sink)
    files = list(getattr(src, "files", [])) or [src.info.path]
    if hasattr(inner, "path_for"):
        outputs = [inner.path_for(name) for name in src.names()]
    else:
        outputs = [inner.path]
    refuse_overwriting_inputs(outputs, files)
