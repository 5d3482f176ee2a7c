"""Importance-invariant steps (Karampatziakis & Langford, "Online importance weight aware
updates", UAI 2011), for the ``normalized`` rule (kernels/optimizers.py).

A gradient step of size tau on an example moves its margin by -h tau dloss(z), where h (the
rule's "prediction per unit update") is known before the step. An example of importance
weight s is treated as s infinitesimal steps on the same example: the margin follows

    dz/dtau = -h dloss(z(tau)),   tau in [0, s],

and the step actually applied is the one that lands on z(s): G = (z(0) - z(s)) / h, in place
of the plain s dloss(z(0)). For s h small the two agree; for a large weight, or a row of
many fresh features (h large), the plain step would overshoot the label, this one never
does. Closed forms for the binary losses (y in {-1, +1}; squared: any target):

    squared   (z - y)^2 / 2:   z(s) = y + (z - y) e^{-h s}
    logistic  log(1 + e^{-yz}): m = yz solves m + e^m = m0 + e^{m0} + h s  (a Lambert W: Halley's
              iteration on the move m - m0, Newton on m for very large steps)
    hinge     max(0, 1 - yz):   z moves by y h s until yz reaches 1
    huber     (delta 1):        r = z - y moves by -sign(r) h per unit weight while |r| > 1,
                                then decays as the squared loss's: r e^{-h s}

softmax has no closed form: its K margins are integrated with classical Runge-Kutta steps
(at most ``SOFTMAX_SUBSTEPS``), each class with its own h_k. Each is a small unit inlined into the kernels.
"""
from __future__ import annotations

import math

from numba import njit

from .losses import HINGE, HUBER, LOGISTIC

#: Below this s h the plain step is used (VW's threshold): the closed forms lose precision.
SMALL_STEP = 1e-6
#: Most Runge-Kutta steps of the softmax integration (accurate while h s <= 8; beyond, each
#: step moves the margins further, always towards the label's class).
SOFTMAX_SUBSTEPS = 32
_SOFTMAX_STEP = 0.25  # the wanted largest h_k dtau of one softmax step


#: Up to this u = hs / (1 + e^m0) (the explicit step, right of the solution) the logistic
#: solve works on the move d = m - m0 itself: Halley's iteration from the series start, one
#: expm1 call for most rows (none for a tiny u) where Newton on m took four to six exp calls
#: (and lost d's digits to m0's when the move was small next to the margin).
HALLEY_STEP = 2.0
#: Up to this u the series alone is the move to rounding (its next term is below u^6 / 6).
SERIES_ONLY = 1e-3
#: Halley stops after a step below this fraction of the move: the iterate is then off by
#: about its cube, 1e-11 of the move, far below the float32 weights' rounding.
HALLEY_DONE = 2e-4


@njit(inline="always", cache=True)
def _logistic_move(p, k, u):
    """d = m - m0 > 0 with m + e^m = m0 + e^m0 + hs, for u = hs p <= HALLEY_STEP, where
    p = 1 / (1 + e^m0) (the loss's |dloss|) and k = 1 - p. Divided by 1 + e^m0, the equation
    is g(d) = p d + k expm1(d) - u = 0: increasing and convex with its root in (0, u]. The
    start is the root's series, clamped into (0, u],

        d = u - k/2 u^2 + (k^2/2 - k/6) u^3 + (-5k^3/8 + 5k^2/12 - k/24) u^4
              + (7k^4/8 - 7k^3/8 + 5k^2/24 - k/120) u^5 + O(u^6)

    (the inversion of g's Taylor series): for u <= SERIES_ONLY it is the root to rounding;
    beyond, Halley's iteration converges cubically from it, mostly in one step (a third-order
    start took two: the training rows' u is typically 0.2-0.3)."""
    d = u * (1.0 + u * (-0.5 * k + u * (k * (0.5 * k - 1.0 / 6.0) + u * (
        k * (k * (5.0 / 12.0 - 0.625 * k) - 1.0 / 24.0)
        + u * k * (k * (k * (0.875 * k - 0.875) + 5.0 / 24.0) - 1.0 / 120.0)))))
    if not 0.0 < d <= u:
        d = u
    if u <= SERIES_ONLY:
        return d
    for _ in range(20):
        em1 = math.expm1(d)
        g = p * d + k * em1 - u
        g2 = k * (1.0 + em1)
        g1 = p + g2
        step = g * g1 / (g1 * g1 - 0.5 * g * g2)
        d -= step
        if abs(step) <= HALLEY_DONE * d:  # cubic convergence: d is now off by ~(step / d)^3 d
            break
    return d


@njit(inline="always", cache=True)
def _logistic_margin_after(m0, e0, hs):
    """m with m + e^m = m0 + e^m0 + hs (e0 = e^m0). Newton from the explicit step
    m0 + hs / (1 + e^m0), which lies right of the root (the flow slows as m grows) where f is
    convex and increasing: the iterates fall monotonically onto it, in 2-3 steps for a
    small hs."""
    c = m0 + e0 + hs
    m = m0 + hs / (1.0 + e0)
    if c > 1.0:  # log c is right of the root too (f(log c) = log c > 0): a huge hs never overflows e^m
        m = min(m, math.log(c))
    for _ in range(50):
        em = math.exp(m)
        d = (m + em - c) / (1.0 + em)
        m -= d
        if d <= 1e-12 * (1.0 + abs(m)):
            break
    return m


@njit(inline="always", cache=True)
def invariant_gradient(loss_id, z, y, d, s, h):
    """The importance-weighted gradient G that moves the margin z by -h G along the loss's
    gradient flow over weight s (see the module docstring); d is dloss(z, y); s * d when
    s h is tiny."""
    if d == 0.0 or not h * s > SMALL_STEP:
        return s * d
    if loss_id == LOGISTIC:
        m0 = y * z
        if m0 > 30.0:  # a step of at most h s e^-30: the plain one is exact to rounding
            return s * d
        p = abs(d)  # 1 / (1 + e^m0): the loss's own exp, not a second one
        if m0 > 18.0:  # the loss gives e^-m0 there (losses.logistic_dloss)
            p = p / (1.0 + p)
        if h * s * p <= HALLEY_STEP:
            # k = e^m0 / (1 + e^m0) = 1 - p, exact to rounding in absolute terms; where k is
            # small (a margin below -6.9: rare) both come from e^m0 for k's relative digits
            # (and below -18 the loss's p is 1 exactly).
            k = 1.0 - p
            if p >= 0.999:
                e0 = math.exp(m0)
                p = 1.0 / (1.0 + e0)
                k = e0 * p
            return -y * _logistic_move(p, k, h * s * p) / h
        return -y * (_logistic_margin_after(m0, math.exp(m0), h * s) - m0) / h
    if loss_id == HINGE:
        return -y * min(s, (1.0 - y * z) / h)
    if loss_id == HUBER:
        r0 = z - y
        a = abs(r0)
        if a > 1.0:
            reach = (a - 1.0) / h  # the weight that brings |r| down to 1 at unit slope
            if s <= reach:
                return math.copysign(s, r0)
            return (r0 - math.copysign(math.exp(-h * (s - reach)), r0)) / h
        return r0 * -math.expm1(-h * s) / h
    return (z - y) * -math.expm1(-h * s) / h  # squared


@njit(inline="always", cache=True)
def _softmax_direction(z, y, n_cls, out):
    """out = softmax(z) - onehot(y)."""
    zmax = z[0]
    for c in range(1, n_cls):
        zmax = max(zmax, z[c])
    total = 0.0
    for c in range(n_cls):
        out[c] = math.exp(z[c] - zmax)
        total += out[c]
    for c in range(n_cls):
        out[c] = out[c] / total - (1.0 if c == y else 0.0)


@njit(inline="always", cache=True)
def softmax_invariant_gradient(z, y, s, h, n_cls, grad, g_out, work):
    """Softmax: write into g_out the G_k that move each margin z_k by -h_k G_k along the
    gradient flow over weight s (classical Runge-Kutta steps, h_k dtau <= 0.25: relative error
    about 1e-5); ``grad`` holds softmax(z) - onehot(y) at z (per unit weight), ``work`` is
    scratch of 4K. z and grad are left unchanged."""
    hmax = 0.0
    for c in range(n_cls):
        hmax = max(hmax, h[c])
    if not hmax * s > SMALL_STEP:
        for c in range(n_cls):
            g_out[c] = s * grad[c]
        return
    n_sub = min(SOFTMAX_SUBSTEPS, max(1, int(math.ceil(hmax * s / _SOFTMAX_STEP))))
    dt = s / n_sub
    zc = work[:n_cls]
    zt = work[n_cls:2 * n_cls]
    d = work[2 * n_cls:3 * n_cls]
    total = work[3 * n_cls:4 * n_cls]
    for c in range(n_cls):
        zc[c] = z[c]
    for k in range(n_sub):
        for stage in range(4):
            if stage == 0:
                if k == 0:
                    for c in range(n_cls):
                        d[c] = grad[c]
                else:
                    _softmax_direction(zc, y, n_cls, d)
            else:
                _softmax_direction(zt, y, n_cls, d)
            weight = 1.0 if stage == 0 or stage == 3 else 2.0
            frac = 0.5 if stage < 2 else 1.0  # where the next stage evaluates: z + frac dt k
            for c in range(n_cls):
                kc = -h[c] * d[c]
                total[c] = (total[c] if stage else 0.0) + weight * kc
                zt[c] = zc[c] + frac * dt * kc
        for c in range(n_cls):
            zc[c] += dt / 6.0 * total[c]
    for c in range(n_cls):
        g_out[c] = (z[c] - zc[c]) / h[c] if h[c] > 0.0 else s * grad[c]
