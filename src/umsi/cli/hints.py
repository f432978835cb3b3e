"""What to say about a key the tool does not have but another tool, or the model file, does.

``umsi-eval 'data.input_size=[120,160]'`` used to answer "did you mean 'datasets'?": the nearest key, which leads the
wrong way. A model-using tool (``umsi-eval``, ``-predict``, ``-serve``, ``-export``) takes the input size,
preprocessing and architecture from each model file; training keys belong to ``umsi-train``; a checkpoint is
``ckpt=`` in one tool and ``checkpoints=[…]`` or ``init_ckpt=`` in another. :func:`foreign_key_hint` says so and
offers the override where the tool has one. Nothing here imports torch.
"""

from __future__ import annotations

MODEL_TOOLS = ("eval", "predict", "serve", "export")
# training config keys whose value each model file carries, and what they are
FROM_MODEL = {
    "data.input_size": "the input size",
    "data.preprocessing": "the preprocessing (normalisation and channel order)",
    "data.output_scale": "the output scale",
    "data.num_classes": "the class list",
    "data.class_mapping": "the class list",
    "model": "the architecture",
}
# the key a tool offers to override what the model file says
OVERRIDES = {("eval", "data.input_size"): "input_size=[H,W]", ("export", "data.input_size"): "input_size=[H,W]"}
TRAIN_GROUPS = ("trainer", "loss", "optimizer", "scheduler", "callbacks", "stage", "logger", "experiment")
MODEL_ARGUMENT = {
    "eval": "checkpoints=[a.ckpt,<run folder>,…]",
    "predict": "ckpt=<file or run folder>",
    "serve": "ckpt=<file or run folder>",
    "export": "ckpt=<file or run folder>",
}
EVAL_KEYS = ("checkpoints", "datasets", "frame", "auc_borji", "report", "examples", "names")


def _tool(config_name: str) -> str:
    return "umsi-" + config_name.replace("_", "-")


def _from_model(key: str) -> str | None:
    for prefix, what in FROM_MODEL.items():
        if key == prefix or key.startswith(prefix + "."):
            return what
    return None


def foreign_key_hint(config_name: str, key: str) -> str | None:
    """One sentence for an unknown ``key`` of the tool whose config is ``config_name`` when the key belongs to another
    tool or comes from the model file (with the override to use, if the tool has one); ``None`` otherwise."""
    tool, first = _tool(config_name), key.split(".", 1)[0]
    if config_name in MODEL_TOOLS:
        what = _from_model(key)
        if what is not None:
            override = OVERRIDES.get((config_name, key))
            fix = f"pass {override} to override it" if override else "train a model with another one to change it"
            return f"{tool} takes {what} from each model file ({key} of the run that trained it); {fix}"
        if first == "data":
            where = "datasets.salicon / datasets.imp1k / datasets.gdi" if config_name == "eval" else "input="
            return f"{key} is a umsi-train setting; {tool} reads its images from {where}"
        if first in TRAIN_GROUPS or first in ("init_ckpt", "ckpt_path"):
            return f"{key} is a umsi-train setting; {tool} takes a trained model: {MODEL_ARGUMENT[config_name]}"
        if first in ("ckpt", "checkpoints"):
            return f"{tool} takes its model as {MODEL_ARGUMENT[config_name]}"
        if config_name != "eval" and first in EVAL_KEYS:
            return f"{key} is a umsi-eval setting (scoring on the datasets); {tool} does not score"
    if config_name == "train":
        if first in ("ckpt", "checkpoints"):
            return (
                "umsi-train starts from weights with init_ckpt=<checkpoint> and resumes a stopped run with "
                "ckpt_path=last (or a path); ckpt= and checkpoints= belong to the tools that use a trained model"
            )
        if first in EVAL_KEYS:
            return f"{key} is a umsi-eval setting: score the trained run with `umsi-eval checkpoints=[<run folder>]`"
        if first == "input_size":
            return "umsi-train's input size is data.input_size=[H,W]"
    return None
