"""Pictures: image grids (Pillow) and training curves (Matplotlib, no display needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_write_bytes


def grid_array(
    images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one uint8 array (rows*H', cols*W', C).

    ``nrow`` images per row (default: about sqrt(N)); C is 1 (grey) or 3 (RGB).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.detach().float().clamp(0, 1).cpu().numpy()
    n, c, h, w = x.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, np.float32
    )
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        out[:, top : top + h, left : left + w] = x[i]
    return (out.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def grid_image(images: torch.Tensor, nrow: int | None = None, scale: int = 2) -> Image.Image:
    """A Pillow image of the grid, enlarged ``scale`` times with nearest-neighbour pixels."""
    arr = grid_array(images, nrow)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(
    images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2
) -> Path:
    """Write a grid of images (N, C, H, W) in [0, 1] to a PNG atomically."""
    return atomic_write_bytes(path, png_bytes(grid_image(images, nrow, scale)))


def curves_png(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """A line plot of (label, xs, ys) series as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for label, xs, ys in series:
        ax.plot(xs, ys, label=label, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def scatter_png(
    samples: torch.Tensor, reference: torch.Tensor | None = None, title: str = ""
) -> bytes:
    """A scatter plot of 2-D points (N, 2), over ``reference`` points (grey) if given."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if reference is not None:
        r = reference.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="data")
    p = samples.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:blue", label="samples")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def samples_png(
    samples: torch.Tensor, nrow: int | None = None, reference: torch.Tensor | None = None
) -> bytes:
    """PNG of samples: a grid for images (N, C, H, W), a scatter for 2-D points (N, 2)."""
    if samples.dim() == 2 and samples.shape[1] == 2:
        return scatter_png(samples, reference)
    return png_bytes(grid_image(samples, nrow))


def save_samples(
    samples: torch.Tensor,
    path: str | Path,
    nrow: int | None = None,
    reference: torch.Tensor | None = None,
) -> Path:
    """Write :func:`samples_png` atomically."""
    return atomic_write_bytes(path, samples_png(samples, nrow, reference))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] -> uint8 array (N, C, H, W), rounded."""
    return (images.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def save_image_files(images: torch.Tensor, folder: str | Path) -> Path:
    """One PNG per image (N, C, H, W) in [0, 1]: FOLDER/000000.png, ... (what clean-fid and
    torch-fidelity read), each written atomically; the folder is made."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = to_uint8(images)
    digits = max(6, len(str(len(arrays) - 1)))
    for i, arr in enumerate(arrays):
        img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
        atomic_write_bytes(folder / f"{i:0{digits}d}.png", png_bytes(img))
    return folder
