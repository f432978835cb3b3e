"""``umsi-convert-keras IN.h5 OUT.ckpt`` / ``python -m umsi.cli.convert_keras``: the released Keras file → a umsi
checkpoint for ``model=umsi_official`` (:func:`umsi.official.convert.convert`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from umsi.official.convert import DEFAULT_CLASS_ORDER, RELEASED_FILE, convert
from umsi.official.h5 import ConversionError
from umsi.official.keras_layout import official_layers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="umsi-convert-keras",
        description="Convert the released UMSI Keras .h5 (read with h5py only; no Keras, no stored code is run) "
        "into a checkpoint for model=umsi_official.",
    )
    parser.add_argument("input", type=Path, help=f"the Keras file, e.g. {RELEASED_FILE}")
    parser.add_argument("output", type=Path, help="the checkpoint to write, e.g. weights/umsi_official.ckpt")
    parser.add_argument(
        "--class-order",
        help="class names in the order of the released classifier's outputs: comma-separated, or a mapping file "
        f"('name … index' per line). Default (unverified): {','.join(DEFAULT_CLASS_ORDER)}; "
        "determine it with umsi-probe-classes",
    )
    parser.add_argument("--num-classes", type=int, default=6, help="outputs of the classifier (6 for the release)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        checkpoint = convert(args.input, args.output, args.class_order, args.num_classes, args.overwrite)
    except ConversionError as err:
        print(f"umsi-convert-keras: {err}\nNothing was written.", file=sys.stderr)
        return 2
    info = checkpoint["umsi_conversion"]
    params = sum(
        v.numel() for k, v in checkpoint["state_dict"].items() if not k.endswith(("running_mean", "running_var"))
    )
    print(
        f"converted {len(official_layers())} layers, {info['keras_values']:,} values "
        f"({params:,} parameters + {info['keras_values'] - params:,} BatchNorm statistics)"
    )
    print(f"classes: {', '.join(checkpoint['hyper_parameters']['class_names'])}")
    if not info["class_order_given"]:
        print(
            "warning: the class order of the released head is not documented; this default is a guess. Run "
            f"umsi-probe-classes {args.output} <folder per class>… and convert again with --class-order."
        )
    print(f"wrote {args.output}  (use with: model=umsi_official init_ckpt=… / umsi-eval checkpoints=[…])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
