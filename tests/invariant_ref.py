"""Independent references for the normalized rule's importance-invariant step: the margin's
gradient flow dz/dtau = -h dloss(z) over tau in [0, s], integrated numerically by SciPy
(kernels/invariant.py uses closed forms and its own Runge-Kutta steps). Returns G with
z(s) = z(0) - h G."""
from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp


def margin_flow_gradient(loss: str, z0: float, y: float, s: float, h: float) -> float:
    if loss == "hinge":  # piecewise linear: z moves by y h per unit tau until y z = 1
        if y * z0 >= 1.0:
            return 0.0
        return -y * min(s, (1.0 - y * z0) / h)
    if loss == "logistic":
        f = lambda t, z: [h * y / (1.0 + np.exp(y * z[0]))]  # noqa: E731
    else:  # squared, (z - y)^2 / 2
        f = lambda t, z: [-h * (z[0] - y)]  # noqa: E731
    if h * s == 0.0:
        return s * -f(0, [z0])[0] / h if h else 0.0
    sol = solve_ivp(f, (0.0, s), [z0], method="LSODA", rtol=1e-12, atol=1e-14)
    return (z0 - sol.y[0, -1]) / h


def softmax_flow_gradient(z0: np.ndarray, y: int, s: float, h: np.ndarray) -> np.ndarray:
    def f(t, z):
        p = np.exp(z - z.max())
        p /= p.sum()
        p[y] -= 1.0
        return -h * p

    sol = solve_ivp(f, (0.0, s), z0, method="LSODA", rtol=1e-12, atol=1e-14)
    return np.where(h > 0, (z0 - sol.y[:, -1]) / np.where(h > 0, h, 1.0), 0.0)
