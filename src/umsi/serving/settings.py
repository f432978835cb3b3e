"""``conf/serve.yaml`` checked before anything heavy is imported: one :class:`~umsi.errors.ConfigError` line per
mistake, naming the key and the values it takes."""

from __future__ import annotations

from typing import Any

from umsi.errors import ConfigError

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the addresses LitServe binds
PRECISIONS = ("32", "bf16", "16")


def check_serve_config(cfg: Any) -> None:
    """Raise :class:`~umsi.errors.ConfigError` for a value ``umsi-serve`` cannot use."""
    if str(cfg.host) not in HOSTS:
        raise ConfigError(f"host={cfg.host}: use 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface)")
    if not isinstance(cfg.port, int) or not 1024 <= cfg.port <= 65535:
        raise ConfigError(f"port={cfg.port}: use a port from 1024 to 65535")
    accelerator(str(cfg.device))
    if str(cfg.precision) not in PRECISIONS:
        raise ConfigError(f"precision={cfg.precision}: use one of {', '.join(PRECISIONS)}")
    positive = {
        "workers": cfg.workers,
        "max_upload_mb": cfg.max_upload_mb,
        "max_megapixels": cfg.max_megapixels,
        "max_batch_size": 1 if cfg.max_batch_size is None else cfg.max_batch_size,
    }
    for key, value in positive.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}={value}: must be a positive number")
    if not isinstance(cfg.max_batch_size, int | None) or not isinstance(cfg.workers, int):
        raise ConfigError("max_batch_size and workers must be whole numbers (max_batch_size may be null)")
    if cfg.timeout != -1 and cfg.timeout <= 0:
        raise ConfigError(f"timeout={cfg.timeout}: give the seconds a request may wait (more than 0), or -1")
    if cfg.batch_timeout < 0:
        raise ConfigError(f"batch_timeout={cfg.batch_timeout}: must be 0 or more seconds")
    if not 0.0 <= cfg.overlay_alpha <= 1.0:
        raise ConfigError(f"overlay_alpha={cfg.overlay_alpha}: must be in [0, 1]")
    from umsi.visualize import colormap_code

    try:
        colormap_code(str(cfg.colormap))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def accelerator(device: str) -> tuple[str, int | list[int]]:
    """``device`` → LitServe's (accelerator, devices): ``cpu`` → ("cpu", 1), ``cuda`` → ("cuda", 1),
    ``cuda:2`` → ("cuda", [2]), ``auto`` → ("auto", 1)."""
    if device in ("cpu", "auto"):
        return device, 1
    if device == "cuda":
        return "cuda", 1
    index = device.removeprefix("cuda:")
    if device.startswith("cuda:") and index.isdigit():
        return "cuda", [int(index)]
    raise ConfigError(f"device={device}: use cpu, cuda, cuda:N or auto")


def batch_size(cfg: Any, accelerator_name: str) -> int:
    """``max_batch_size``; null → 1 on the CPU (as ``umsi-predict``: batch 1 measured fastest there), 16 on a GPU."""
    if cfg.max_batch_size is not None:
        return int(cfg.max_batch_size)
    return 1 if accelerator_name == "cpu" else 16
