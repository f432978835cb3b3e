"""Encoders: timm backbones returning one feature map, at output stride 8 or 16 where the model allows it.

The default is timm ``legacy_xception`` (the original Keras Xception layout) with the official UMSI
stride change: Keras blocks 4 and 13 (timm ``block3`` and ``block12``) run at stride 1 and no dilation is
added, so the output stride is 8 instead of 32. Every other timm model that supports ``features_only=True``
(the aligned Xceptions, ConvNeXt, EfficientNet, ResNet, …) is a :class:`TimmEncoder`: its deepest feature, at
timm's ``output_stride`` (dilated later stages) where the model supports it, else at the model's own stride
(``TimmEncoder.output_stride`` says which; the decoder follows it). Patch-token transformers (ViT, DeiT, DINOv2,
EVA) run with timm's ``dynamic_img_size``/``dynamic_img_pad`` so any input size works, their patch tokens
reshaped to a (B, C, ⌈H/p⌉, ⌈W/p⌉) grid by timm's ``features_only`` wrapper.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from umsi.errors import UserError
from umsi.models.card import OFFICIAL_PREPROCESSING, Preprocessing, get_preprocessing, preprocessing_names
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

    name = LEGACY_XCEPTION
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


class TimmEncoder(nn.Module):
    """The deepest feature of any timm model built with ``features_only=True``.

    Input (B, 3, H, W) → output (B, C, ≈H/s, ≈W/s), C = ``out_channels`` (timm's ``feature_info``), s =
    ``output_stride``: the requested 8 or 16 where the model takes timm's ``output_stride`` (CNNs dilate their
    later stages), else the stride the model has (16 for a ViT/DeiT with 16-px patches, 14 for DINOv2, 32 for a
    CNN without dilation support). The grid rounds as the model does (e.g. ConvNeXt's unpadded stem floors, a
    patch-token transformer pads the image to whole patches). ``min_input_size`` is ``output_stride`` (px), a
    safe bound for every timm family.

    Raises ``ValueError`` naming ``model.encoder`` for a name timm does not know or cannot build with
    ``features_only``, and ``model.output_stride`` for a stride other than 8, 16 or 32.
    """

    def __init__(
        self, name: str, output_stride: int = 8, pretrained_file: str | None = None, pretrained: bool = False
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"model.output_stride={output_stride}: {name} supports 8, 16 or 32")
        if not timm.is_model(name):
            raise ValueError(
                f"model.encoder={name!r} is not a timm model: give a name from timm.list_models() (e.g. "
                "convnext_tiny, efficientnet_b3, resnet50, deit_small_patch16_224) or legacy_xception"
            )
        self.body = _create_features(name, output_stride, pretrained_file, pretrained)
        self.name = name
        self.out_channels: int = self.body.feature_info.channels()[-1]
        self.output_stride: int = self.body.feature_info.reduction()[-1]
        self.min_input_size: int = self.output_stride
        if self.output_stride != output_stride:
            log.info(
                "encoder %s has no output_stride support: it runs at its own stride %d (model.output_stride=%d is "
                "not used); the decoder's upsampling follows it",
                name,
                self.output_stride,
                output_stride,
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)[-1]


# Extra timm arguments tried in turn: dilation to the requested output stride (most CNNs), then any input size
# for patch-token transformers (position embeddings resampled per input, the image padded to whole patches),
# then the model as it is.
_FEATURE_VARIANTS = ("output_stride", "dynamic_img_size", None)


def _create_features(name: str, output_stride: int, pretrained_file: str | None, pretrained: bool) -> nn.Module:
    """timm ``features_only`` model of ``name`` returning its deepest feature, with the first of
    :data:`_FEATURE_VARIANTS` the model's constructor accepts (an unknown keyword fails before any weights load)."""
    for variant in _FEATURE_VARIANTS:
        extra: dict[str, Any] = {}
        if variant == "output_stride":
            extra = {"output_stride": output_stride}
        elif variant == "dynamic_img_size":
            extra = {"dynamic_img_size": True, "dynamic_img_pad": True}
        try:
            return _create_timm(name, pretrained_file, pretrained, features_only=True, out_indices=(-1,), **extra)
        except TypeError as err:
            if variant is None or "unexpected keyword argument" not in str(err):
                raise
        except PretrainedWeightsError:
            raise
        except RuntimeError as err:  # timm: "features_only not implemented for …"
            raise ValueError(
                f"model.encoder={name!r}: timm cannot build it with features_only=True ({_first_line(err)}); "
                "choose a timm model with feature extraction (most CNNs and ViT-style models)"
            ) from None
    raise AssertionError("unreachable")


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
    # a features_only model has no layers after its last feature (EfficientNet's conv_head, a ViT's final norm):
    # the file's keys for those are expected to be left over, a key of the model missing from the file is not
    report = _TimmLoadReport(_classifier_prefixes(name), allow_unexpected=bool(kwargs.get("features_only")))
    try:
        with report:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):  # the model's constructor refused an argument: not the file
            raise
        raise PretrainedWeightsError(_wrong_file(name, source, key, str(err))) from err
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
    keys under ``ignore`` (the ImageNet classifier, which timm drops on purpose when the model has no head) and,
    with ``allow_unexpected``, every unexpected key (the layers a ``features_only`` model leaves out)."""

    _REPORT = re.compile(r"(Missing|Unexpected) keys \((.*)\) (?:discovered|found)", re.DOTALL)

    def __init__(self, ignore: tuple[str, ...] = (), allow_unexpected: bool = False) -> None:
        super().__init__(level=logging.INFO)
        self.problems: list[str] = []
        self.ignore = ignore
        self.allow_unexpected = allow_unexpected
        self._logger = logging.getLogger("timm.models._builder")
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        match = self._REPORT.match(record.getMessage())
        if match and not (self.allow_unexpected and match.group(1) == "Unexpected"):
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


def min_input_size(name: str = LEGACY_XCEPTION, output_stride: int = 8) -> int:
    """The smallest input side (px) encoder ``name`` takes without building it: 7 for ``legacy_xception`` (its
    unpadded stem), else ``output_stride`` (:class:`TimmEncoder`; a model without output-stride support may need
    its own stride, which training finds when the encoder is built)."""
    return LegacyXceptionEncoder.min_input_size if name == LEGACY_XCEPTION else output_stride


def build_encoder(
    name: str = LEGACY_XCEPTION,
    output_stride: int = 8,
    pretrained_file: str | None = None,
    tf_same_padding: bool = False,
    pretrained: bool = False,
) -> nn.Module:
    """The encoder ``name``: the official ``legacy_xception`` or any timm ``features_only`` model
    (:class:`TimmEncoder`). Each has ``out_channels``, ``output_stride``, ``min_input_size`` (px per side) and
    returns one (B, C, h, w) map.

    Encoder weights: ``pretrained_file`` (a local timm state dict) wins; else ``pretrained=True`` loads timm's
    ImageNet weights through its hub mechanism (:func:`fetch_pretrained_weights`); else random initialisation.
    Raises :class:`PretrainedWeightsError` for weights that cannot be had or do not fit, ``ValueError`` for an
    encoder timm cannot build."""
    if name == LEGACY_XCEPTION:
        return LegacyXceptionEncoder(output_stride, pretrained_file, tf_same_padding, pretrained)
    if tf_same_padding:
        raise ValueError(
            f"model.tf_same_padding=true needs model.encoder={LEGACY_XCEPTION} (the Keras layout), not {name}"
        )
    return TimmEncoder(name, output_stride, pretrained_file, pretrained)


def encoder_preprocessing(name: str = LEGACY_XCEPTION) -> Preprocessing:
    """What ``data.preprocessing=auto`` means for encoder ``name``: ``official`` (BGR minus the Caffe means, as the
    released network) for ``legacy_xception``; for every other encoder the RGB mean and std it was trained with,
    from its ``pretrained_cfg`` (``timm.data.resolve_data_config``) — the registered scheme with those values
    (``imagenet`` for most, ``timm`` for mean = std = 0.5), else a scheme named after the encoder.
    Raises ``ValueError`` naming ``model.encoder`` for a name timm does not know."""
    if name == LEGACY_XCEPTION:
        return OFFICIAL_PREPROCESSING
    from timm.data import resolve_data_config

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f"model.encoder={name!r} is not a timm model: give a name from timm.list_models()")
    config = resolve_data_config({}, pretrained_cfg=cfg.to_dict())
    mean, std = (tuple(round(float(v), 6) for v in config[key]) for key in ("mean", "std"))
    scheme = Preprocessing(name, "RGB", 255.0, mean, std)  # type: ignore[arg-type]
    for registered in map(get_preprocessing, preprocessing_names()):
        if (registered.channel_order, registered.pixel_scale, registered.mean, registered.std) == (
            "RGB",
            255.0,
            scheme.mean,
            scheme.std,
        ):
            return registered
    return scheme
