"""DeepStream: draw nvinfer's dehazed output tensor into each frame (pad probe after nvinfer -> RGBA).

Needs DeepStream's Python bindings (pyds) and an NVIDIA GPU, so it is not run in CI. Attach it to the
src pad of the nvvideoconvert that follows nvinfer in samples/deepstream/pipeline.txt (RGBA, unified
memory on dGPU: nvvideoconvert nvbuf-memory-type=3):

    convert.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, dehaze_probe, None)
"""

from __future__ import annotations

import ctypes

import numpy as np

try:
    import pyds
    from gi.repository import Gst
except ImportError as exc:  # pragma: no cover - only on a DeepStream machine
    raise SystemExit("this sample needs DeepStream's pyds and PyGObject (Gst)") from exc


def _tensor(frame_meta) -> np.ndarray | None:
    """The model output attached by nvinfer (output-tensor-meta=1): (3, H, W) float32 in [0, 1]."""
    item = frame_meta.frame_user_meta_list
    while item is not None:
        user_meta = pyds.NvDsUserMeta.cast(item.data)
        if user_meta.base_meta.meta_type == pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META:
            meta = pyds.NvDsInferTensorMeta.cast(user_meta.user_meta_data)
            layer = pyds.get_nvds_LayerInfo(meta, 0)
            dims = [layer.inferDims.d[i] for i in range(layer.inferDims.numDims)]
            pointer = ctypes.cast(pyds.get_ptr(layer.buffer), ctypes.POINTER(ctypes.c_float))
            return np.ctypeslib.as_array(pointer, shape=tuple(dims)).copy()
        item = item.next
    return None


def dehaze_probe(pad, info, _data):
    """Replace each RGBA frame's colour planes with the dehazed tensor (same size as infer-dims)."""
    buffer = info.get_buffer()
    batch = pyds.gst_buffer_get_nvds_batch_meta(hash(buffer))
    item = batch.frame_meta_list
    while item is not None:
        frame_meta = pyds.NvDsFrameMeta.cast(item.data)
        clear = _tensor(frame_meta)
        if clear is not None:
            surface = pyds.get_nvds_buf_surface(hash(buffer), frame_meta.batch_id)  # (H, W, 4) uint8 view
            rgb = (np.clip(clear, 0.0, 1.0).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)
            height, width = min(rgb.shape[0], surface.shape[0]), min(rgb.shape[1], surface.shape[1])
            surface[:height, :width, :3] = rgb[:height, :width]
        item = item.next
    return Gst.PadProbeReturn.OK
