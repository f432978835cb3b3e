"""UMSI: Unified Model of Saliency and Importance — training framework on PyTorch Lightning + Hydra."""

import os

# albumentations otherwise asks PyPI for a newer version at import time; runs here are offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
