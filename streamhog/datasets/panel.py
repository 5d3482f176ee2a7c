"""Generators of the quality panel (benchmarks/quality.py): datasets of different shapes with
known generating models, deterministic and seeded, produced block by block.

Defaults are chosen by their worst case over a panel of datasets of different shapes, never
on one dataset (README, "Choosing the defaults"). Besides a9a, the Criteo sample, scikit-
learn's digits and the RCV1-shaped set of ``synthetic.py``, the panel holds:

text (``TextSpec``)  documents of a two-topic mixture: each token is drawn from a background
    Zipf–Mandelbrot law over the vocabulary, p(r) ∝ (r + q)^-a, or with probability
    ``topic_share`` from the document's class topic (a Zipf–Mandelbrot law over its own random
    subset of the vocabulary). Document lengths are log-normal. Values are the raw term
    counts (``values="counts"``: up to hundreds on long documents) or tf-idf rows of unit L2
    norm, ``(1 + ln tf) idf_j`` with ``idf_j = 1 + ln(1 / P(term j in a document))`` from the
    generating law (``values="tfidf"``). The Bayes posterior is a naive-Bayes log-odds,
    linear in the counts: :func:`text_bayes_logloss`.
binary (``BinarySpec``)  web-page-like binary keyword features of Zipf frequencies, labels from
    a sparse logistic model whose intercept is set for a rare positive class (3%).
mixed (``MixedSpec``)  numeric features (Gaussian and log-normal amounts) and binary ones,
    labels from a logistic model, then columns multiplied by 1000, 0.001 or 1 in turn:
    features on wildly different scales. ``target="regression"`` gives a real-valued target
    on a scale far from 1 instead (mean 50,000, from a linear model plus Gaussian noise).

Every ``*_batches(spec, rows_per_block, start_row, stop_row)`` yields SparseBatch blocks whose
content depends only on (seed, block number): train/test splits are row ranges of one stream.

>>> from streamhog.datasets.panel import TextSpec, text_batches
>>> spec = TextSpec(n_rows=200, vocabulary=5_000, seed=1)
>>> [b.n_rows for b in text_batches(spec, rows_per_block=128)]
[128, 72]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.batch import SparseBatch

_TOPIC_TAG, _BLOCK_TAG, _MODEL_TAG = 11, 12, 13


# -- text: a two-topic mixture, tf-idf or raw counts --------------------------------------------------

@dataclass(frozen=True)
class TextSpec:
    n_rows: int = 2_000
    vocabulary: int = 20_000
    zipf: float = 1.1             # a of the Zipf–Mandelbrot law (r + q)^-a
    mandelbrot: float = 2.7       # q
    doc_length: float = 120.0     # median tokens per document (log-normal)
    length_sigma: float = 0.6
    topic_words: int = 2_000      # size of each class topic's own vocabulary
    topic_share: float = 0.08     # probability that a token comes from the class topic
    positive_rate: float = 0.5
    values: str = "tfidf"         # "tfidf" (unit L2 rows) or "counts" (raw term counts)
    seed: int = 0


def _zipf_mandelbrot(n: int, a: float, q: float) -> np.ndarray:
    p = (np.arange(1, n + 1, dtype=np.float64) + q) ** -a
    return p / p.sum()


class _TextModel:
    """The generating law of a TextSpec: token distributions of the background and topics."""

    def __init__(self, spec: TextSpec):
        rng = np.random.default_rng([spec.seed, _TOPIC_TAG])
        v = spec.vocabulary
        perm = rng.permutation(v)  # background rank -> word id: frequent words spread over the ids
        self.background = np.zeros(v)
        self.background[perm] = _zipf_mandelbrot(v, spec.zipf, spec.mandelbrot)
        self.topics = []
        for _ in range(2):  # class 0, class 1: each its own words, ranked by their own law
            words = rng.choice(v, size=min(spec.topic_words, v), replace=False)
            t = np.zeros(v)
            t[words] = _zipf_mandelbrot(len(words), spec.zipf, spec.mandelbrot)
            self.topics.append(t)
        lam = spec.topic_share
        self.class_law = [(1 - lam) * self.background + lam * t for t in self.topics]
        self.cdfs = [np.cumsum(self.background), *(np.cumsum(t) for t in self.topics)]
        for c in self.cdfs:
            c /= c[-1]
        with np.errstate(divide="ignore"):
            self.log_ratio = np.log(self.class_law[1]) - np.log(self.class_law[0])
        self.log_ratio[~np.isfinite(self.log_ratio)] = 0.0  # never drawn by either class
        mean_len = spec.doc_length * np.exp(spec.length_sigma ** 2 / 2)
        p_tok = spec.positive_rate * self.class_law[1] + (1 - spec.positive_rate) * self.class_law[0]
        p_doc = -np.expm1(mean_len * np.log1p(-np.minimum(p_tok, 1 - 1e-12)))
        self.idf = 1.0 + np.log(1.0 / np.maximum(p_doc, 1e-300))


def _text_block(spec: TextSpec, model: _TextModel, k: int, r0: int, r1: int):
    """Rows r0..r1 of block k: (indptr, ids, counts, labels)."""
    rng = np.random.default_rng([spec.seed, _BLOCK_TAG, k])
    n = r1 - r0
    labels = (rng.random(n) < spec.positive_rate).astype(np.int64)
    lengths = np.maximum(1, np.round(rng.lognormal(np.log(spec.doc_length), spec.length_sigma, n))).astype(np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    u = rng.random(len(rows))
    from_topic = rng.random(len(rows)) < spec.topic_share
    words = np.searchsorted(model.cdfs[0], u)
    for c in (0, 1):
        pick = from_topic & (labels[rows] == c)
        words[pick] = np.searchsorted(model.cdfs[1 + c], u[pick])
    words = np.minimum(words, spec.vocabulary - 1)
    key, counts = np.unique(rows * spec.vocabulary + words, return_counts=True)
    rows, ids = np.divmod(key, spec.vocabulary)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, ids.astype(np.uint32), counts.astype(np.float64), labels


def text_batches(spec: TextSpec, rows_per_block: int = 65_536, start_row: int = 0, stop_row: int | None = None):
    """Yield the rows of a TextSpec dataset (labels -1/+1) as SparseBatch blocks."""
    model = _TextModel(spec)
    for k, r0, r1, (indptr, ids, counts, labels) in _blocks(spec, model, rows_per_block, start_row, stop_row):
        if spec.values == "counts":
            x = counts
        else:
            x = (1.0 + np.log(counts)) * model.idf[ids]
            norms = np.sqrt(np.add.reduceat(x * x, indptr[:-1]))
            x /= np.repeat(norms, np.diff(indptr))
        yield SparseBatch(indptr, ids, x.astype(np.float32), np.where(labels == 1, 1.0, -1.0).astype(np.float32),
                          source=f"text block {k}", row_start=r0)


def _blocks(spec, model, rows_per_block, start_row, stop_row):
    stop_row = spec.n_rows if stop_row is None else stop_row
    for k in range(start_row // rows_per_block, -(-stop_row // rows_per_block)):
        lo, hi = k * rows_per_block, min((k + 1) * rows_per_block, spec.n_rows)
        block = _text_block(spec, model, k, lo, hi)
        a, b = max(lo, start_row) - lo, min(hi, stop_row) - lo
        indptr, ids, counts, labels = block
        p, q = indptr[a], indptr[b]
        yield k, lo + a, lo + b, (indptr[a:b + 1] - p, ids[p:q], counts[p:q], labels[a:b])


def text_bayes_logloss(spec: TextSpec, start_row: int = 0, stop_row: int | None = None,
                       rows_per_block: int = 65_536) -> float:
    """Expected logloss of the true posterior on the rows (the best any learner can reach):
    log-odds = logit(positive_rate) + sum_j tf_j ln(P_1(j) / P_0(j))."""
    model = _TextModel(spec)
    prior = np.log(spec.positive_rate / (1 - spec.positive_rate))
    total, n = 0.0, 0
    for _, _, _, (indptr, ids, counts, _) in _blocks(spec, model, rows_per_block, start_row, stop_row):
        margin = prior + np.add.reduceat(counts * model.log_ratio[ids], indptr[:-1])
        total += float(_entropy(margin).sum())
        n += len(margin)
    return total / max(n, 1)


def _entropy(margin: np.ndarray) -> np.ndarray:
    """Expected logloss of a label drawn with P(+1) = sigmoid(margin), predicted with that P."""
    loss_pos, loss_neg = np.logaddexp(0.0, -margin), np.logaddexp(0.0, margin)
    return loss_pos * np.exp(-loss_pos) + loss_neg * np.exp(-loss_neg)


# -- binary keywords, a rare positive class ---------------------------------------------------------

@dataclass(frozen=True)
class BinarySpec:
    n_rows: int = 60_000
    n_features: int = 300
    positive_rate: float = 0.03
    max_frequency: float = 0.3    # the most frequent keyword's share of rows; the j-th: ∝ (j + 1)^-0.5
    informative: float = 0.3      # fraction of keywords with a non-zero true weight
    weight_scale: float = 2.0
    seed: int = 0


def _binary_model(spec: BinarySpec):
    rng = np.random.default_rng([spec.seed, _MODEL_TAG])
    freq = spec.max_frequency * (np.arange(spec.n_features) + 1.0) ** -0.5
    w = rng.normal(0.0, spec.weight_scale, spec.n_features) * (rng.random(spec.n_features) < spec.informative)
    # The intercept that gives the wanted positive rate, by bisection on a sample of rows.
    x = rng.random((20_000, spec.n_features)) < freq
    m = x @ w
    lo, hi = -30.0, 30.0
    for _ in range(60):
        b = (lo + hi) / 2
        lo, hi = (b, hi) if np.mean(1 / (1 + np.exp(-(m + b)))) < spec.positive_rate else (lo, b)
    return freq, w, (lo + hi) / 2


def binary_batches(spec: BinarySpec, rows_per_block: int = 65_536, start_row: int = 0, stop_row: int | None = None,
                   bayes: list | None = None):
    """Yield the rows (labels -1/+1, binary features: values None); ``bayes``, when given a
    list, receives each block's expected logloss sum of the true model."""
    freq, w, b0 = _binary_model(spec)
    stop_row = spec.n_rows if stop_row is None else stop_row
    for k in range(start_row // rows_per_block, -(-stop_row // rows_per_block)):
        lo, hi = k * rows_per_block, min((k + 1) * rows_per_block, spec.n_rows)
        rng = np.random.default_rng([spec.seed, _BLOCK_TAG, k])
        x = rng.random((hi - lo, spec.n_features)) < freq
        margin = x @ w + b0
        labels = np.where(rng.random(hi - lo) < 1 / (1 + np.exp(-margin)), 1.0, -1.0).astype(np.float32)
        a, z = max(lo, start_row) - lo, min(hi, stop_row) - lo
        x, labels, margin = x[a:z], labels[a:z], margin[a:z]
        rows, ids = np.nonzero(x)
        indptr = np.zeros(len(labels) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(labels)), out=indptr[1:])
        if bayes is not None:
            bayes.append(float(_entropy(margin).sum()))
        yield SparseBatch(indptr, ids.astype(np.uint32), None, labels, source=f"binary block {k}", row_start=lo + a)


# -- mixed scales: numeric and binary columns ×1000, ×0.001, ×1; or a regression target -------------

@dataclass(frozen=True)
class MixedSpec:
    n_rows: int = 30_000
    n_gaussian: int = 10
    n_amounts: int = 10           # log-normal positive amounts
    n_binary: int = 200           # Zipf-frequency flags
    scales: tuple = (1000.0, 0.001, 1.0)   # column j is multiplied by scales[j % len(scales)]
    target: str = "binary"        # "binary" (labels -1/+1, ~30% positive) or "regression"
    target_mean: float = 50_000.0
    target_scale: float = 10_000.0  # regression: y = mean + scale (x·w) + noise
    noise: float = 0.5            # regression: noise sd, in units of target_scale
    seed: int = 0


def mixed_batches(spec: MixedSpec, rows_per_block: int = 65_536, start_row: int = 0, stop_row: int | None = None,
                  bayes: list | None = None):
    """Yield the rows; ``bayes`` (a list) receives each block's expected loss sum of the true
    model (logloss, or the noise variance for regression)."""
    rng = np.random.default_rng([spec.seed, _MODEL_TAG])
    n_num = spec.n_gaussian + spec.n_amounts
    d = n_num + spec.n_binary
    freq = 0.2 * (np.arange(spec.n_binary) + 1.0) ** -0.7
    w = rng.normal(0.0, 1.0, d) / np.sqrt(np.r_[np.full(n_num, n_num / 2.0), np.full(spec.n_binary, 8.0)])
    scale = np.array(spec.scales, dtype=np.float64)[np.arange(d) % len(spec.scales)]
    stop_row = spec.n_rows if stop_row is None else stop_row
    for k in range(start_row // rows_per_block, -(-stop_row // rows_per_block)):
        lo, hi = k * rows_per_block, min((k + 1) * rows_per_block, spec.n_rows)
        brng = np.random.default_rng([spec.seed, _BLOCK_TAG, k])
        n = hi - lo
        num = np.hstack([brng.normal(size=(n, spec.n_gaussian)),
                         brng.lognormal(0.0, 1.0, (n, spec.n_amounts))])
        flags = brng.random((n, spec.n_binary)) < freq
        x = np.hstack([num, flags.astype(np.float64)])
        centred = x - np.r_[np.zeros(spec.n_gaussian), np.full(spec.n_amounts, np.exp(0.5)), freq]
        m = centred @ w
        if spec.target == "regression":
            y = spec.target_mean + spec.target_scale * (m + spec.noise * brng.normal(size=n))
            loss = np.full(n, 0.5 * (spec.noise * spec.target_scale) ** 2)
        else:
            m = 2.0 * m - 0.8
            y = np.where(brng.random(n) < 1 / (1 + np.exp(-m)), 1.0, -1.0)
            loss = _entropy(m)
        a, z = max(lo, start_row) - lo, min(hi, stop_row) - lo
        x, y, loss = x[a:z] * scale, y[a:z], loss[a:z]
        rows, ids = np.nonzero(x)
        indptr = np.zeros(len(y) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(y)), out=indptr[1:])
        if bayes is not None:
            bayes.append(float(loss.sum()))
        yield SparseBatch(indptr, ids.astype(np.uint32), x[rows, ids].astype(np.float32), y.astype(np.float32),
                          source=f"mixed block {k}", row_start=lo + a)
