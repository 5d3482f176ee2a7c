"""Per-coordinate update rules: each a small numba unit, inlined into the training kernels.

Every rule updates one coordinate ``p`` of the weights ``w`` from ``gx``, the gradient of
the example's (importance-weighted) loss with respect to that coordinate (``g * x_j``;
no regularization: each rule adds its own). Per-coordinate state lives in float32 arrays
``acc`` and ``aux`` of the weights' shape (memory-mapped files beside ``weights.npy``, named
in model.OPTIMIZER_STATE; normalized vector models: strided fields of the (w, acc, scale)
records in ``weights.npy``, model/directory.py), or of length 0 where a rule keeps none
(sgd: both, adagrad: ``aux``); float64 arithmetic, float32 storage.

sgd         w <- w (1 - eta l2) - eta gx                                   (no state)
adagrad     g' = gx + l2 w;  acc += g'^2;  w <- w - eta g' / sqrt(beta + acc)  (Duchi et al. 2011)
            beta (--initial-accumulator, 1 by default) is the accumulator's starting value,
            added at update time so that untouched state stays 0 (sparse on disk): without
            it a feature's first step is eta sign(g) whatever |g|, which lets the rare
            features of hashed click data swing hard on one example.
normalized  scale-free adaptive updates (the default), in the spirit of Vowpal Wabbit's
            default (adaptive, normalized, importance-invariant: Ross, Mineiro & Langford,
            UAI 2013; Karampatziakis & Langford, UAI 2011). Each coordinate works in
            normalized units: s_j = max |x_j| seen (``aux``), x~_j = x_j / s_j in [-1, 1],
            v_j = w_j s_j. When s_j grows, w_j is multiplied by s_old / s_new (v is kept) and
            acc_j by its square (acc stays a sum of (g x / s)^2 at the current scale).
            With g the loss derivative per unit importance weight and s_i the weight:
                r_j = 1 / sqrt(beta + acc_j)   (acc_j before this example)
                mult = eta sqrt(T / N),  N += s_i (sum_j x~_j^2 + 1),  T += s_i
                h = mult (sum_j r_j x~_j^2 + r_b)        (the row's margin change per unit step)
                G = the importance-invariant step (kernels/invariant.py): the margin moves by
                    -h G, the solution of dz/dtau = -h dloss(z) over tau in [0, s_i], so a
                    large weight or many fresh features never overshoot the label
                v_j <- (v_j - mult G r_j x~_j) max(0, 1 - mult l2 s_i r_j)
                acc_j += s_i (g x~_j)^2
            The rates lag the accumulators by one example (revision 2, NORMALIZED_RULE):
            then r_j and h need no gradient, so the kernels sum h in the margin's pass and
            move each weight and its accumulator in one more, two passes over the row
            instead of three (the kernel alone 1.29x faster on two threads, 1.04-1.10x on
            one: benchmarks/default_speed.md). The invariant step still bounds the margin's
            move, and beta (1 by default) bounds a fresh coordinate's rate.
            beta (--initial-accumulator) damps the first steps of a coordinate in normalized
            units, so it damps rare features whatever their scale. (For the squared loss the
            caller passes eta sigma and beta sigma^2, sigma the target's scale: targets.py.) Multiplying feature j by
            c_j > 0 (training and test alike) multiplies s_j by c_j and leaves x~, acc, h, G
            and v unchanged: w_j becomes w_j / c_j and every prediction is the same, the L2
            term included (it penalizes v_j, the weight in normalized units); features that
            hashing puts in one slot share its scale, so there only the slot's scale is free.
            The intercept is a coordinate whose feature is always 1 (s = 1), never regularized.
ftrl        FTRL-Proximal (McMahan et al. 2013), alpha = eta, beta, l1, l2 on the summed
            loss: sigma = (sqrt(n + gx^2) - sqrt(n)) / alpha;  z += gx - sigma w;
            n += gx^2 (n in acc, z in aux);  w = 0 if |z| <= l1, else
            -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2).  ``w`` is written after
            every update, so ``weights.npy`` is always the model (sparse when l1 > 0).

The intercept follows the same rule as a coordinate whose feature is always 1, without
regularization (``update_intercept``; ``normalized_rate`` for the normalized rule).
"""
from __future__ import annotations

import math

from numba import njit

SGD = 0
ADAGRAD = 1
NORMALIZED = 2
FTRL = 3
OPTIMIZER_IDS = {"sgd": SGD, "adagrad": ADAGRAD, "normalized": NORMALIZED, "ftrl": FTRL}
#: The rules whose predictions do not depend on the features' scales (tests/test_scale_invariance.py).
SCALE_INVARIANT = frozenset({NORMALIZED})
#: The normalized rule's revision, in every checkpoint of a run that trains with it: 2 takes
#: the rates from the accumulators before the example, 1 (checkpoints without the key) took
#: them after adding its gradient. A run resumed under another revision is told so.
NORMALIZED_RULE = 2
#: The intercept's state in the kernels' float64 ``bstate`` array (binary models; a softmax
#: model holds K of each of the first three, then N and T).
B_VALUE, B_ACC, B_AUX, NORM_N, NORM_T = range(5)


@njit(inline="always", cache=True)
def ftrl_weight(z, n, alpha, l1, l2, beta):
    """FTRL-Proximal's closed-form weight from its state."""
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / alpha + l2)


# The normalized rule's units take and return scalars; the kernels read and write the arrays.
# (An inlined unit that takes arrays and writes them behind a branch costs the kernel a
# third of its speed: numba keeps the arrays' reference counting around it.)

@njit(inline="always", cache=True)
def inverse_scale(s):
    """1 / s, or 0 while a feature has only been 0."""
    return 1.0 / s if s > 0.0 else 0.0


@njit(inline="never", cache=True)
def widen_scale(w, acc, aux, base, n_cls, s, ax):
    """``normalized``, the rare path: the feature whose n_cls coordinates start at ``base``
    shows |x| = ax above its scale s. Each coordinate keeps v = w s (w *= s / ax) and its
    accumulator stays in units of (g x / s)^2 (acc *= (s / ax)^2); every coordinate holds the
    new scale (the kernels read the first). Not inlined: it keeps the hot loop small."""
    ratio = s / ax
    for c in range(n_cls):
        if s > 0.0:
            w[base + c] = w[base + c] * ratio
            acc[base + c] = acc[base + c] * (ratio * ratio)
        aux[base + c] = ax


@njit(inline="always", cache=True)
def normalized_rate(a, beta):
    """``normalized``: a coordinate's rate 1 / sqrt(beta + acc), from its accumulator before
    the example (0 while beta + acc is 0: beta 0 and nothing accumulated yet)."""
    return 1.0 / math.sqrt(beta + a) if beta + a > 0.0 else 0.0


@njit(inline="always", cache=True)
def normalized_weight(wp, step, rate, q, shrink):
    """``normalized``: (w - step rate q) max(0, 1 - shrink rate), with step = mult G,
    q = x / s^2 and shrink = mult l2 s_i (the proximal L2 step on v = w s)."""
    wp = wp - step * rate * q
    if shrink != 0.0:
        wp *= max(0.0, 1.0 - shrink * rate)
    return wp


@njit(inline="always", cache=True)
def update_coordinate(opt, w, acc, aux, p, gx, eta, mult, l1, l2, beta):
    """Apply optimizer ``opt`` (sgd, adagrad or ftrl; normalized has its own units) to
    coordinate p of ``w`` (see the module docstring)."""
    wp = float(w[p])
    if opt == SGD:
        w[p] = wp * (1.0 - eta * l2) - eta * gx
    elif opt == ADAGRAD:
        g = gx + l2 * wp
        a = acc[p] + g * g
        acc[p] = a
        if beta + a > 0.0:
            w[p] = wp - eta * g / math.sqrt(beta + a)
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
    """The intercept's update under sgd, adagrad or ftrl (feature always 1, never
    regularized); returns (b, b_acc, b_aux)."""
    if opt == SGD:
        return b - eta * g, b_acc, b_aux
    if opt == ADAGRAD:
        a = b_acc + g * g
        if beta + a > 0.0:
            b = b - eta * g / math.sqrt(beta + a)
        return b, a, b_aux
    n_new = b_acc + g * g
    sigma = (math.sqrt(n_new) - math.sqrt(b_acc)) / eta
    z = b_aux + g - sigma * b
    return ftrl_weight(z, n_new, eta, 0.0, 0.0, beta), n_new, z
