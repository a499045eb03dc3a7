"""Perceptual hashes and near-duplicate groups: the same picture resized, recompressed or re-saved.

A 64-bit DCT hash (pHash: the signs of the lowest 8×8 frequencies of a 32×32 grey thumbnail
against their median) survives resizing and JPEG recompression. Unlike a difference hash its
bits are balanced, so images with flat backgrounds (digits, scans) do not all hash alike and
the candidate search stays fast. A candidate pair must also agree on an 8×8 colour thumbnail:
the hash ignores absolute colour, and two different digits may share one — on average and in
every cell (flat backgrounds make the average alike).

Candidate pairs are found by pigeonhole (multi-index hashing with one-bit probes), so only
images sharing most of a hash chunk are compared: about n²/8000 comparisons, not n².
Numpy only (torch for thumbnails of decoded training data): runs in worker processes too.
"""

from __future__ import annotations

import numpy as np

MAX_DISTANCE = 8  # bits of 64 that may differ in a near-duplicate pair
MAX_COLOR_GAP = 6.0  # mean absolute difference (0–255) of the 8×8 colour thumbnails
# and no cell of them further apart than this: on handwritten digits (flat backgrounds) different
# images agree on most cells, so the mean alone chained 424 of the bundled 5,000 MNIST digits into
# one "near-duplicate" group; a resized or JPEG-recompressed copy stays within 19 in every cell
# (measured: 200 copies at quality 70, 95th percentile 15), different digits differ by 32–80
MAX_CELL_GAP = 24.0
COMPARE_CELLS = 4_000_000  # candidate pairs looked at per step (bounded memory in crowded buckets)
THUMB = 32  # side of the grey thumbnail the hash is taken from
_BITS = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _dct_matrix(n: int = THUMB) -> np.ndarray:
    k = np.arange(n)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d[:8].astype(np.float32)  # only the 8 lowest frequencies are kept


_DCT8 = _dct_matrix()


def phash_bits(gray: np.ndarray) -> np.ndarray:
    """64-bit pHashes of grey thumbnails ``[n, 32, 32]`` as uint64 ``[n]``."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 3 or gray.shape[1:] != (THUMB, THUMB):
        raise ValueError(f"expected grey thumbnails of shape [n, {THUMB}, {THUMB}], got {list(gray.shape)}")
    low = (_DCT8 @ gray @ _DCT8.T).reshape(len(gray), 64)
    median = np.median(low[:, 1:], axis=1, keepdims=True)  # the DC term is left out of the median
    return ((low > median).astype(np.uint64) * _BITS).sum(axis=1, dtype=np.uint64)


def from_rgb32(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pHashes ``[n]``, colour thumbnails uint8 ``[n, 3, 8, 8]``) from RGB thumbnails ``[n, 32, 32, 3]``."""
    rgb = np.asarray(rgb, dtype=np.float32)
    colour = rgb.reshape(len(rgb), 8, 4, 8, 4, 3).mean(axis=(2, 4)).transpose(0, 3, 1, 2)
    return phash_bits(rgb @ _LUMA), np.rint(colour).astype(np.uint8)


def hash_images(images: np.ndarray, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(pHashes, colour thumbnails) of uint8 images ``[n, C, H, W]``: decoded training data,
    shrunk in torch a batch at a time (bounded float memory)."""
    import torch
    import torch.nn.functional as F

    hashes, colours = [np.zeros(0, np.uint64)], [np.zeros((0, 3, 8, 8), np.uint8)]
    for start in range(0, len(images), batch):
        x = torch.as_tensor(images[start:start + batch]).float()
        shrink = x.shape[2] >= THUMB and x.shape[3] >= THUMB
        x = F.interpolate(x, size=(THUMB, THUMB), mode="area" if shrink else "bilinear",
                          **({} if shrink else {"align_corners": False}))
        rgb = x.permute(0, 2, 3, 1).numpy()
        if rgb.shape[3] == 1:
            rgb = np.repeat(rgb, 3, axis=3)
        h, c = from_rgb32(rgb)
        hashes.append(h)
        colours.append(c)
    return np.concatenate(hashes), np.concatenate(colours)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1).astype(np.int64)


def near_pairs(hashes: np.ndarray, colours: np.ndarray, max_distance: int = MAX_DISTANCE,
               max_colour_gap: float = MAX_COLOR_GAP) -> np.ndarray:
    """Index pairs ``[m, 2]`` (i < j) of near-duplicates: hashes within ``max_distance`` bits and
    colour thumbnails within ``max_colour_gap`` on average.

    The hash is cut into ``ceil((max_distance + 1) / 2)`` chunks: a pair within ``max_distance``
    bits has a chunk differing in at most one bit, so each image looks up the images whose chunk
    equals its own or its own with one bit flipped (sorted keys, vectorised joins)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    colours = np.asarray(colours, dtype=np.float32).reshape(n, -1)
    chunks = (max_distance + 2) // 2
    width = -(-64 // chunks)
    found: list[np.ndarray] = []
    for k in range(chunks):
        low = k * width
        bits = min(width, 64 - low)
        key = ((hashes >> np.uint64(low)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        sizes = np.bincount(key, minlength=1 << bits)  # images per key value, and where they start
        firsts = np.cumsum(sizes) - sizes
        for probe in [key, *(key ^ (1 << b) for b in range(bits))]:
            found.extend(_join(firsts[probe], sizes[probe], order, hashes, colours, max_distance, max_colour_gap))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


def _join(left: np.ndarray, counts: np.ndarray, order: np.ndarray, hashes: np.ndarray, colours: np.ndarray,
          max_distance: int, max_colour_gap: float) -> list[np.ndarray]:
    """Pairs (as ``i * n + j`` codes) of every image ``i`` with the ``counts[i]`` images at
    ``order[left[i]:]`` (those whose key equals its probe)."""
    n = len(hashes)
    ends = np.cumsum(counts)
    out = []
    start = 0
    while start < n:  # slices of rows whose matches add up to at most COMPARE_CELLS
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + COMPARE_CELLS, "right")))
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            i = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            j = order[np.repeat(left[start:stop], c) + offsets]
            keep = i < j
            i, j = i[keep], j[keep]
            keep = popcount(hashes[i] ^ hashes[j]) <= max_distance
            i, j = i[keep], j[keep]
            if len(i):
                gap = np.abs(colours[i] - colours[j])
                keep = (gap.mean(axis=1) <= max_colour_gap) & (gap.max(axis=1) <= MAX_CELL_GAP)
                out.append(i[keep] * n + j[keep])
        start = stop
    return out


def group_ids(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of the pair graph: a group id per index (singletons get their own)."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(pairs, dtype=np.int64):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], dtype=np.int64)


def near_groups(hashes: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """A group id per image from its dHash and colour thumbnail: near-duplicates share one.

    Images with the same hash and nearly the same colours are merged before pairing, so a
    folder of 10,000 blank frames costs one comparison, not 10**8."""
    n = len(hashes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    colours = np.asarray(colours, dtype=np.float32).reshape(n, -1)
    key = np.concatenate([np.asarray(hashes, dtype=np.uint64).view(np.uint8).reshape(n, 8),
                          (colours // 16).clip(0, 15).astype(np.uint8)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    reps = group_ids(len(first), near_pairs(np.asarray(hashes, dtype=np.uint64)[first], colours[first]))
    return first[reps][inverse.reshape(-1)]


def near_duplicate_groups(images: np.ndarray) -> np.ndarray:
    """A group id per uint8 image ``[n, C, H, W]``: near-duplicates share one."""
    return near_groups(*hash_images(images))
