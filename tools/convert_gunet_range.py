"""Rescale gUNet weights trained with forward(x) = raw(x) to the current forward raw(2x - 1) * 0.5 + 0.5.

Exact: reflect padding keeps the constant -1 constant, so inconv(2x - 1) with weights W/2 and bias
b + sum(W/2) equals the old inconv(x); doubling outconv undoes the output * 0.5. Used once for the bundled
model, which was trained before commit 042b62e wrapped gUNet in the authors [-1, 1] convention.

    python tools/convert_gunet_range.py OLD_MODEL_DIR NEW_MODEL_DIR
"""
import sys

from safetensors.torch import load_file

from dehazekit.backbones import create_backbone
from dehazekit.models import save_model
from runtimes.meta import ModelMeta

src, out = sys.argv[1], sys.argv[2]
sd = load_file(src + "/model.safetensors")
w, b = sd["inconv.proj.weight"], sd["inconv.proj.bias"]
sd["inconv.proj.weight"] = w / 2
sd["inconv.proj.bias"] = b + (w / 2).sum(dim=(1, 2, 3))
sd["outconv.proj.0.weight"] = sd["outconv.proj.0.weight"] * 2
sd["outconv.proj.0.bias"] = sd["outconv.proj.0.bias"] * 2
m = create_backbone("gunet-t"); m.load_state_dict(sd); m.eval()
meta = ModelMeta.load(src + "/model.json")
extra = dict(meta.extra); extra["converted"] = "trained before commit 042b62e (forward without the [-1,1] wrapper); inconv/outconv rescaled exactly"
save_model(m, out, extra=extra)
