"""Per-image sums over the pixels of (B, N) maps, in float64, for the evaluation metrics.

How they are computed (speed: docs/performance.md). Maps stay in their storage dtype (float32 or float64; other dtypes
become float64). Per-image sums over pixels go through :func:`_sums`: on the CPU the maps are copied to float64 in
blocks of up to 4 MB per map (whole images up to 2**19 pixels, larger ones in pieces; a per-thread buffer reused from
call to call), on other devices the whole batch is one block. Every value is converted to float64 exactly
before any arithmetic and every sum is accumulated in float64; a sum of squared deviations that would cancel is taken
again around the mean (:func:`_moments`). So the values equal the plain float64 transcription kept in
:mod:`umsi.metrics.reference` to rounding (within 1e-6 relative is the contract, ~1e-12 is typical).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from umsi.metrics.maps import _on

CONSTANT_RTOL = 1e-9
"""A map whose standard deviation is at most this fraction of its root mean square counts as constant: NSS and CC 0.
Variation that small is rounding (a constant float64 map's mean is not exactly its value after summation), and its
z-scores would be noise (issue 13: NSS ±1 for constant float64 maps under "mit")."""

_BLOCK_ELEMENTS = 1 << 19
"""Pixels per float64 working block on the CPU (4 MB per map). Each block costs several Python-level calls, which
dominated at 2**16 (0.5 MB, sized for the L2 cache): 100 maps of 480×640 through cc, kl, nss and sim took 320 ms on
2 threads, against 188 ms at 2**19 and 234 ms at 2**20 (issue 27; one run, noisy to ~15 %)."""


def _layout(batch: int, numel: int, device: torch.device) -> tuple[int, int]:
    """(pieces per image, pieces per block) for :func:`_sums`: on the CPU, images are cut into the fewest equal pieces
    of at most :data:`_BLOCK_ELEMENTS` pixels (whole images when no such cut leaves pieces of a quarter block or more)
    and a block holds as many pieces as fit."""
    if device.type != "cpu":
        return 1, batch
    cuts = range(-(-numel // _BLOCK_ELEMENTS), numel // (_BLOCK_ELEMENTS // 4) + 1)
    split = next((s for s in cuts if numel % s == 0), 1)
    return split, max(1, _BLOCK_ELEMENTS // (numel // split))


_workspaces = threading.local()


def _workspace(shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """A float64 block of ``shape`` for :func:`_sums`: on the CPU a view of this thread's reused buffer (grown as
    needed, never shrunk), since a fresh buffer of a few MB costs more in page faults than the sums over it
    (measured ~2 µs per 4 KB page on the 2-core VM, issue 27); elsewhere a new tensor."""
    size = shape[0] * shape[1] * shape[2]
    if device.type != "cpu":
        return torch.empty(shape, dtype=torch.float64, device=device)
    buffer = getattr(_workspaces, "buffer", None)
    if buffer is None or buffer.numel() < size:
        buffer = _workspaces.buffer = torch.empty(size, dtype=torch.float64)
    return buffer[:size].view(shape)


def _sums(
    fn: Callable[..., tuple[torch.Tensor, ...]], maps: Sequence[torch.Tensor], constants: Sequence[torch.Tensor] = ()
) -> tuple[torch.Tensor, ...]:
    """Per-image sums over the pixels of M aligned (B, N) maps, accumulated in float64 block by block.

    ``fn(block, *columns)`` gets a float64 copy ``block`` (r, M, n) of r pieces of images (``block[:, j]`` is map j; it
    may be changed in place) and each per-image constant of ``constants`` ((B,) or (B, C)) as a column (r, 1, 1) or
    (r, C, 1) aligned with the pieces; it returns a tuple of per-piece partial sums, each (r, ...). Returns the same
    tuple summed over the pieces of each image, each (B, ...)."""
    batch, numel = maps[0].shape
    device = maps[0].device
    split, per_block = _layout(batch, numel, device)
    pieces, width = batch * split, numel // split
    views = [m.reshape(pieces, width) for m in maps]
    columns = [(c if split == 1 else c.repeat_interleave(split, dim=0)).reshape(pieces, -1, 1) for c in constants]
    work = _workspace((min(per_block, pieces), len(maps), width), device)
    parts = []
    for start in range(0, pieces, per_block):
        stop = min(start + per_block, pieces)
        block = work[: stop - start]
        for j, view in enumerate(views):
            block[:, j].copy_(view[start:stop])
        parts.append(fn(block, *(c[start:stop] for c in columns)))
    if split == 1 and len(parts) == 1:  # a small batch: one block of whole images
        return parts[0]
    return tuple(torch.cat(part).view(batch, split, *part[0].shape[1:]).sum(dim=1) for part in zip(*parts, strict=True))


def _row_sums(x: torch.Tensor) -> torch.Tensor:
    """(B, N) → Σx per row, accumulated in float64 without a float64 copy of the maps (NumPy's buffered reduction on
    the CPU, a fused cast elsewhere)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.einsum("ij->i", x.numpy(), dtype=np.float64))
    return x.sum(dim=1, dtype=torch.float64)


_WELL_CONDITIONED = 1e-2
"""Σ(x − mean)² is taken as Σx² − (Σx)²/N when it is at least this fraction of Σx² (the subtraction then loses at
most two digits of float64); otherwise the map's sums are taken again around its mean."""


def _moment_kernel(cross: bool) -> Callable[..., tuple[torch.Tensor, ...]]:
    """:func:`_sums` kernel (optionally with a shift column): per piece Σx (r, M), Σx² (r, M) and, with ``cross``
    (two maps), Σxy (r,), of x − shift."""

    def kernel(block: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if shift is not None:
            block.sub_(shift)
        squares = _rowdot(block, block)
        if not cross:
            return block.sum(dim=2), squares
        return block.sum(dim=2), squares, _rowdot(block[:, 0], block[:, 1])

    return kernel


def _moments(maps: Sequence[torch.Tensor], cross: bool = False) -> tuple[torch.Tensor, ...]:
    """Per image of M aligned (B, N) maps: the mean as shift + offset (M, B) each, Σ(x − mean)² (M, B) and, with
    ``cross`` (two maps), Σ(x − x̄)(y − ȳ) (B,); float64.

    One pass of raw sums (shift 0); images where Σx² − (Σx)²/N would cancel (a map far from 0 relative to its
    spread, e.g. 1000 ± 0.001, or a constant map) are summed again around their mean (the shift), so every value
    stays exact to rounding; x − mean is best taken as (x − shift) − offset."""
    numel = maps[0].shape[1]

    def centre(sums: torch.Tensor, squares: torch.Tensor, *cross_sum: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean = sums.T / numel
        cov = (cross_sum[0] - sums[:, 0] * mean[1],) if cross else ()
        return mean, squares.T - sums.T * mean, squares.T, *cov

    offset, centred, squares, *cov = centre(*_sums(_moment_kernel(cross), maps))
    shift = torch.zeros_like(offset)
    risky = (centred < _WELL_CONDITIONED * squares).any(dim=0).nonzero().squeeze(1)
    if risky.numel():
        shift[:, risky] = offset[:, risky]
        rows = [m.index_select(0, risky) for m in maps]
        again = _sums(_moment_kernel(cross), rows, [shift[:, risky].T])
        offset[:, risky], centred[:, risky], _, *cov_again = centre(*again)
        for full, part in zip(cov, cov_again, strict=True):
            full[risky] = part
    return shift, offset, centred.clamp_min(0), *cov


def _constant(centred: torch.Tensor, mean: torch.Tensor, numel: int) -> torch.Tensor:
    """Images whose std is at most :data:`CONSTANT_RTOL` of their root mean square (exactly constant maps included),
    from Σ(x − mean)² and the mean."""
    variance = centred / numel
    return variance <= CONSTANT_RTOL**2 * (mean.square() + variance)


def _range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) → per-row (min, max), float64."""
    return x.amin(dim=1).double(), x.amax(dim=1).double()


def _span(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """max − min, 1 where the map is constant (its min–max scaled map is then all zeros)."""
    return torch.where(hi > lo, hi - lo, torch.ones_like(hi))


def _target_scale(g: torch.Tensor, convention: str) -> torch.Tensor:
    """(B,) divisor of the continuous target: ``"umsi"`` divides a map whose max exceeds 1 by 255 (8-bit maps)."""
    over = g.amax(dim=1) > 1 if convention == "umsi" else torch.zeros(g.shape[0], dtype=torch.bool, device=g.device)
    return torch.where(over, 255.0, 1.0).to(device=g.device, dtype=torch.float64)


def _masses(maps: Sequence[torch.Tensor], shifts: torch.Tensor) -> torch.Tensor:
    """Σ(x − shift) per image of each of M aligned (B, N) maps, shifts (M, B) → (M, B) float64. Taken as Σx − N·shift
    where that keeps ~14 digits (always for shift 0), else summed again after the shift."""
    numel = maps[0].shape[1]
    mass = _on(torch.stack([_row_sums(m) for m in maps]), shifts.device)
    if not bool((shifts != 0).any()):
        return mass
    mass -= numel * shifts
    risky = (_WELL_CONDITIONED * numel * shifts.abs() > mass.abs()).any(dim=0).nonzero().squeeze(1)
    if risky.numel():

        def kernel(block: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor]:
            return (block.sub_(shift).sum(dim=2),)

        mass[:, risky] = _sums(kernel, [m.index_select(0, risky) for m in maps], [shifts[:, risky].T])[0].T
    return mass


def _distribution_shift(x: torch.Tensor, minmax: bool) -> torch.Tensor:
    """The shift that makes a map a non-negative mass before normalisation (pysaliency's/MIT's rules): its minimum
    (``minmax``, the min–max step; the division by the range cancels in the normalisation) or, for a map with
    negative values, its minimum, else 0."""
    lo = x.amin(dim=1).double()
    return lo if minmax else lo.clamp_max(0)


def _mass_step(shifts: torch.Tensor, empty: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """The in-place first step of a distribution kernel, ``step(block, shift, zero_mass)``: x − shift, then 1 for
    the maps of zero mass (the uniform distribution once normalised); each part skipped when no map of the batch
    needs it."""
    shifting, filling = bool((shifts != 0).any()), bool(empty.any())

    def step(block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor) -> None:
        if shifting:
            block.sub_(shift)
        if filling:
            block.masked_fill_(zero_mass, 1.0)

    return step


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ a·b over the last dimension of two float64 tensors of the same shape (..., n) → (...): one BLAS dot per
    row, no (..., n) temporary. On the CPU through NumPy's ``matmul`` of (..., 1, n) by (..., n, 1), which calls the
    BLAS dot per row: measured 5–10× faster there than ``torch.bmm`` or ``torch.linalg.vector_norm`` on the 0.5 MB
    rows of a block, whose per-call cost dominated (issue 27)."""
    if a.device.type == "cpu":
        return torch.from_numpy(np.matmul(a.numpy()[..., None, :], b.numpy()[..., :, None])[..., 0, 0])
    lead = a.shape[:-1]
    return torch.bmm(a.reshape(-1, 1, a.shape[-1]), b.reshape(-1, b.shape[-1], 1)).view(lead)


def _log_(x: torch.Tensor) -> torch.Tensor:
    """Natural log in place of a float64 tensor; returns it. On the CPU through NumPy (its SIMD log: ~5× faster
    than torch's there, measured on the 0.5 MB blocks of :func:`_sums`, issue 27); elsewhere ``torch.log_``."""
    if x.device.type == "cpu":
        array = x.numpy()
        np.log(array, out=array)
        return x
    return x.log_()
