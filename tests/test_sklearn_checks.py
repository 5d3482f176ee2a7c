"""scikit-learn's own estimator checks (``check_estimator``, one test per check) on both
estimators: one thread (Hogwild! races are the only non-determinism, and several checks
compare two fits), one epoch where the checks allow (they do: regressors reach R² > 0.5 and
classifiers accuracy > 0.83 in one pass), so the whole suite takes seconds.

The checks that cannot apply, and why (``expected_failed_checks``; any other failure, or one
of these passing, fails the test):

- ``check_sample_weight_equivalence_on_dense_data`` / ``..._on_sparse_data``: they ask that
  a weight of 2 equal a repeated row and a weight of 0 a removed one. SGD visits each row
  once per epoch in a shuffled order: a repeated row takes two steps from two different
  points, a weight-2 row one step twice as long, and a zero-weight row still takes its
  place in the row order and the holdout. scikit-learn's SGDClassifier/SGDRegressor fail
  them for the same reason.

``check_array_api_input`` skips itself (scikit-learn's SkipTest) unless ``SCIPY_ARRAY_API=1``
was set before SciPy was first imported, which this process cannot do any more;
:func:`test_array_api_dispatch_changes_nothing` runs it in a fresh interpreter that sets it.
"""
from __future__ import annotations

import os
import subprocess
import sys

from sklearn.utils.estimator_checks import parametrize_with_checks

from streamhog.sklearn import HogwildClassifier, HogwildRegressor

SGD_SAMPLE_WEIGHTS = ("SGD takes one step per row visit in a shuffled order: a weight of k is one step k times "
                      "longer, not k steps, and a zero-weight row still holds its place in the order and holdout")
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": SGD_SAMPLE_WEIGHTS,
    "check_sample_weight_equivalence_on_sparse_data": SGD_SAMPLE_WEIGHTS,
}


@parametrize_with_checks([HogwildClassifier(threads=1, epochs=1), HogwildRegressor(threads=1, epochs=1),
                          HogwildClassifier(threads=1, epochs=2, optimizer="sgd", loss="hinge")],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_array_api_dispatch_changes_nothing():
    """The one check the parametrized run skips: with array-API dispatch on and NumPy inputs,
    the estimators give the same results (they do not dispatch: NumPy in, NumPy out)."""
    code = ("from sklearn.utils.estimator_checks import check_array_api_input\n"
            "from streamhog.sklearn import HogwildClassifier, HogwildRegressor\n"
            "for est in (HogwildClassifier(threads=1, epochs=1), HogwildRegressor(threads=1, epochs=1)):\n"
            "    check_array_api_input(type(est).__name__, est, array_namespace='numpy',\n"
            "                          expect_only_array_outputs=False)\n"
            "print('checked')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SCIPY_ARRAY_API": "1"})
    assert out.returncode == 0 and out.stdout.strip() == "checked", out.stderr
