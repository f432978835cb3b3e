"""Tiny trees in the exact layouts of the registered datasets (UEyes, MIT1003, CAT2000, OSIE, generic folder),
made by the tests: random images, blurred-point maps, fixations in each owner's format."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

SIZE = (36, 48)  # (height, width) of every image


def _image(path: Path, rng: np.random.Generator, hw: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (*hw, 3), dtype=np.uint8))


def _points(rng: np.random.Generator, n: int = 6, hw: tuple[int, int] = SIZE) -> np.ndarray:
    """(n, 2) integer 0-based (x, y) inside the image."""
    return np.stack([rng.integers(2, hw[1] - 2, n), rng.integers(2, hw[0] - 2, n)], axis=1)


def _map(path: Path, points: np.ndarray, hw: tuple[int, int] = SIZE) -> None:
    counts = np.zeros(hw, np.float32)
    for x, y in points:
        counts[y, x] += 1
    blurred = cv2.GaussianBlur(counts, (0, 0), 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.uint8(blurred / blurred.max() * 255))


def _binary(path: Path, points: np.ndarray, hw: tuple[int, int] = SIZE, blob: int = 0) -> None:
    mask = np.zeros(hw, np.uint8)
    for x, y in points:
        mask[max(y - blob, 0) : y + blob + 1, max(x - blob, 0) : x + blob + 1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


UEYES_CATEGORIES = ("desktop", "mobile", "poster", "web")


def make_ueyes(root: Path, per_category: int = 3, seed: int = 0) -> Path:
    """images/, saliency_maps/{heatmaps,fixmaps}_{1s,3s,7s}/, info.csv (Image Name, category, block, train/test);
    the last image of each category is a test image, and sits in block 53."""
    rng = np.random.default_rng(seed)
    lines = ["Image Name,category,block,train/test"]
    for c, category in enumerate(UEYES_CATEGORIES):
        for i in range(per_category):
            stem = f"{category}_{i}"
            suffix = ".jpg" if i % 2 else ".png"
            _image(root / "images" / f"{stem}{suffix}", rng)
            for duration in ("1s", "3s", "7s"):
                pts = _points(rng)
                _map(root / "saliency_maps" / f"heatmaps_{duration}" / f"{stem}.png", pts)
                _binary(root / "saliency_maps" / f"fixmaps_{duration}" / f"{stem}.png", pts, blob=1)
            test = i == per_category - 1
            lines.append(f"{stem}{suffix},{category},{53 if test else c + 1},{'test' if test else 'train'}")
    (root / "info.csv").write_text("\n".join(lines) + "\n")
    return root


def make_mit1003(root: Path, n: int = 6, seed: int = 1) -> Path:
    """ALLSTIMULI/<stem>.jpeg, ALLFIXATIONMAPS/<stem>_fixMap.jpg and <stem>_fixPts.jpg."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        stem = f"i{1000 + i}"
        pts = _points(rng)
        _image(root / "ALLSTIMULI" / f"{stem}.jpeg", rng)
        _map(root / "ALLFIXATIONMAPS" / f"{stem}_fixMap.jpg", pts)
        _binary(root / "ALLFIXATIONMAPS" / f"{stem}_fixPts.jpg", pts)
    return root


def make_cat2000(root: Path, categories: tuple[str, ...] = ("Action", "Affective"), n: int = 4, seed: int = 2) -> Path:
    """Stimuli/<category>/*.jpg, FIXATIONMAPS/<category>/*.jpg, FIXATIONLOCS/<category>/*.mat (fixLocs)."""
    rng = np.random.default_rng(seed)
    for category in categories:
        for i in range(n):
            stem = f"{i + 1:03d}"
            pts = _points(rng)
            _image(root / "Stimuli" / category / f"{stem}.jpg", rng)
            _map(root / "FIXATIONMAPS" / category / f"{stem}.jpg", pts)
            locs = np.zeros(SIZE, np.uint8)
            locs[pts[:, 1], pts[:, 0]] = 1
            (root / "FIXATIONLOCS" / category).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "FIXATIONLOCS" / category / f"{stem}.mat", {"fixLocs": locs})
    return root


def make_osie(root: Path, n: int = 6, subjects: int = 3, seed: int = 3) -> Path:
    """data/stimuli/<1001+i>.jpg and data/eye/fixations.mat: a 1×n cell of structs {img, subjects: 1×k cell of
    structs {fix_x, fix_y}} (1-based pixels), as NUS-VIP ships it."""
    rng = np.random.default_rng(seed)
    cells = np.empty((1, n), dtype=object)
    for i in range(n):
        name = f"{1001 + i}.jpg"
        _image(root / "data" / "stimuli" / name, rng)
        subs = np.empty((1, subjects), dtype=object)
        for j in range(subjects):
            pts = _points(rng, 4) + 1
            subs[0, j] = {"fix_x": pts[:, 0].astype(float)[:, None], "fix_y": pts[:, 1].astype(float)[:, None]}
        cells[0, i] = {"img": name, "subjects": subs}
    (root / "data" / "eye").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "data" / "eye" / "fixations.mat", {"fixations": cells})
    return root


def make_folder(root: Path, seed: int = 4) -> Path:
    """images/<class>/ with maps for some items and fixations in every format (.npy, .csv, .png, .mat) for others;
    a val.txt split list."""
    rng = np.random.default_rng(seed)
    formats = ("npy", "csv", "png", "map")
    for cls in ("ads", "charts"):
        for i, kind in enumerate(formats):
            stem = f"{cls}{i}"
            pts = _points(rng)
            _image(root / "images" / cls / f"{stem}.jpg", rng)
            fix = root / "fixations" / cls
            fix.mkdir(parents=True, exist_ok=True)
            if kind == "npy":
                np.save(fix / f"{stem}.npy", pts.astype(np.float32))
            elif kind == "csv":
                (fix / f"{stem}.csv").write_text("x,y\n" + "\n".join(f"{x},{y}" for x, y in pts) + "\n")
            elif kind == "png":
                _binary(fix / f"{stem}.png", pts)
            else:
                _map(root / "maps" / cls / f"{stem}.png", pts)
    (root / "val.txt").write_text("ads/ads0\ncharts1\n")
    return root


MAKERS = {
    "ueyes": make_ueyes,
    "mit1003": make_mit1003,
    "cat2000": make_cat2000,
    "osie": make_osie,
    "folder": make_folder,
}
