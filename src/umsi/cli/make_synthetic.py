"""``umsi-make-synthetic --out data/synthetic`` / ``python -m umsi.cli.make_synthetic``: write the deterministic
synthetic SALICON-, Imp1k- and GDI-style trees (:func:`umsi.data.synthetic.generate`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="umsi-make-synthetic",
        description="Write deterministic synthetic SALICON-, Imp1k- and GDI-style data.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--salicon-train", type=int, default=400)
    p.add_argument("--salicon-val", type=int, default=50)
    p.add_argument("--salicon-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    p.add_argument("--imp1k-per-class", type=int, default=48)
    p.add_argument("--imp1k-val-per-class", type=int, default=8)
    p.add_argument("--gdi-train", type=int, default=40)
    p.add_argument("--gdi-val", type=int, default=10)
    p.add_argument("--overwrite", action="store_true", help="regenerate even if <out>/.complete exists")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from umsi.data.synthetic import describe, generate

    out = generate(
        args.out,
        seed=args.seed,
        salicon_train=args.salicon_train,
        salicon_val=args.salicon_val,
        imp1k_per_class=args.imp1k_per_class,
        imp1k_val_per_class=args.imp1k_val_per_class,
        gdi_train=args.gdi_train,
        gdi_val=args.gdi_val,
        salicon_size=tuple(args.salicon_size),
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"synthetic data in {out}: {describe(out)}")


if __name__ == "__main__":
    main()
