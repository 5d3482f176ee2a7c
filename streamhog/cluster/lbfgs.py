"""Full-batch L-BFGS over the workers' partitions (DistBelief's Sandblaster, VW's AllReduce
L-BFGS): ``--sync-mode lbfgs``, and ``--polish lbfgs`` after SGD epochs.

The objective is

    F(w, b) = (1/n) sum_i s_i loss(x_i.w + b, y_i) + (l2/2) |w|^2

over the n training rows (the holdout's excluded), the intercept unpenalized: for the
logistic loss, scikit-learn's ``LogisticRegression(C=1/(n l2))`` (its sample weights
likewise). Each evaluation streams every worker's blocks once through the nogil kernel of
kernels/objective.py (out of core: a worker never holds its partition), the loss and the
sparse gradient are summed up the tree of workers (session.reduce), and the client takes
the step: the two-loop recursion over the last ``m`` correction pairs (Nocedal 1980) with a
backtracking (Armijo) line search. The iterate goes to the workers as its non-zeros, down
the tree. Each iteration is an epoch of the history (its objective, gradient norm,
evaluations and step) and ends with a checkpoint, so a killed run resumes at its last
iteration (with an empty curvature memory). The client holds O(m n_features) floats, as
VW's L-BFGS does.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ConfigError, WorkerLost
from ..training.run import TrainingRun
from . import worker as remote

#: Losses with a gradient everywhere (hinge has none at the margin; softmax: not here).
SMOOTH_LOSSES = ("logistic", "squared", "huber")


class DistributedObjective:
    """F and its gradient at a point, summed over the workers (see the module docstring)."""

    def __init__(self, run):
        self.owner = run
        self.session = run.session
        self.n = run.model.n_features
        self.l2 = run.cfg.l2
        self.evaluations = 0
        self.bytes = 0
        self.compute_s = 0.0
        self.wall_s = 0.0

    def __call__(self, x: np.ndarray):
        """(F, gradient, the data term's loss and weight sums) at x = (w, b)."""
        while True:
            try:
                return self._evaluate(x)
            except WorkerLost as exc:
                self.session.restart(self.owner.client_model(), str(exc))

    def _evaluate(self, x: np.ndarray):
        s, n = self.session, self.n
        start = time.perf_counter()
        point = remote.Point(x[:n], x[n])
        workers = s.workers
        first = s.client.scatter(point, workers=[workers[0]], broadcast=False, hash=False)
        copies = s.broadcast(first, workers)
        blocks = list(range(self.owner.dataset.n_blocks))
        leaves = [(w, s.submit(remote.loss_grad, s.run_id, copies[w], blocks[i::len(workers)], worker=w))
                  for i, w in enumerate(workers)]
        root = s.reduce(leaves, remote.add_grads)
        futures = [root] + [f for _, f in leaves] + list(copies.values())
        try:
            s.wait([root])
            part = root.result()
        except WorkerLost:
            s.cancel(futures)
            raise
        rows = max(part.rows, 1)
        w = x[:n]
        f = part.loss / rows + 0.5 * self.l2 * float(w @ w)
        g = np.zeros(n + 1)
        g[part.index] = part.values / rows
        g[:n] += self.l2 * w
        g[n] = part.g_intercept / rows
        self.evaluations += 1
        self.bytes += point.nbytes * len(workers) + part.moved + part.nbytes
        self.compute_s += max(part.compute_s)
        self.wall_s += time.perf_counter() - start
        return f, g, part


class LbfgsDriver:
    """L-BFGS iterations as the epochs of a ClusterRun (``phase``: "lbfgs" or "polish")."""

    def __init__(self, run, phase: str = "lbfgs"):
        loss = run.cfg.loss
        if loss not in SMOOTH_LOSSES:
            raise ConfigError(f"L-BFGS needs a smooth loss ({', '.join(SMOOTH_LOSSES)}); --loss {loss} is not")
        self.owner = run
        self.phase = phase
        self.objective = DistributedObjective(run)
        self.memory: list[tuple[np.ndarray, np.ndarray, float]] = []

    def _point(self) -> np.ndarray:
        n = self.owner.model.n_features
        x = np.zeros(n + 1)
        x[:n] = np.asarray(self.owner.engine.arrays.w, dtype=np.float64)
        x[n] = self.owner.bstate[0]
        return x

    def _write(self, x_old: np.ndarray, x: np.ndarray) -> None:
        """The iterate into the client's model (only coordinates that are or were non-zero:
        the weight file stays sparse)."""
        n = self.owner.model.n_features
        w = self.owner.engine.arrays.w
        idx = np.union1d(np.flatnonzero(x_old[:n]), np.flatnonzero(x[:n]))
        w[idx] = x[idx].astype(np.float32)
        self.owner.bstate[0] = x[n]

    def direction(self, g: np.ndarray) -> np.ndarray:
        """-H g by the two-loop recursion over the stored pairs (steepest descent, scaled, at first)."""
        q = -g.copy()
        alphas = []
        for s, y, rho in reversed(self.memory):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if self.memory:
            s, y, _ = self.memory[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(1.0, float(np.abs(g).max()))
        for (s, y, rho), a in zip(self.memory, reversed(alphas)):
            b = rho * float(y @ q)
            q += (a - b) * s
        return q

    def run(self, epochs: int) -> None:
        run, st, opts = self.owner, self.owner.state, self.owner.opts
        x = self._point()
        f, g, part = self.objective(x)
        while st.epoch < epochs:
            if run.signal_received is not None:
                run.checkpoint("interrupted")
                raise run.stopped_error()
            start = time.perf_counter()
            evals0 = self.objective.evaluations
            converged = float(np.abs(g).max()) <= opts.lbfgs_tol
            step = 0.0
            if not converged:
                d = self.direction(g)
                slope = float(g @ d)
                if slope >= 0:  # not a descent direction (rounding): forget the curvature
                    self.memory.clear()
                    d, slope = -g, -float(g @ g)
                step = 1.0
                for _ in range(40):
                    x_new = x + step * d
                    f_new, g_new, part_new = self.objective(x_new)
                    if f_new <= f + 1e-4 * step * slope:
                        break
                    step *= 0.5
                else:
                    converged = True  # no decrease along d within rounding: as good as it gets
                if not converged:
                    s_vec, y_vec = x_new - x, g_new - g
                    sy = float(s_vec @ y_vec)
                    if sy > 1e-12 * float(y_vec @ y_vec):
                        self.memory.append((s_vec, y_vec, 1.0 / sy))
                        del self.memory[:-opts.lbfgs_memory]
                    self._write(x, x_new)
                    converged = abs(f - f_new) <= 1e-14 * max(1.0, abs(f))
                    x, f, g, part = x_new, f_new, g_new, part_new
            self._end_iteration(f, g, part, step, start, self.objective.evaluations - evals0, converged, epochs)
            if converged:
                break

    def _end_iteration(self, f, g, part, step, start, evaluations, converged, epochs) -> None:
        run, st = self.owner, self.owner.state
        secs = time.perf_counter() - start
        st.epoch_rows, st.epoch_loss, st.epoch_weight = int(part.rows), part.loss, part.weight
        record = {"epoch": st.epoch + 1, "examples": int(part.rows), "nnz": 0, "lr": step,
                  "train_loss": part.loss / part.weight if part.weight else None, "seconds": round(secs, 4),
                  "examples_per_s": round(part.rows * max(evaluations, 1) / secs, 1) if secs else None,
                  "lbfgs": {"phase": self.phase, "objective": f, "grad_max": float(np.abs(g).max()),
                            "evaluations": evaluations, "converged": bool(converged)}}
        ob = self.objective
        record["cluster"] = {"mode": "lbfgs", "workers": len(run.session.workers), "evaluations": ob.evaluations,
                             "bytes": ob.bytes, "compute_s": round(ob.compute_s, 4),
                             "comm_s": round(max(0.0, ob.wall_s - ob.compute_s), 4)}
        TrainingRun._score(run, record)  # holdout / --valid metrics, as after an SGD epoch
        st.epoch_done(record)
        status = "complete" if converged or st.epoch >= epochs else "running"
        run.checkpoint(status)
        run.say(f"{self.phase} iteration {st.epoch}: objective {f:.8g}, max |gradient| "
                f"{record['lbfgs']['grad_max']:.3g}, {evaluations} evaluation(s), step {step:.3g}"
                + (", converged" if converged else ""))
        if math.isnan(f):
            raise ConfigError("the L-BFGS objective became NaN")
