"""Skew of a scanned page by projection profiles in numpy (a module of its own: numpy is imported
when the first page is deskewed, not when `casework` starts)."""

from __future__ import annotations

import numpy as np
from PIL import Image

STRIPS = 24  # vertical strips of the probe, shifted against each other to try an angle
ROWS_GAIN = 1.05  # how much sharper than the page as it is the best angle must make the profile
# columns (a page on its side) must gain more: vertical strokes of slanted handwriting and ruled edges
# sharpen a column profile when sheared (a handwritten card read 3.75 degrees at 1.26x)
COLUMNS_GAIN = 1.5


def _ink_probe(image: Image.Image, probe_size: int) -> np.ndarray:
    """The page about ``probe_size`` pixels on its long side, as floats with ink bright and paper 0."""
    scale = probe_size / max(image.size)
    factor = max(1, int(1 / scale)) if scale < 1 else 1
    probe = image if image.mode == "L" else image.convert("L")
    if factor > 1:
        probe = probe.reduce(factor)  # box average: a bitonal page's text becomes grey, as a profile wants
    return 255.0 - np.asarray(probe, dtype=np.float32)


def _shear_scores(ink: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """How sharp the row profile of ``ink`` is when turned by each angle (degrees, counter-clockwise).

    For the few degrees searched, turning is taken as a shear: the page is cut into ``STRIPS``
    vertical strips, each strip's row sums are shifted by its distance from the middle times the
    tangent, and the shifted sums added. Sharpness: the sum of squared differences between
    neighbouring rows of the profile (text lines level make dark and light rows alternate sharply).
    """
    height, width = ink.shape
    strips = min(STRIPS, width)
    edges = np.linspace(0, width, strips + 1).astype(np.intp)
    sums = np.add.reduceat(ink, edges[:-1], axis=1) / width  # (height, strips): row means, strip by strip
    centres = (edges[:-1] + edges[1:]) / 2 - width / 2
    shifts = np.rint(np.tan(np.radians(angles))[:, None] * centres[None, :]).astype(np.intp)  # (angles, strips)
    # only the rows every strip reaches at every angle: a profile that ran off the page's edges would
    # see the edges of a grey background as steps, sharper than any text line
    margin = min(int(np.abs(shifts).max()), (height - 2) // 2)
    rows = np.arange(margin, height - margin)[None, :, None] + shifts[:, None, :]
    rows = np.clip(rows, 0, height - 1)
    profiles = sums[rows, np.arange(strips)[None, None, :]].sum(axis=2)  # (angles, rows)
    return np.asarray((np.diff(profiles, axis=1) ** 2).sum(axis=1), dtype=np.float64)


def _best_angle(ink: np.ndarray, search: float) -> tuple[float, float, float]:
    """(angle, its sharpness, the sharpness level as the page is) for the row profile of ``ink``."""
    coarse = np.arange(-int(search), int(search) + 1, dtype=np.float64)
    best = float(coarse[int(np.argmax(_shear_scores(ink, coarse)))])
    fine = np.array([0.0, *(best + d / 4 for d in range(-3, 4))])
    scores = _shear_scores(ink, fine)
    pick = 1 + int(np.argmax(scores[1:]))
    return float(fine[pick]), float(scores[pick]), float(scores[0])


def measure_skew(image: Image.Image, *, probe_size: int = 500, search: float = 5.0) -> float:
    """Angle (degrees, counter-clockwise, within +-``search``, to a quarter degree) that makes text
    lines level; 0.0 when none is clearly (``ROWS_GAIN``) sharper than the page as it is.

    Projection profiles on a copy of the page ``probe_size`` pixels long: rows for upright text,
    columns for a page on its side (the rows of the transposed copy, the angle's sign reversed).
    """
    ink = _ink_probe(image, probe_size)
    by_rows = _best_angle(ink, search)
    by_columns = _best_angle(np.ascontiguousarray(ink.T), search)
    # the sharper of the two at its best angle says which way the lines run; that best must beat the
    # same profile of the page as it is by the gain (it beats the other profile at every angle already)
    angle, score, level = by_rows if by_rows[1] >= by_columns[1] else (-by_columns[0], *by_columns[1:])
    gain = ROWS_GAIN if by_rows[1] >= by_columns[1] else COLUMNS_GAIN
    if level <= 0 or score < level * gain:
        return 0.0
    return round(angle, 2)
