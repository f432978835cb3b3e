"""Encoders: timm Xception backbones returning one feature map at output stride 8 or 16.

The default is timm ``legacy_xception`` (the original Keras Xception layout) with the official UMSI
stride change: Keras blocks 4 and 13 (timm ``block3`` and ``block12``) run at stride 1 and no dilation is
added, so the output stride is 8 instead of 32. The aligned (DeepLab-style) ``xception41/65/71`` use timm's
own ``output_stride`` support, which dilates the later blocks instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from umsi.models.tf_ops import MaxPool2dFast, MaxPool2dTFSame

log = logging.getLogger(__name__)

LEGACY_XCEPTION = "legacy_xception"
ALIGNED_XCEPTIONS = ("xception41", "xception65", "xception71", "xception41p", "xception65p")
# timm legacy_xception blocks whose stride the official model sets to 1, by the output stride they give.
_LEGACY_STRIDE1_BLOCKS = {8: ("block3", "block12"), 16: ("block12",), 32: ()}


class PretrainedWeightsError(RuntimeError):
    """The configured encoder weights cannot be loaded (missing file, no network, wrong file)."""


def _set_block_stride1(block: nn.Module) -> None:
    """Turn a strided timm legacy Xception ``Block`` into a stride-1 block (residual 1×1 conv and max-pool)."""
    block.skip.stride = (1, 1)
    pool = block.rep[-1]
    if not isinstance(pool, nn.MaxPool2d):
        raise TypeError(f"expected the block to end with a MaxPool2d, found {type(pool).__name__}")
    pool.stride = 1


class LegacyXceptionEncoder(nn.Module):
    """Original Xception (timm ``legacy_xception``) without its classifier, at output stride 8 by default.

    Input (B, 3, H, W) → output (B, 2048, h, w) with h = ⌈⌈(⌊(H−3)/2⌋−1)/2⌉ / (stride of block3 · block12)⌉,
    i.e. 30×40 for a 240×320 input at output stride 8. The output is ReLU'd (``block14_sepconv2_act``).
    ``tf_same_padding`` makes the max-pools pad like TensorFlow "same" (asymmetric on even sizes), as in the
    released Keras model; every other encoder op already pads identically in both frameworks.
    """

    out_channels = 2048

    def __init__(
        self, output_stride: int = 8, pretrained_file: str | None = None, tf_same_padding: bool = False
    ) -> None:
        super().__init__()
        if output_stride not in _LEGACY_STRIDE1_BLOCKS:
            raise ValueError(f"model.output_stride={output_stride}: legacy_xception supports 8, 16 or 32")
        self.body = _create_timm(LEGACY_XCEPTION, pretrained_file, num_classes=0, global_pool="")
        for name in _LEGACY_STRIDE1_BLOCKS[output_stride]:
            _set_block_stride1(getattr(self.body, name))
        for block in self.body.modules():
            if isinstance(getattr(block, "rep", None), nn.Sequential) and isinstance(block.rep[-1], nn.MaxPool2d):
                pool = block.rep[-1]
                if tf_same_padding:
                    block.rep[-1] = MaxPool2dTFSame(pool.kernel_size, pool.stride)
                else:  # the same pool, faster on the CPU (no argmax indices)
                    block.rep[-1] = MaxPool2dFast(pool.kernel_size, pool.stride, pool.padding)
        self.output_stride = output_stride

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(image)


class AlignedXceptionEncoder(nn.Module):
    """Aligned Xception (timm ``xception41/65/71``) at output stride 8 or 16 (dilated later blocks).

    Input (B, 3, H, W) → output (B, 2048, ⌈H/os⌉, ⌈W/os⌉) (the last feature of timm's ``features_only``).
    """

    out_channels = 2048

    def __init__(self, name: str, output_stride: int = 8, pretrained_file: str | None = None) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"model.output_stride={output_stride}: {name} supports 8, 16 or 32")
        self.body = _create_timm(
            name, pretrained_file, features_only=True, output_stride=output_stride, out_indices=(-1,)
        )
        self.out_channels = self.body.feature_info.channels()[-1]
        self.output_stride = output_stride

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)[-1]


def _create_timm(name: str, pretrained_file: str | None, **kwargs) -> nn.Module:
    """Create a timm model, loading weights only from a local file (model hubs are not reachable)."""
    if pretrained_file is None:
        log.info("encoder %s built without pretrained weights (no model.pretrained_file)", name)
        return timm.create_model(name, pretrained=False, **kwargs)
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"model.pretrained_file={pretrained_file} does not exist. Download the timm weights for "
            f"'{name}' on a machine with internet access and point this key at the local .pth/.safetensors "
            "file, or set model.pretrained_file=null to train from scratch."
        )
    report = _TimmLoadReport()
    try:
        with report:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except Exception as err:  # timm raises several types for a wrong or unreadable file
        raise PretrainedWeightsError(_wrong_file(name, path, str(err))) from err
    if report.problems:
        # timm loads non-strictly once the classifier is dropped: a wrong file would silently stay random.
        raise PretrainedWeightsError(_wrong_file(name, path, "; ".join(report.problems)))
    log.info("encoder %s weights loaded from %s", name, path)
    return model


def _wrong_file(name: str, path: Path, why: str) -> str:
    return (
        f"could not load encoder weights for '{name}' from {path} (model.pretrained_file): {why[:500]}. "
        f"The file must be a timm state dict for '{name}'."
    )


class _TimmLoadReport(logging.Handler):
    """Collects timm's 'Missing keys' / 'Unexpected keys' reports while weights load (context manager)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.problems: list[str] = []
        self._logger = logging.getLogger("timm.models._builder")
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            self.problems.append(message.split(" discovered")[0].split(" found")[0])

    def __enter__(self) -> _TimmLoadReport:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)


def build_encoder(
    name: str = LEGACY_XCEPTION,
    output_stride: int = 8,
    pretrained_file: str | None = None,
    tf_same_padding: bool = False,
) -> nn.Module:
    """Factory for the supported encoders; each has ``out_channels`` and returns one (B, C, h, w) map."""
    if name == LEGACY_XCEPTION:
        return LegacyXceptionEncoder(output_stride, pretrained_file, tf_same_padding)
    if tf_same_padding:
        raise ValueError(
            f"model.tf_same_padding=true needs model.encoder={LEGACY_XCEPTION} (the Keras layout), not {name}"
        )
    if name in ALIGNED_XCEPTIONS:
        return AlignedXceptionEncoder(name, output_stride, pretrained_file)
    raise ValueError(f"model.encoder={name!r} is not supported; choose one of {(LEGACY_XCEPTION, *ALIGNED_XCEPTIONS)}")
