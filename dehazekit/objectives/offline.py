"""``offline``: the recommended CLIP-free objective, chosen on benchmarks/adapt_gt.py (README says why).

Today it is ``rehaze`` (re-haze self-training) with the base model's output as its label
(``teacher="base"``, ``--rehaze-teacher``) and the CLIP-free schedule of dehazekit.adapt.config
(16 + 48 steps). On the 16 benchmark tasks it gains far more than the self-labelled first version and
lifts real-haze luma towards GT (benchmarks/README.md, "A fixed label"); the self label stays one
flag away (``--rehaze-teacher self``), as do the brightness terms that did not help
(``offline+3*airjoint``; benchmarks/README.md, "Brightness").
"""

from __future__ import annotations

from torch import nn

from dehazekit.objectives.base import register_objective
from dehazekit.objectives.rehaze import make_rehaze


@register_objective("offline", options={"teacher": "rehaze_teacher"})
def make_offline(teacher: str = "base") -> nn.Module:
    return make_rehaze(teacher=teacher)
