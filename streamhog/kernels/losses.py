"""Losses of a margin ``z`` against a target ``y``, each with its derivative d loss / d z.

Classification losses take ``y`` in {-1, +1} (``target`` maps {0, 1} labels there). Each is
a small numba unit, inlined into the training kernel, which selects one by id (a predictable
branch, cheaper than dispatch). streamhog/losses.py is the registry that says, by name, what
else each loss means (its labels, link and watched metric).
"""
from __future__ import annotations

import math

from numba import njit

LOGISTIC = 0
HINGE = 1
SQUARED = 2
HUBER = 3
LOSS_IDS = {"logistic": LOGISTIC, "hinge": HINGE, "squared": SQUARED, "huber": HUBER}


@njit(inline="always", cache=True)
def logistic_loss(z, y):
    """log(1 + exp(-y z)), stable for large |z|."""
    yz = y * z
    if yz > 18.0:
        return math.exp(-yz)
    if yz < -18.0:
        return -yz
    return math.log1p(math.exp(-yz))


@njit(inline="always", cache=True)
def logistic_dloss(z, y):
    """-y / (1 + exp(y z))."""
    yz = y * z
    if yz > 18.0:
        return -y * math.exp(-yz)
    if yz < -18.0:
        return -y
    return -y / (1.0 + math.exp(yz))


@njit(inline="always", cache=True)
def hinge_loss(z, y):
    """max(0, 1 - y z): the linear SVM."""
    return max(0.0, 1.0 - y * z)


@njit(inline="always", cache=True)
def hinge_dloss(z, y):
    return -y if y * z < 1.0 else 0.0


@njit(inline="always", cache=True)
def squared_loss(z, y):
    """(z - y)^2 / 2: least squares."""
    return 0.5 * (z - y) * (z - y)


@njit(inline="always", cache=True)
def squared_dloss(z, y):
    return z - y


@njit(inline="always", cache=True)
def huber_loss(z, y):
    """Huber (delta 1): (z - y)^2 / 2 within 1 of the target, |z - y| - 1/2 beyond: least
    squares that an outlier pulls on no harder than a unit."""
    r = abs(z - y)
    return 0.5 * r * r if r <= 1.0 else r - 0.5


@njit(inline="always", cache=True)
def huber_dloss(z, y):
    r = z - y
    return max(-1.0, min(1.0, r))


@njit(inline="always", cache=True)
def target(loss_id, label):
    """The target the loss compares margins with: a classification loss's label as -1 / +1
    ({0, 1} and {-1, +1} labels alike), any other loss's label as it is."""
    if loss_id == LOGISTIC or loss_id == HINGE:
        return 1.0 if label > 0.0 else -1.0
    return label


@njit(inline="always", cache=True)
def loss_and_dloss(loss_id, z, y):
    if loss_id == LOGISTIC:
        return logistic_loss(z, y), logistic_dloss(z, y)
    if loss_id == HINGE:
        return hinge_loss(z, y), hinge_dloss(z, y)
    if loss_id == HUBER:
        return huber_loss(z, y), huber_dloss(z, y)
    return squared_loss(z, y), squared_dloss(z, y)
