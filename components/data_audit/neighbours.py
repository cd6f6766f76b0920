"""Nearest neighbours by cosine similarity with faiss: exact up to `EXACT_MAX` vectors, then an
inverted-file index (sqrt(N) lists, k-means trained on a sample) searched in the features' first
`SEARCH_DIMS` principal components, so a search over 100k images stays far from an N^2 loop.
Candidates only are found there; their similarities are then computed on the full features."""

from __future__ import annotations

import math

import faiss
import numpy as np
from sklearn.decomposition import PCA

EXACT_MAX = 20_000  # up to this many indexed vectors a flat (exact) search is fast enough
PROBES = 8  # inverted lists searched per query: a near copy shares its source's list or a neighbour
SEARCH_DIMS = 128  # above EXACT_MAX, candidates are searched in this many principal components
PAIRS_AT_ONCE = 16_384
TRAIN_PER_LIST = 64  # k-means sample per list: enough to place the centroids, far below N


def normalized(features: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (a zero row stays zero): inner product is then cosine."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def build_index(vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    """An inner-product index over unit `vectors`: flat when few, IVF of sqrt(N) lists if many."""
    count, dim = vectors.shape
    if count <= EXACT_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(math.sqrt(count))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.max_points_per_centroid = TRAIN_PER_LIST
        index.train(vectors)
        index.nprobe = PROBES
    index.add(vectors)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and indices [Q, k] of each query's k nearest (index -1 where fewer exist)."""
    k = max(1, min(k, index.ntotal))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def search_space(unit: np.ndarray, seed: int = 0) -> np.ndarray:
    """Where candidates are searched: `unit` itself up to EXACT_MAX rows, above it the rows'
    first SEARCH_DIMS principal components (renormalized), a sixth of the work at 768 values."""
    if len(unit) <= EXACT_MAX or unit.shape[1] <= SEARCH_DIMS:
        return unit
    reduced = PCA(SEARCH_DIMS, svd_solver="randomized", random_state=seed).fit_transform(unit)
    return normalized(reduced)


def candidates(index_space: np.ndarray, query_space: np.ndarray, k: int, seed: int = 0
               ) -> np.ndarray:
    """[Q, k] indices into `index_space` of each query's k nearest there (-1 where fewer)."""
    if not len(index_space) or not len(query_space):
        return np.full((len(query_space), 0), -1, np.int64)
    return search(build_index(index_space, seed), query_space, k)[1]


def cosines(unit: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The exact cosine of each pair (left[i], right[i]) of unit rows, in chunks of
    PAIRS_AT_ONCE so the gathered rows stay small (all at once: 2 GB for 100k images' pairs)."""
    out = np.empty(len(left), np.float32)
    for start in range(0, len(left), PAIRS_AT_ONCE):
        part = slice(start, start + PAIRS_AT_ONCE)
        out[part] = np.einsum("ij,ij->i", unit[left[part]], unit[right[part]])
    return out


def similar_pairs(unit: np.ndarray, k: int, min_similarity: float, space: np.ndarray | None = None,
                  seed: int = 0) -> list[tuple[int, int, float]]:
    """Pairs (i < j) of `unit` rows with cosine >= `min_similarity`, each once, among each row's
    k nearest in `space` (default: `unit` itself)."""
    if len(unit) < 2:
        return []
    found = candidates(unit if space is None else space, unit if space is None else space,
                       k + 1, seed)
    rows = np.repeat(np.arange(len(unit)), found.shape[1])
    cols = found.ravel()
    valid = (cols >= 0) & (cols != rows)
    low = np.minimum(rows[valid], cols[valid])
    high = np.maximum(rows[valid], cols[valid])
    pairs = np.unique(np.stack([low, high], axis=1), axis=0)
    if not len(pairs):
        return []
    sims = cosines(unit, pairs[:, 0], pairs[:, 1])
    keep = sims >= min_similarity
    return [(int(i), int(j), float(s))
            for (i, j), s in zip(pairs[keep].tolist(), sims[keep].tolist(), strict=True)]
