"""Encoders: timm Xception backbones returning one feature map at output stride 8 or 16.

The default is timm ``legacy_xception`` (the original Keras Xception layout) with the official UMSI
stride change: Keras blocks 4 and 13 (timm ``block3`` and ``block12``) run at stride 1 and no dilation is
added, so the output stride is 8 instead of 32. The aligned (DeepLab-style) ``xception41/65/71`` use timm's
own ``output_stride`` support, which dilates the later blocks instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import timm
import torch
from torch import nn

from umsi.errors import UserError
from umsi.models.tf_ops import MaxPool2dFast, MaxPool2dTFSame

log = logging.getLogger(__name__)

LEGACY_XCEPTION = "legacy_xception"
ALIGNED_XCEPTIONS = ("xception41", "xception65", "xception71", "xception41p", "xception65p")
# timm legacy_xception blocks whose stride the official model sets to 1, by the output stride they give.
_LEGACY_STRIDE1_BLOCKS = {8: ("block3", "block12"), 16: ("block12",), 32: ()}
# (kernel, stride, padding) of the unpadded convolutions that open legacy_xception (Keras "valid" conv1 and conv2);
# every later op pads, so these alone set the smallest input
_LEGACY_STEM = ((3, 2, 0), (3, 1, 0))


def smallest_input(convolutions: tuple[tuple[int, int, int], ...]) -> int:
    """The smallest side (px) a chain of convolutions, given as (kernel, stride, padding), accepts: each one
    needs its padded input at least as large as its kernel, and leaves ⌊(n + 2p − k) / s⌋ + 1 pixels."""
    size = 1
    for kernel, stride, padding in reversed(convolutions):
        size = max((size - 1) * stride + kernel - 2 * padding, 1)
    return size


class PretrainedWeightsError(UserError, RuntimeError):
    """The configured encoder weights cannot be loaded (missing file, not cached and no network, wrong file)."""

    kind = "encoder weights"


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
    min_input_size = smallest_input(_LEGACY_STEM)  # 7 px

    def __init__(
        self,
        output_stride: int = 8,
        pretrained_file: str | None = None,
        tf_same_padding: bool = False,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if output_stride not in _LEGACY_STRIDE1_BLOCKS:
            raise ValueError(f"model.output_stride={output_stride}: legacy_xception supports 8, 16 or 32")
        self.body = _create_timm(LEGACY_XCEPTION, pretrained_file, pretrained, num_classes=0, global_pool="")
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
    min_input_size = 1  # every op pads

    def __init__(
        self, name: str, output_stride: int = 8, pretrained_file: str | None = None, pretrained: bool = False
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"model.output_stride={output_stride}: {name} supports 8, 16 or 32")
        self.body = _create_timm(
            name, pretrained_file, pretrained, features_only=True, output_stride=output_stride, out_indices=(-1,)
        )
        self.out_channels = self.body.feature_info.channels()[-1]
        self.output_stride = output_stride

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)[-1]


def pretrained_weights_name(name: str) -> str:
    """timm's name of the ImageNet weights ``timm.create_model(name, pretrained=True)`` loads, with its tag
    (``legacy_xception`` → ``legacy_xception.tf_in1k``). Raises :class:`PretrainedWeightsError` when timm has none."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise PretrainedWeightsError(
            f"model.pretrained=true: timm has no pretrained weights for model.encoder={name}; give a local weights "
            "file with model.pretrained_file=/path/to/weights.pth or set model.pretrained=false"
        )
    return f"{name.split('.')[0]}.{cfg.tag}" if cfg.tag else name


def pretrained_cache_dir(name: str) -> Path:
    """Where timm keeps the downloaded weights of ``name``: the Hugging Face hub cache (``HF_HOME``/hub, or
    ``HF_HUB_CACHE``) for weights hosted there, torch's hub cache (``TORCH_HOME``/hub/checkpoints) for the
    others (``legacy_xception.tf_in1k`` is a GitHub release file in timm 1.0)."""
    from huggingface_hub import constants

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        return Path(constants.HF_HUB_CACHE)
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_pretrained_weights(name: str) -> Path:
    """Make sure ``timm.create_model(name, pretrained=True)`` can load its ImageNet weights: the file timm would read,
    from timm's cache, downloaded into that cache first when the network can be used. Returns the cached file.

    The source is the one timm itself resolves from the model's pretrained config: the Hugging Face hub
    (``huggingface_hub.hf_hub_download``: safetensors first, then ``pytorch_model.bin``, as timm) or a URL (timm's
    ``download_cached_file`` into torch's hub cache). ``HF_HUB_OFFLINE=1`` means no download from either.
    Raises :class:`PretrainedWeightsError` (one line naming ``model.pretrained``, ``model.pretrained_file``, the
    weights and the cache folder) when the weights are neither cached nor downloadable.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    from timm.models._hub import check_cached_file, download_cached_file, hf_split

    weights = pretrained_weights_name(name)
    cfg = timm.models.get_pretrained_cfg(name)
    offline = constants.is_offline_mode()
    try:
        if cfg.hf_hub_id:
            repo_id, revision = hf_split(cfg.hf_hub_id)
            filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            missing: Exception | None = None
            for filename in filenames:
                try:
                    return Path(hf_hub_download(repo_id, filename, revision=revision))
                except EntryNotFoundError as err:  # not cached (offline, no network) or not on the hub: next name
                    missing = err
            raise OSError("HF_HUB_OFFLINE=1" if offline else _first_line(missing))
        if check_cached_file(cfg.url, check_hash=False):  # timm loads a cached file without a hash check
            return Path(download_cached_file(cfg.url, check_hash=False))
        if offline:
            raise OSError("HF_HUB_OFFLINE=1")
        log.info("downloading the ImageNet weights of %s from %s", weights, cfg.url)
        return Path(download_cached_file(cfg.url, check_hash=True))
    except OSError as err:  # URLError, HTTPError, a full disk … are all OSErrors
        raise PretrainedWeightsError(
            f"model.pretrained=true: the ImageNet weights {weights} are not in timm's cache "
            f"({pretrained_cache_dir(name)}) and cannot be downloaded ({_first_line(err)}). Run once with network "
            "access to fill the cache, or give a local timm weights file with "
            "model.pretrained_file=/path/to/weights.pth, or set model.pretrained=false to train the encoder from "
            "scratch"
        ) from None


def check_cached_weights(name: str, path: str | Path) -> None:
    """Open the cached ImageNet weights file of encoder ``name`` as timm's loader does
    (``timm.models.load_state_dict``: safetensors, or ``torch.load``) and raise :class:`PretrainedWeightsError` with
    one line naming the file and saying to delete it when it does not load: an empty or partial file, e.g. an
    interrupted copy of the cache to an offline machine. Reads the whole file (legacy_xception: 88 MB)."""
    from timm.models import load_state_dict

    path = Path(path)
    try:
        state = load_state_dict(str(path), use_ema=False)
        if not isinstance(state, dict) or not state:
            raise ValueError("it holds no weights")
    except Exception as err:  # torch, zipfile, pickle and safetensors raise many types on a damaged file
        size = path.stat().st_size if path.exists() else 0
        why = "an empty file" if size == 0 else f"{size:,} bytes that do not load: {_first_line(err)}"
        raise PretrainedWeightsError(
            f"model.pretrained=true: the cached ImageNet weights of {pretrained_weights_name(name)} at {path} are "
            f"damaged ({why}), e.g. an interrupted copy or download. Delete that file and run again with network "
            "access (timm downloads it again), or copy it again in full from a machine that has it"
        ) from None


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _create_timm(name: str, pretrained_file: str | None, pretrained: bool = False, **kwargs) -> nn.Module:
    """Create a timm model with ImageNet weights from ``pretrained_file`` (a local file, which wins), or through
    timm's own hub mechanism when ``pretrained`` (the cache, or a download; :func:`fetch_pretrained_weights`), or
    from scratch. Loaded weights are checked: missing or unexpected keys raise :class:`PretrainedWeightsError`."""
    if pretrained_file is None and not pretrained:
        # debug only: the weights may still come from a checkpoint (init_ckpt); the training runner logs their origin
        log.debug("encoder %s built without ImageNet weights", name)
        return timm.create_model(name, pretrained=False, **kwargs)
    if pretrained_file is None:
        source = fetch_pretrained_weights(name)
        overlay = None
        key = "model.pretrained=true"
    else:
        source = Path(pretrained_file).expanduser()
        if not source.is_file():
            raise PretrainedWeightsError(
                f"model.pretrained_file={pretrained_file} does not exist. Point this key at a local .pth/.safetensors "
                f"timm state dict for '{name}', or set model.pretrained_file=null (model.pretrained=true loads "
                "timm's ImageNet weights from its cache or the network, false trains from scratch)."
            )
        overlay = {"file": str(source)}
        key = "model.pretrained_file"
    report = _TimmLoadReport(_classifier_prefixes(name))
    try:
        with report:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as err:  # timm raises several types for a wrong or unreadable file
        raise PretrainedWeightsError(_wrong_file(name, source, key, str(err))) from err
    if report.problems:
        # timm loads non-strictly once the classifier is dropped: a wrong file would silently stay random.
        raise PretrainedWeightsError(_wrong_file(name, source, key, "; ".join(report.problems)))
    log.info("encoder %s weights loaded from %s (%s)", name, source, key)
    return model


def _classifier_prefixes(name: str) -> tuple[str, ...]:
    """``("fc.",)`` / ``("head.fc.",)``: the keys of the ImageNet classifier in timm's weights for ``name``."""
    cfg = timm.models.get_pretrained_cfg(name)
    classifier = (cfg.classifier if cfg is not None else None) or ()
    return tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))


def _wrong_file(name: str, path: Path, key: str, why: str) -> str:
    return (
        f"could not load encoder weights for '{name}' from {path} ({key}): {why[:500]}. "
        f"The file must be a timm state dict for '{name}'."
    )


class _TimmLoadReport(logging.Handler):
    """Collects timm's 'Missing keys' / 'Unexpected keys' reports while weights load (context manager), except the
    keys under ``ignore`` (the ImageNet classifier, which timm drops on purpose when the model has no head)."""

    _REPORT = re.compile(r"(Missing|Unexpected) keys \((.*)\) (?:discovered|found)", re.DOTALL)

    def __init__(self, ignore: tuple[str, ...] = ()) -> None:
        super().__init__(level=logging.INFO)
        self.problems: list[str] = []
        self.ignore = ignore
        self._logger = logging.getLogger("timm.models._builder")
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        match = self._REPORT.match(record.getMessage())
        if match:
            keys = [key for key in match.group(2).split(", ") if not key.startswith(self.ignore)]
            if keys:
                self.problems.append(f"{match.group(1)} keys ({', '.join(keys)})")

    def __enter__(self) -> _TimmLoadReport:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)


def min_input_size(name: str = LEGACY_XCEPTION) -> int:
    """The smallest input side (px) encoder ``name`` takes without building it: 7 for ``legacy_xception`` (its
    unpadded stem), 1 for the aligned Xceptions."""
    return (LegacyXceptionEncoder if name == LEGACY_XCEPTION else AlignedXceptionEncoder).min_input_size


def build_encoder(
    name: str = LEGACY_XCEPTION,
    output_stride: int = 8,
    pretrained_file: str | None = None,
    tf_same_padding: bool = False,
    pretrained: bool = False,
) -> nn.Module:
    """Factory for the supported encoders; each has ``out_channels``, ``min_input_size`` (px per side) and returns
    one (B, C, h, w) map.

    Encoder weights: ``pretrained_file`` (a local timm state dict) wins; else ``pretrained=True`` loads timm's
    ImageNet weights through its hub mechanism (:func:`fetch_pretrained_weights`); else random initialisation.
    Raises :class:`PretrainedWeightsError` for weights that cannot be had or do not fit."""
    if name == LEGACY_XCEPTION:
        return LegacyXceptionEncoder(output_stride, pretrained_file, tf_same_padding, pretrained)
    if tf_same_padding:
        raise ValueError(
            f"model.tf_same_padding=true needs model.encoder={LEGACY_XCEPTION} (the Keras layout), not {name}"
        )
    if name in ALIGNED_XCEPTIONS:
        return AlignedXceptionEncoder(name, output_stride, pretrained_file, pretrained)
    raise ValueError(f"model.encoder={name!r} is not supported; choose one of {(LEGACY_XCEPTION, *ALIGNED_XCEPTIONS)}")
