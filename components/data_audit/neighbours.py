"""Nearest neighbours by cosine similarity with faiss: exact up to `EXACT_MAX` vectors, then an
inverted-file index, so a search over 100k images stays a matter of seconds, not an N^2 loop."""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_MAX = 20_000  # up to this many indexed vectors a flat (exact) search is fast enough
PROBES = 16  # inverted lists searched per query: near copies share a list, this is generous


def normalized(features: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (a zero row stays zero): inner product is then cosine."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def build_index(vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    """An inner-product index over unit `vectors`: flat when few, IVF of 4*sqrt(N) lists if many."""
    count, dim = vectors.shape
    if count <= EXACT_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        # faiss wants about 39 training points per list
        lists = min(int(4 * math.sqrt(count)), count // 39)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = PROBES
    index.add(vectors)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and indices [Q, k] of each query's k nearest (index -1 where fewer exist)."""
    k = max(1, min(k, index.ntotal))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def similar_pairs(vectors: np.ndarray, k: int, min_similarity: float
                  ) -> list[tuple[int, int, float]]:
    """Pairs (i < j) among `vectors` (unit rows) with cosine >= `min_similarity`, each once,
    found among each vector's k nearest."""
    if len(vectors) < 2:
        return []
    similarities, neighbours = search(build_index(vectors), vectors, k + 1)
    rows = np.repeat(np.arange(len(vectors)), similarities.shape[1])
    cols, sims = neighbours.ravel(), similarities.ravel()
    keep = (cols >= 0) & (cols != rows) & (sims >= min_similarity)
    low = np.minimum(rows[keep], cols[keep])
    high = np.maximum(rows[keep], cols[keep])
    pairs: dict[tuple[int, int], float] = {}
    for i, j, sim in zip(low.tolist(), high.tolist(), sims[keep].tolist(), strict=True):
        pairs[(i, j)] = max(pairs.get((i, j), -1.0), sim)
    return [(i, j, s) for (i, j), s in sorted(pairs.items())]
