"""Input normalisation specs: how a uint8 image becomes the network input (``data.preprocessing``).

One spec string names the scheme everywhere it is stored (run configs, checkpoints, exported models):

* ``official``: BGR minus the Caffe/VGG means (103.939, 116.779, 123.68), no scaling — the released UMSI network;
* ``imagenet``: RGB / 255, then (x − mean) / std with timm's IMAGENET_DEFAULT_MEAN/STD
  (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) — most timm encoders;
* ``timm``: RGB / 255, mean = std = 0.5 (timm's IMAGENET_INCEPTION_MEAN/STD);
* ``rgb:m,m,m/s,s,s``: RGB / 255 with any mean and std (in [0, 1] units), as an encoder's ``pretrained_cfg`` gives.

``auto`` is a config value, not a spec: the runner replaces it by the encoder's own spec before training
(:func:`umsi.models.encoder.encoder_preprocessing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
NAMED_RGB = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "timm": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
AUTO = "auto"
SPEC_HELP = "official, imagenet, timm, rgb:m,m,m/s,s,s or auto (the encoder's own)"


@dataclass(frozen=True)
class Normalization:
    """``bgr_mean`` set: BGR minus it (no scaling); else RGB / 255, minus ``mean``, divided by ``std``."""

    spec: str
    bgr_mean: tuple[float, float, float] | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@lru_cache(maxsize=64)
def parse_preprocessing(spec: str) -> Normalization:
    """The :class:`Normalization` of a spec (see the module docstring). Raises ``ValueError`` naming
    ``data.preprocessing`` for anything else (``auto`` included: it must be resolved first)."""
    spec = str(spec).strip()
    if spec == "official":
        return Normalization(spec, bgr_mean=CAFFE_BGR_MEAN)
    if spec in NAMED_RGB:
        return Normalization(spec, None, *NAMED_RGB[spec])
    if spec.startswith("rgb:"):
        try:
            mean, std = (tuple(float(v) for v in part.split(",")) for part in spec[4:].split("/"))
        except ValueError:
            mean = std = ()
        if len(mean) == 3 and len(std) == 3 and all(s > 0 for s in std):
            return Normalization(spec, None, mean, std)  # type: ignore[arg-type]
    raise ValueError(f"data.preprocessing={spec!r}: choose one of {SPEC_HELP}")


def format_normalization(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """The spec of an RGB mean/std in [0, 1] units (e.g. timm's ``resolve_data_config``): its name when it has one
    (``imagenet``, ``timm``), else ``rgb:m,m,m/s,s,s``."""
    rounded = (tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std))
    for name, values in NAMED_RGB.items():
        if rounded == values:
            return name
    return f"rgb:{','.join(f'{m:g}' for m in rounded[0])}/{','.join(f'{s:g}' for s in rounded[1])}"
