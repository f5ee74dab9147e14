"""Pictures: image grids (Pillow) and training curves (Matplotlib, no display needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Captions:
    """What a standalone grid says about itself: a ``title`` above it, a label left of each
    row (``rows`` repeat when shorter than the grid: ("input", "reconstruction") labels
    alternating rows) and one above each column (``columns``)."""

    title: str = ""
    rows: Sequence[str] = ()
    columns: Sequence[str] = ()


def labelled_grid(
    images: torch.Tensor, nrow: int | None = None, captions: Captions | None = None, scale: int = 2
) -> Image.Image:
    """:func:`grid_image` with the ``captions`` drawn around it in black on white (Pillow's
    built-in font): the title wrapped to the grid's width, row labels in a left margin,
    column labels in a header. Without captions, the bare grid."""
    from PIL import ImageDraw, ImageFont

    grid = grid_image(images, nrow, scale)
    if captions is None or not (captions.title or captions.rows or captions.columns):
        return grid
    font = ImageFont.load_default(size=11)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    width = lambda text: measure.textlength(text, font=font)
    line = 14
    cols = nrow or max(1, math.ceil(math.sqrt(len(images))))
    n_rows = max(1, math.ceil(len(images) / cols))
    row_labels = (
        [captions.rows[i % len(captions.rows)] for i in range(n_rows)] if captions.rows else []
    )
    left = int(max((width(t) for t in row_labels), default=0)) + (8 if row_labels else 0)
    total_width = left + grid.width
    title_lines = _wrap(captions.title, total_width - 8, width) if captions.title else []
    header = line * len(title_lines) + (line if captions.columns else 0) + (4 if title_lines else 0)
    out = Image.new(
        grid.mode if grid.mode == "RGB" else "L", (total_width, header + grid.height), 255
    )
    out.paste(grid, (left, header))
    draw = ImageDraw.Draw(out)
    ink = (0, 0, 0) if out.mode == "RGB" else 0
    for i, text in enumerate(title_lines):
        draw.text((4, 2 + i * line), text, fill=ink, font=font)
    cell_h, cell_w = (grid.height - 2 * scale) / n_rows, (grid.width - 2 * scale) / cols
    for i, text in enumerate(captions.columns[:cols]):
        x = left + 2 * scale + (i + 0.5) * cell_w - width(text) / 2
        draw.text((x, header - line), text, fill=ink, font=font)
    for r, text in enumerate(row_labels):
        y = header + 2 * scale + (r + 0.5) * cell_h - line / 2
        draw.text((left - 4 - width(text), y), text, fill=ink, font=font)
    return out


def _wrap(text: str, limit: float, width: Callable[[str], float]) -> list[str]:
    """``text`` in lines no wider than ``limit`` pixels (a word longer than that keeps its line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and width(f"{lines[-1]} {word}") <= limit:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    nrow: int | None = None,
    scale: int = 2,
    captions: Captions | None = None,
) -> Path:
    """Write a grid of images (N, C, H, W) in [0, 1] to a PNG atomically, with ``captions``
    drawn around it when given (:func:`labelled_grid`)."""
    return atomic_write_bytes(path, png_bytes(labelled_grid(images, nrow, captions, scale)))


def curves_png(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """A line plot of (label, xs, ys) series as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.4), dpi=100)  # the report's page width, 960 pixels
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
    samples: torch.Tensor,
    nrow: int | None = None,
    reference: torch.Tensor | None = None,
    scale: int = 2,
) -> bytes:
    """PNG of samples: a grid for images (N, C, H, W) enlarged ``scale`` times, a scatter
    for 2-D points (N, 2) over the ``reference`` data points (grey) when given."""
    if samples.dim() == 2 and samples.shape[1] == 2:
        return scatter_png(samples, reference)
    return png_bytes(grid_image(samples, nrow, scale))


def save_samples(
    samples: torch.Tensor,
    path: str | Path,
    nrow: int | None = None,
    reference: torch.Tensor | None = None,
    scale: int = 2,
) -> Path:
    """Write :func:`samples_png` atomically."""
    return atomic_write_bytes(path, samples_png(samples, nrow, reference, scale))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] -> uint8 array (N, C, H, W), rounded."""
    return (images.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def image_png(image: torch.Tensor, scale: int = 1) -> bytes:
    """One image (C, H, W) in [0, 1] as PNG bytes (grey for one channel, RGB for three),
    enlarged ``scale`` times with nearest-neighbour pixels and no border: pixel (y, x) is
    the block at (scale * y, scale * x)."""
    arr = to_uint8(image[None])[0].transpose(1, 2, 0)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return png_bytes(img)


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
