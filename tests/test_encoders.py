"""Any timm encoder under the UMSI heads: the conf/model presets (ConvNeXt, EfficientNet, ResNet, a DeiT) train and
validate, give a map of exactly output_scale × the input, and reload through a checkpoint; each normalises its
input as its encoder was trained (data.preprocessing=auto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import umsi
from conftest import tiny_overrides
from umsi.data.transforms import normalize_image
from umsi.inference.predictor import Predictor, as_bgr
from umsi.models import UMSI, build_encoder, create_model
from umsi.models.card import CARD_KEY, IMAGENET_PREPROCESSING, OFFICIAL_PREPROCESSING, get_preprocessing
from umsi.models.encoder import encoder_preprocessing
from umsi.models.heads import Decoder
from umsi.paths import CONFIG_DIR
from umsi.training.module import UMSILitModule
from umsi.training.runner import build_datamodule, build_module, resolve_preprocessing

# preset → (timm encoder, output stride it runs at, normalisation data.preprocessing=auto picks); each preset is
# the registered architecture umsi_<preset>
PRESETS = {
    "convnext_tiny": ("convnext_tiny", 8, "imagenet"),
    "efficientnet_b3": ("efficientnet_b3", 8, "imagenet"),
    "resnet50": ("resnet50", 8, "imagenet"),
    "deit_small": ("deit_small_patch16_224", 16, "imagenet"),  # patch tokens → grid, its own stride
}


@dataclass
class Trained:
    """A preset after one training step and one validation step on the tiny fixture."""

    cfg: DictConfig
    module: UMSILitModule
    metrics: dict[str, float]
    checkpoint: Path


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Trained]]:
    """trained(preset) → the preset fitted for one step and validated once (random weights), its checkpoint
    written; each preset is built and trained once for every test of this module."""
    done: dict[str, Trained] = {}

    def get(preset: str) -> Trained:
        if preset not in done:
            out = tmp_path_factory.mktemp(preset)
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose(
                    config_name="train",
                    overrides=[*tiny_overrides(synthetic_root, out), "stage=pretrain", f"model={preset}"],
                )
            cfg = resolve_preprocessing(cfg)
            torch.manual_seed(0)
            datamodule = build_datamodule(cfg)
            module = build_module(cfg, datamodule.class_names)
            trainer = pl.Trainer(
                max_epochs=1,
                limit_train_batches=1,
                limit_val_batches=1,
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(module, datamodule=datamodule)
            with torch.no_grad():  # a ReLU'd map of a random one-step network can be all zero: lift it
                module.model.decoder.head.bias.add_(1.0)
            checkpoint = out / "checkpoints" / "model.ckpt"
            trainer.save_checkpoint(checkpoint, weights_only=True)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            done[preset] = Trained(cfg, module.eval(), metrics, checkpoint)
        return done[preset]

    yield get
    done.clear()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_trains_and_validates_one_step(trained: Callable[[str], Trained], preset: str) -> None:
    run = trained(preset)
    encoder, stride, preprocessing = PRESETS[preset]
    assert (run.cfg.model.architecture, run.cfg.model.encoder) == (f"umsi_{preset}", encoder)
    assert run.cfg.data.preprocessing == preprocessing
    assert run.module.model.encoder_stride == stride
    assert run.module.model.encoder.out_channels == run.module.model.encoder.body.feature_info.channels()[-1]
    for key in ("train/loss_epoch", "val/loss", "val/cc", "val/kl"):
        assert np.isfinite(run.metrics[key]), key


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_maps_an_odd_input_to_exactly_output_scale_times_it(
    trained: Callable[[str], Trained], preset: str
) -> None:
    model = trained(preset).module.model
    with torch.no_grad():
        out = model(torch.randn(2, 3, 61, 83))
    assert out.saliency.shape == (2, 1, 122, 166)
    assert out.logits.shape == (2, model.num_classes)
    assert bool((out.saliency >= 0).all())


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_checkpoint_loads_and_predicts_as_in_memory(
    trained: Callable[[str], Trained], preset: str, synthetic_root: Path
) -> None:
    """checkpoint → umsi.load → predict gives the map of the module in memory, fed with the encoder's own
    normalisation at the run's input size (both recorded in the checkpoint's model card)."""
    run = trained(preset)
    image = next((synthetic_root / "salicon" / "images" / "val").iterdir())
    card = torch.load(run.checkpoint, map_location="cpu", weights_only=True)[CARD_KEY]
    assert card["architecture"] == f"umsi_{preset}" and card["preprocessing"]["name"] == PRESETS[preset][2]
    loaded = umsi.load(run.checkpoint)
    assert loaded.preprocessing == get_preprocessing(PRESETS[preset][2])
    size = tuple(run.cfg.data.input_size)
    in_memory = Predictor(run.module.model, loaded.class_names, size, get_preprocessing(PRESETS[preset][2]))
    expected_maps, expected_probabilities = in_memory.forward(in_memory.preprocess(as_bgr(image))[None])
    maps, probabilities = loaded.forward(loaded.preprocess(as_bgr(image))[None])
    assert maps.shape == (1, 64, 80) and float(expected_maps.std()) > 1e-4
    torch.testing.assert_close(maps, expected_maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(probabilities, expected_probabilities, rtol=1e-4, atol=1e-6)
    assert loaded.predict(image).heatmap.shape == (48, 64)  # the image's own size


def test_the_default_stays_the_released_xception() -> None:
    model = UMSI()
    assert model.encoder.name == "legacy_xception" and model.encoder_stride == 8
    assert sum(p.numel() for p in model.parameters()) == 29_850_799
    assert encoder_preprocessing("legacy_xception") == OFFICIAL_PREPROCESSING  # the release's BGR minus Caffe means


def test_auto_preprocessing_is_the_encoder_s_pretrained_cfg() -> None:
    assert encoder_preprocessing("convnext_tiny") == IMAGENET_PREPROCESSING
    assert encoder_preprocessing("xception41").name == "timm"  # mean = std = 0.5
    clip = encoder_preprocessing("vit_base_patch16_clip_224.openai")  # OpenAI CLIP's own mean/std: not registered
    assert (clip.name, clip.channel_order, clip.pixel_scale) == ("vit_base_patch16_clip_224.openai", "RGB", 255.0)
    assert clip.mean == (0.481455, 0.457827, 0.408211)
    image = np.full((2, 2, 3), (0, 128, 255), np.uint8)  # BGR
    x = normalize_image(image, IMAGENET_PREPROCESSING)
    assert x[0, 0, 0].item() == pytest.approx((1.0 - 0.485) / 0.229, abs=1e-5)  # R channel first
    with pytest.raises(ValueError, match=r"model\.encoder='no_such_net'"):
        encoder_preprocessing("no_such_net")


def test_the_presets_are_registered_architectures() -> None:
    model = create_model("umsi_deit_small", width=16, decoder_channels=[[8], [8], [8]])
    assert model.encoder.name == "deit_small_patch16_224" and model.encoder_stride == 16


def test_a_model_without_output_stride_runs_at_its_own_and_the_decoder_follows() -> None:
    encoder = build_encoder("deit_tiny_patch16_224", output_stride=8)  # a ViT: no dilation, 16-px patches
    assert encoder.output_stride == 16 and encoder.out_channels == 192
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 61, 83)).shape == (1, 192, 4, 6)  # padded to whole patches


def test_the_decoder_s_first_upsampling_follows_the_encoder_stride() -> None:
    seen: list[tuple[int, int]] = []
    for stride, grid in ((8, (30, 40)), (16, (15, 20)), (14, (17, 23))):
        decoder = Decoder(8, ((4,), (4,), (4,)), dropout=0.0, encoder_stride=stride)
        decoder.stages[1].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
        with torch.no_grad():
            assert decoder(torch.randn(1, 8, *grid), (480, 640)).shape == (1, 1, 480, 640)
    assert seen[:2] == [(60, 80), (60, 80)]  # the official network's grid after the first stage
    assert seen[2] == (60, 80)  # 17×23 × 3.5 = 59.5×80.5 → rounded


def test_an_unknown_encoder_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.encoder='no_such_net' is not a timm model"):
        build_encoder("no_such_net")
