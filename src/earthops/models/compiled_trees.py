"""Exact, fast batch prediction of fitted LightGBM classifiers (numba-compiled tree walks).

LightGBM scores one row at a time through every tree; on a map that is the whole cost. Here a
fitted booster is flattened once into arrays and scored by nogil numba kernels:

* every feature value becomes a bin code — how many of the model's split thresholds on that
  feature lie below it (NaN gets its own code). A split ``x <= threshold`` is then exactly
  ``code <= rank(threshold)``, so rows are small integer vectors and node tests are integer
  compares with LightGBM's own missing-value rules folded in per node;
* trees are walked tree by tree over blocks of rows (the tree stays in L1 cache) and the
  leaf values are summed per class in LightGBM's order, so raw scores are bitwise identical
  to ``Booster.predict(raw_score=True)``;
* :meth:`CompiledTrees.predict_labels` (class labels only) stops scoring a row once no
  remaining tree can change its best class (per-class sums of the remaining trees' smallest
  and largest leaves bound the final scores), with a safety margin far above rounding error.

Supported: numerical splits with ``None``/``NaN`` missing types, the ``binary`` and
``multiclass`` objectives. :func:`compile_lightgbm` returns ``None`` for anything else
(categorical splits, linear trees, zero-as-missing, other objectives) and callers keep
LightGBM's own ``predict``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numba import njit

from earthops.logs import get_logger

log = get_logger(__name__)

#: rows scored per tree pass (their codes stay in cache while a tree is walked over them)
BLOCK_ROWS = 16384
#: label pruning: first bound check after this fraction of the iterations, then every STEP
FIRST_CHECK = 0.2
CHECK_STEP = 4
#: absolute + relative slack on the bound test (float64 rounding of ~1e3 sums is ~1e-13)
_SLACK_ABS, _SLACK_REL = 1e-7, 1e-9
_MIN_ROWS_PER_THREAD = 2048
#: LightGBM's kZeroThreshold (the float 1e-35 as a double)
_ZERO = float(np.float32(1e-35))


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True)
def _encode(
    X: np.ndarray, edges: np.ndarray, edge_start: np.ndarray, nan_code: int, out: np.ndarray
) -> None:  # pragma: no cover - numba
    """Bin codes: number of split thresholds of the feature strictly below the value."""
    zero = _ZERO
    n, m = X.shape
    for r in range(n):
        for f in range(m):
            x = np.float64(X[r, f])
            if x != x:
                out[r, f] = nan_code
                continue
            if abs(x) <= zero:  # LightGBM drops |x| <= kZeroThreshold from a dense row: 0.0
                x = 0.0
            lo = edge_start[f]
            size = edge_start[f + 1] - lo
            if size == 0:
                out[r, f] = 0
                continue
            base = lo
            while size > 1:  # branch-free lower bound: the trip count depends on size only
                half = size >> 1
                base = base + half if edges[base + half] < x else base
                size -= half
            out[r, f] = base - lo + (edges[base] < x)


@njit(cache=True, nogil=True)
def _leaf(
    codes: np.ndarray,
    r: int,
    i: int,
    nan_code: int,
    nodes: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
) -> int:  # pragma: no cover - numba
    """Leaf index reached by row ``r`` from node ``i`` (``< 0``: the root is a leaf)."""
    while i >= 0:
        p = nodes[i]
        c = codes[r, p & 0xFFFF]
        go_left = c <= ((p >> 16) & 0xFFFF) or (c == nan_code and (p >> 32) & 1)
        i = left[i] if go_left else right[i]
    return ~i


@njit(cache=True, nogil=True)
def _decided(
    out: np.ndarray,
    r: int,
    rem_min: np.ndarray,
    rem_max: np.ndarray,
    it: int,
    slack_abs: float,
    slack_rel: float,
    offset: np.ndarray,
) -> bool:  # pragma: no cover - numba
    """Whether the remaining trees (iterations ``>= it``) cannot change row ``r``'s best class
    (the argmax of its scores plus the per-class ``offset``)."""
    k_out = out.shape[1]
    a = 0
    for k in range(1, k_out):
        if out[r, k] + offset[k] > out[r, a] + offset[a]:
            a = k
    low = out[r, a] + offset[a] + rem_min[it, a]
    for k in range(k_out):
        if k != a:
            high = out[r, k] + offset[k] + rem_max[it, k]
            if low <= high + slack_abs + slack_rel * (abs(low) + abs(high)):
                return False
    return True


@njit(cache=True, nogil=True)
def _raw(
    codes: np.ndarray,
    nan_code: int,
    nodes: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    roots: np.ndarray,
    leaf_values: np.ndarray,
    n_out: int,
    block: int,
    rem_min: np.ndarray,
    rem_max: np.ndarray,
    first_check: int,
    step: int,
    slack_abs: float,
    slack_rel: float,
    offset: np.ndarray,
    out: np.ndarray,
    done: np.ndarray,
) -> None:  # pragma: no cover - numba
    """Raw scores ``out (n, n_out)`` (zeros on entry), summed in LightGBM's tree order.

    From iteration ``first_check`` on (every ``step``), a row stops (``done[r]``) once its best
    class (the argmax of scores + ``offset``) is settled; ``first_check >= n_iter`` scores
    every row in full.
    ``rem_min/rem_max[it, k]``: sums over iterations ``>= it`` of class ``k``'s smallest and
    largest leaf values. Rows not ``done`` get their complete raw scores.
    """
    n = codes.shape[0]
    n_iter = roots.size // n_out
    active = np.empty(block, np.int64)
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        n_active = b1 - b0
        for j in range(n_active):
            active[j] = b0 + j
        for it in range(n_iter):
            if it >= first_check and (it - first_check) % step == 0:
                kept = 0
                for j in range(n_active):
                    r = active[j]
                    if _decided(out, r, rem_min, rem_max, it, slack_abs, slack_rel, offset):
                        done[r] = True
                    else:
                        active[kept] = r
                        kept += 1
                n_active = kept
                if n_active == 0:
                    break
            for k in range(n_out):
                t = it * n_out + k
                root = roots[t]
                for j in range(n_active):
                    r = active[j]
                    out[r, k] += leaf_values[_leaf(codes, r, root, nan_code, nodes, left, right)]


@njit(cache=True, nogil=True)
def _softmax(raw: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    """LightGBM's softmax (max-shifted, summed in class order), row by row."""
    n, k = raw.shape
    for r in range(n):
        wmax = raw[r, 0]
        for j in range(1, k):
            wmax = max(raw[r, j], wmax)
        wsum = 0.0
        for j in range(k):
            out[r, j] = np.exp(raw[r, j] - wmax)
            wsum += out[r, j]
        for j in range(k):
            out[r, j] /= wsum


# ------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class CompiledTrees:
    """A fitted LightGBM classifier as flat arrays (see the module docstring)."""

    edges: np.ndarray  # float64: each feature's sorted distinct thresholds, concatenated
    edge_start: np.ndarray  # int64 (n_features + 1): offsets into ``edges``
    nodes: np.ndarray  # int64: feature | threshold rank << 16 | NaN goes left << 32
    left: np.ndarray  # int32 child (>= 0 a node, < 0 ``~leaf``)
    right: np.ndarray  # int32
    roots: np.ndarray  # int32 root node of every tree (``~leaf`` for a one-leaf tree)
    leaf_values: np.ndarray  # float64
    leaf_min: np.ndarray  # float64 per tree
    leaf_max: np.ndarray  # float64 per tree
    n_out: int  # trees per iteration (classes; 1 for binary)
    sigmoid: float  # binary objective's sigmoid parameter

    @property
    def n_features(self) -> int:
        return int(self.edge_start.size - 1)

    @property
    def _code_dtype(self) -> type[np.unsignedinteger[Any]]:
        return np.uint8 if np.diff(self.edge_start).max(initial=0) < 255 else np.uint16

    def _chunks(self, n: int, n_threads: int) -> list[slice]:
        parts = max(1, min(n_threads, n // _MIN_ROWS_PER_THREAD))
        bounds = np.linspace(0, n, parts + 1).astype(np.int64)
        return [slice(int(a), int(b)) for a, b in pairwise(bounds)]

    def _run(self, fn: Any, n: int, n_threads: int) -> None:
        chunks = self._chunks(n, n_threads)
        if len(chunks) == 1:
            fn(chunks[0])
            return
        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(fn, chunks))

    def encode(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Bin codes ``(n, features)`` of a float matrix (NaN: the dtype's largest value)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (n, {self.n_features}) features, got {X.shape}")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        dtype = self._code_dtype
        codes = np.empty(X.shape, dtype=dtype)
        nan_code = int(np.iinfo(dtype).max)

        def run(s: slice) -> None:
            _encode(X[s], self.edges, self.edge_start, nan_code, codes[s])

        self._run(run, X.shape[0], n_threads)
        return codes

    def _scores(
        self, X: np.ndarray, n_threads: int, prune: bool, offset: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores and, with ``prune``, which rows stopped early (their best class, the
        argmax of scores + ``offset``, settled)."""
        codes = self.encode(X, n_threads)
        nan_code = int(np.iinfo(codes.dtype).max)
        n, n_iter = codes.shape[0], self.roots.size // self.n_out
        out = np.zeros((n, self.n_out), dtype=np.float64)
        done = np.zeros(n, dtype=np.bool_)
        rem_min, rem_max = self._remaining()
        first = int(np.ceil(FIRST_CHECK * n_iter)) if prune else n_iter
        offset = np.zeros(self.n_out) if offset is None else np.asarray(offset, dtype=np.float64)

        def run(s: slice) -> None:
            _raw(
                codes[s], nan_code, self.nodes, self.left, self.right, self.roots,
                self.leaf_values, self.n_out, BLOCK_ROWS, rem_min, rem_max, first, CHECK_STEP,
                _SLACK_ABS, _SLACK_REL, offset, out[s], done[s],
            )  # fmt: skip

        self._run(run, n, n_threads)
        return out, done

    def raw_score(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Raw scores ``(n, trees per iteration)``, bitwise equal to LightGBM's."""
        return self._scores(X, n_threads, prune=False)[0]

    def _proba(self, raw: np.ndarray) -> np.ndarray:
        if self.n_out == 1:  # binary: LightGBM's sigmoid, then sklearn's two columns
            p = 1.0 / (1.0 + np.exp(-self.sigmoid * raw[:, 0]))
            return np.column_stack([1.0 - p, p])
        out = np.empty_like(raw)
        _softmax(raw, out)
        return out

    def predict_proba(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Class probabilities ``(n, classes)`` as ``LGBMClassifier.predict_proba``."""
        return self._proba(self.raw_score(X, n_threads))

    def predict_index(
        self, X: np.ndarray, n_threads: int = 1, class_weight: np.ndarray | None = None
    ) -> np.ndarray:
        """Index of the most probable class per row, equal to ``argmax(predict_proba)`` —
        or to ``argmax(predict_proba * class_weight)`` (a prior correction) when given.

        Rows stop being scored once their best class is settled (see the module docstring);
        a weight is a per-class offset ``log(weight)`` on the raw scores there. The rest get
        full scores and LightGBM's probabilities.
        """
        weight = None if class_weight is None else np.asarray(class_weight, dtype=np.float64)
        if self.n_out == 1:  # one score per row: nothing to prune against
            proba = self.predict_proba(X, n_threads)
            return np.argmax(proba if weight is None else proba * weight, axis=1)
        offset = None
        if weight is not None:
            with np.errstate(divide="ignore"):  # weight 0: log -inf, never the best class
                offset = np.log(weight)
        out, done = self._scores(X, n_threads, prune=True, offset=offset)
        best = np.argmax(out if offset is None else out + offset, axis=1)
        full = ~done
        if full.any():
            proba = self._proba(out[full])
            best[full] = np.argmax(proba if weight is None else proba * weight, axis=1)
        return best

    def _remaining(self) -> tuple[np.ndarray, np.ndarray]:
        """Suffix sums over iterations of each class's smallest/largest leaf values."""
        shape = (self.roots.size // self.n_out, self.n_out)
        lo, hi = self.leaf_min.reshape(shape), self.leaf_max.reshape(shape)
        rem_min = np.zeros((shape[0] + 1, shape[1]))
        rem_max = np.zeros((shape[0] + 1, shape[1]))
        rem_min[:-1] = np.cumsum(lo[::-1], axis=0)[::-1]
        rem_max[:-1] = np.cumsum(hi[::-1], axis=0)[::-1]
        return rem_min, rem_max


# ---------------------------------------------------------------------------- compiler
class _Unsupported(Exception):
    pass


_MISSING = {0: "None", 1: "Zero", 2: "NaN"}


def _objective(header: dict[str, str]) -> tuple[int, float]:
    """``(trees per iteration, sigmoid)`` of a supported objective, else :class:`_Unsupported`."""
    objective = header.get("objective", "").split()
    name = objective[0] if objective else ""
    n_out = int(header["num_tree_per_iteration"])
    if name == "multiclass" and n_out >= 2:
        return n_out, 1.0
    if name == "binary" and n_out == 1:
        sigmoid = [float(p.split(":")[1]) for p in objective[1:] if p.startswith("sigmoid:")]
        return 1, sigmoid[0] if sigmoid else 1.0
    raise _Unsupported(f"objective {' '.join(objective) or '?'}")


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """LightGBM's model text: the header's and every tree's ``key=value`` lines."""
    body = text.split("end of trees", 1)[0]
    parts = body.split("\nTree=")
    parse = [
        dict(line.split("=", 1) for line in part.splitlines() if "=" in line) for part in parts
    ]
    return parse[0], parse[1:]


def _array(tree: dict[str, str], key: str, dtype: type) -> np.ndarray:
    return np.array(tree[key].split(), dtype=dtype) if tree.get(key) else np.zeros(0, dtype)


def _flatten(text: str) -> CompiledTrees:
    """Flat arrays from LightGBM's model text (its own node layout, children ``~leaf``)."""
    header, trees = _sections(text)
    n_out, sigmoid = _objective(header)
    n_features = int(header["max_feature_idx"]) + 1
    feats, thrs, decisions, lefts, rights, leaves = [], [], [], [], [], []
    roots, n_nodes, n_leaves = [], 0, 0
    for tree in trees:
        if int(tree.get("num_cat", "0")) > 0:
            raise _Unsupported("categorical splits")
        if int(tree.get("is_linear", "0")):
            raise _Unsupported("linear trees")
        leaf = _array(tree, "leaf_value", np.float64)
        feat = _array(tree, "split_feature", np.int64)
        left, right = _array(tree, "left_child", np.int64), _array(tree, "right_child", np.int64)
        # children: internal nodes shift by the nodes so far, leaves (~j) by the leaves so far
        lefts.append(np.where(left >= 0, left + n_nodes, left - n_leaves))
        rights.append(np.where(right >= 0, right + n_nodes, right - n_leaves))
        roots.append(n_nodes if feat.size else ~n_leaves)
        feats.append(feat)
        thrs.append(_array(tree, "threshold", np.float64))
        decisions.append(_array(tree, "decision_type", np.int64))
        leaves.append(leaf)
        n_nodes += feat.size
        n_leaves += leaf.size
    if not trees or len(trees) % n_out:
        raise _Unsupported(f"{len(trees)} trees for {n_out} per iteration")
    feat, thr = np.concatenate(feats), np.concatenate(thrs)
    decision = np.concatenate(decisions)
    missing = (decision >> 2) & 3
    if np.any(decision & 1):
        raise _Unsupported("categorical splits")
    if np.any(missing == 1):
        raise _Unsupported("zero-as-missing splits")
    if n_features > 0xFFFF:
        raise _Unsupported(f"{n_features} features")
    edges = [np.unique(thr[feat == f]) for f in range(n_features)]
    if max(e.size for e in edges) >= 65535:
        raise _Unsupported("more than 65534 thresholds on one feature")
    edge_start = np.concatenate([[0], np.cumsum([e.size for e in edges])]).astype(np.int64)
    rank = np.zeros(feat.size, dtype=np.int64)
    for f in range(n_features):
        at = feat == f
        rank[at] = np.searchsorted(edges[f], thr[at])
    # NaN: default direction for NaN-type splits; otherwise LightGBM compares 0.0
    nan_left = np.where(missing == 2, (decision >> 1) & 1, thr >= 0.0).astype(np.int64)
    leaf_values = np.concatenate(leaves)
    bounds = np.cumsum([0, *(v.size for v in leaves)])
    return CompiledTrees(
        edges=np.concatenate([np.zeros(0), *edges]),
        edge_start=edge_start,
        nodes=feat | (rank << 16) | (nan_left << 32),
        left=np.concatenate(lefts).astype(np.int32),
        right=np.concatenate(rights).astype(np.int32),
        roots=np.asarray(roots, dtype=np.int32),
        leaf_values=leaf_values,
        leaf_min=np.minimum.reduceat(leaf_values, bounds[:-1]),
        leaf_max=np.maximum.reduceat(leaf_values, bounds[:-1]),
        n_out=n_out,
        sigmoid=sigmoid,
    )


def compile_lightgbm(booster: Any) -> CompiledTrees | None:
    """Compile a fitted ``lightgbm.Booster`` (its best iteration, as ``predict`` uses).

    Returns ``None`` (logged) for models outside the supported set; predict with LightGBM then.
    """
    try:
        return _flatten(booster.model_to_string())
    except _Unsupported as exc:
        log.info("compiled_trees.unsupported", reason=str(exc))
        return None
