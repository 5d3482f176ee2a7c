"""A model's head: what its loss makes of the weights (streamhog/losses.py says which head).

* :class:`VectorHead` — one weight per feature and one intercept (logistic, hinge, squared,
  ...): margins ``x·w + b``, predictions through the loss's link (a probability for
  logistic, the score otherwise), binary classification or regression metrics.
* :class:`SoftmaxHead` — K weights per feature, stored as an (n_features, K) matrix, and K
  intercepts: margins ``z_k = x·w_k + b_k``, class probabilities, multiclass metrics.

A head owns the intercept layout in the kernels' ``bstate`` (kernels/softmax.py), the
shape of the weights, the margins of a batch, predictions, the metric accumulator and the
columns of a predictions file: the rest of streamhog asks the head instead of branching on
the number of classes.
"""
from __future__ import annotations

import numpy as np

from ..losses import Loss, get_loss


def bstate_length(n_classes: int) -> int:
    """Length of the kernels' ``bstate``: K intercepts, K of each optimizer state, N and T
    (kernels/softmax.py; a vector head is K = 1: kernels/optimizers.B_VALUE ... NORM_T)."""
    return 3 * n_classes + 2


class VectorHead:
    """One output: a weight vector of n_features and one intercept."""

    n_classes = None
    n_outputs = 1

    def __init__(self, loss: Loss):
        self.loss = loss

    def weights_shape(self, n_features: int) -> tuple[int, ...]:
        return (n_features,)

    @property
    def bstate_length(self) -> int:
        return bstate_length(1)

    def initial_intercept(self):
        return 0.0

    def intercept_from_bstate(self, bstate) -> float:
        return float(bstate[0])

    def intercept_value(self, stored) -> float:
        """The intercept as model.json stores it, as the head uses it."""
        return float(stored)

    def margins(self, batch, w_flat: np.ndarray, intercept, out: np.ndarray | None = None) -> np.ndarray:
        """Margins (n_rows,) float64 of a batch."""
        from ..kernels.predict import batch_margins

        return batch_margins(batch, w_flat, intercept, out=out)

    def predictions(self, margins: np.ndarray) -> np.ndarray:
        """In place: the probability of the positive class for the logistic link, the score otherwise."""
        if self.loss.link == "logistic":
            from scipy.special import expit

            expit(margins, out=margins)  # stable sigmoid; ufuncs release the GIL
        return margins

    def accumulator(self):
        from .metrics import MetricAccumulator

        return MetricAccumulator(self.loss.name)

    def prediction_schema(self):
        import pyarrow as pa

        return pa.schema([pa.field("prediction", pa.float32(), nullable=False),
                          pa.field("label", pa.float32(), nullable=False)])

    @property
    def prediction_meaning(self) -> str:
        return "probability of the positive class" if self.loss.link == "logistic" else "score x.w + b"

    def prediction_columns(self, margins: np.ndarray) -> list[np.ndarray]:
        """The columns of a predictions file before ``label``, from a batch's margins."""
        return [self.predictions(margins).astype(np.float32)]


class SoftmaxHead:
    """K outputs: an (n_features, K) weight matrix, row-major (entry j * K + k), K intercepts."""

    n_outputs = property(lambda self: self.n_classes)

    def __init__(self, loss: Loss, n_classes: int):
        self.loss = loss
        self.n_classes = int(n_classes)

    def weights_shape(self, n_features: int) -> tuple[int, ...]:
        return (n_features, self.n_classes)

    @property
    def bstate_length(self) -> int:
        return bstate_length(self.n_classes)

    def initial_intercept(self):
        return [0.0] * self.n_classes

    def intercept_from_bstate(self, bstate) -> list[float]:
        return [float(b) for b in bstate[:self.n_classes]]

    def intercept_value(self, stored) -> np.ndarray:
        return np.asarray(stored, dtype=np.float64)

    def margins(self, batch, w_flat: np.ndarray, intercept, out: np.ndarray | None = None) -> np.ndarray:
        """Margins (n_rows, K) float64 of a batch; ValueError on a bad batch."""
        from ..kernels.predict import BAD_INDPTR, INDEX_OUT_OF_RANGE
        from ..kernels.softmax import softmax_margins

        k = self.n_classes
        out = np.empty((batch.n_rows, k), dtype=np.float64) if out is None else out
        values = batch.values if batch.values is not None else np.zeros(0, np.float32)
        code, row, pos = softmax_margins(batch.indptr, batch.indices, values, batch.values is not None, w_flat, k,
                                         np.ascontiguousarray(intercept, dtype=np.float64), out)
        if code == INDEX_OUT_OF_RANGE:
            raise ValueError(f"{batch.source or 'batch'}: row {row}: feature index {int(batch.indices[pos])} >= "
                             f"model n_features {len(w_flat) // k}")
        if code != 0:
            raise ValueError(f"{batch.source or 'batch'}: inconsistent row offsets or shapes (code {code})"
                             + ("" if code != BAD_INDPTR else ": indptr must have n_rows + 1 entries, never decrease"))
        return out

    def predictions(self, margins: np.ndarray) -> np.ndarray:
        """Class probabilities (n_rows, K)."""
        from ..kernels.softmax import softmax_probabilities

        return softmax_probabilities(margins)

    def accumulator(self):
        from .metrics import MulticlassAccumulator

        return MulticlassAccumulator(self.n_classes)

    def prediction_schema(self):
        import pyarrow as pa

        return pa.schema([pa.field("class", pa.int32(), nullable=False),
                          pa.field("probability", pa.float32(), nullable=False),
                          pa.field("label", pa.float32(), nullable=False)])

    prediction_meaning = "the most probable class and its probability"

    def prediction_columns(self, margins: np.ndarray) -> list[np.ndarray]:
        p = self.predictions(margins)
        best = p.argmax(axis=1)
        return [best.astype(np.int32), p[np.arange(len(best)), best].astype(np.float32)]


def head_for(loss: str | Loss, n_classes: int | None = None):
    """The head of a model of this loss (and K classes, for a softmax loss)."""
    loss = get_loss(loss) if isinstance(loss, str) else loss
    if loss.head == "softmax":
        if n_classes is None or int(n_classes) < 2:
            raise ValueError(f"the {loss.name} loss needs n_classes >= 2, got {n_classes!r}")
        return SoftmaxHead(loss, n_classes)
    if n_classes is not None:
        raise ValueError(f"the {loss.name} loss takes no n_classes (got {n_classes!r})")
    return VectorHead(loss)
