"""Per-coordinate update rules: each a small numba unit, inlined into the training kernels.

Every rule updates one coordinate ``p`` of the weights ``w`` from ``gx``, the gradient of
the example's (importance-weighted) loss with respect to that coordinate (``g * x_j``;
no regularization: each rule adds its own). Per-coordinate state lives in float32 arrays
``acc`` and ``aux`` of the weights' shape (memory-mapped files beside ``weights.npy``, named
in model.OPTIMIZER_STATE), or of length 0 where a rule keeps none (sgd: both, adagrad:
``aux``); float64 arithmetic, float32 storage.

sgd         w <- w (1 - eta l2) - eta gx                                   (no state)
adagrad     g' = gx + l2 w;  acc += g'^2;  w <- w - eta g' / sqrt(beta + acc)  (Duchi et al. 2011)
            beta (--initial-accumulator, 1 by default) is the accumulator's starting value,
            added at update time so that untouched state stays 0 (sparse on disk): without
            it a feature's first step is eta sign(g) whatever |g|, which lets the rare
            features of hashed click data swing hard on one example.
normalized  scale-invariant AdaGrad (in the spirit of VW's default, Ross et al. 2013):
            aux = max |x_j| seen (the feature's scale s; when it grows from s to s', w is
            multiplied by s / s'), u = (gx + l2 w) / s,
            acc += u^2;  w <- w - mult u / (s sqrt(acc)), where mult = eta sqrt(T / N),
            N / T = the importance-weighted mean over examples of sum_j (x_j / s_j)^2 (+1
            when an intercept is fitted):
            rescaling a feature by c rescales its learned weight by 1/c, and the step does
            not grow with the number of active features.
ftrl        FTRL-Proximal (McMahan et al. 2013), alpha = eta, beta, l1, l2 on the summed
            loss: sigma = (sqrt(n + gx^2) - sqrt(n)) / alpha;  z += gx - sigma w;
            n += gx^2 (n in acc, z in aux);  w = 0 if |z| <= l1, else
            -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2).  ``w`` is written after
            every update, so ``weights.npy`` is always the model (sparse when l1 > 0).

The intercept follows the same rule as a coordinate whose feature is always 1, without
regularization (``update_intercept``).
"""
from __future__ import annotations

import math

from numba import njit

SGD = 0
ADAGRAD = 1
NORMALIZED = 2
FTRL = 3
OPTIMIZER_IDS = {"sgd": SGD, "adagrad": ADAGRAD, "normalized": NORMALIZED, "ftrl": FTRL}
#: The intercept's state in the kernels' float64 ``bstate`` array (binary models; a softmax
#: model holds K of each of the first three, then N and T).
B_VALUE, B_ACC, B_AUX, NORM_N, NORM_T = range(5)


@njit(inline="always", cache=True)
def ftrl_weight(z, n, alpha, l1, l2, beta):
    """FTRL-Proximal's closed-form weight from its state."""
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / alpha + l2)


@njit(inline="always", cache=True)
def observe_scale(opt, w, aux, p, x):
    """``normalized`` only: widen coordinate p's scale to |x| (rescaling its weight); returns
    (x / scale)^2 (0 for the other rules), the example's contribution to N."""
    if opt != NORMALIZED:
        return 0.0
    ax = abs(x)
    s = aux[p]
    if ax > s:
        if s > 0.0:
            # The weight was learned for inputs up to s: shrink it so that w x stays on
            # the scale it had (VW's normalized rescaling); keeps the rule scale-invariant.
            w[p] = w[p] * (s / ax)
        aux[p] = ax
        s = ax
    if s > 0.0:
        r = x / s
        return r * r
    return 0.0


@njit(inline="always", cache=True)
def update_coordinate(opt, w, acc, aux, p, gx, eta, mult, l1, l2, beta):
    """Apply optimizer ``opt`` to coordinate p of ``w`` (see the module docstring)."""
    wp = float(w[p])
    if opt == SGD:
        w[p] = wp * (1.0 - eta * l2) - eta * gx
    elif opt == ADAGRAD:
        g = gx + l2 * wp
        a = acc[p] + g * g
        acc[p] = a
        if beta + a > 0.0:
            w[p] = wp - eta * g / math.sqrt(beta + a)
    elif opt == NORMALIZED:
        s = float(aux[p])
        if s > 0.0:
            u = (gx + l2 * wp) / s
            a = acc[p] + u * u
            acc[p] = a
            if a > 0.0:
                w[p] = wp - mult * u / (s * math.sqrt(a))
    else:  # FTRL
        n = float(acc[p])
        n_new = n + gx * gx
        sigma = (math.sqrt(n_new) - math.sqrt(n)) / eta
        z = float(aux[p]) + gx - sigma * wp
        aux[p] = z
        acc[p] = n_new
        w[p] = ftrl_weight(z, n_new, eta, l1, l2, beta)


@njit(inline="always", cache=True)
def update_intercept(opt, b, b_acc, b_aux, g, eta, mult, beta):
    """The intercept's update (feature always 1, never regularized); returns (b, b_acc, b_aux)."""
    if opt == SGD:
        return b - eta * g, b_acc, b_aux
    if opt == ADAGRAD:
        a = b_acc + g * g
        if beta + a > 0.0:
            b = b - eta * g / math.sqrt(beta + a)
        return b, a, b_aux
    if opt == NORMALIZED:
        a = b_acc + g * g
        if a > 0.0:
            b = b - mult * g / math.sqrt(a)
        return b, a, b_aux
    n_new = b_acc + g * g
    sigma = (math.sqrt(n_new) - math.sqrt(b_acc)) / eta
    z = b_aux + g - sigma * b
    return ftrl_weight(z, n_new, eta, 0.0, 0.0, beta), n_new, z
