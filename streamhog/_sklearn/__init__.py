"""The scikit-learn estimators' parts (``streamhog.sklearn`` is the public face).

``base.py`` is what both estimators share: the hyper-parameters, fit on arrays or datasets,
partial_fit, scoring, coef_/intercept_, pickling; ``classifier.py`` and ``regressor.py`` add
labels and predictions; ``home.py`` is where a fitted model lives (a temporary directory or
the user's ``model_dir``) and how it travels in a pickle; ``inputs.py`` checks what ``fit``
is given. scikit-learn is the optional ``sklearn`` extra.
"""
from __future__ import annotations

from ..errors import MissingDependencyError

#: The oldest scikit-learn whose API (validate_data, __sklearn_tags__) the estimators use.
MIN_SKLEARN = (1, 6)

try:
    import sklearn
except ImportError:
    raise MissingDependencyError("the scikit-learn estimators need scikit-learn, which is not installed: "
                                 "pip install 'streamhog[sklearn]'") from None

if tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit()) < MIN_SKLEARN:
    raise MissingDependencyError(f"the scikit-learn estimators need scikit-learn >= "
                                 f"{'.'.join(map(str, MIN_SKLEARN))}, found {sklearn.__version__}: "
                                 "pip install 'streamhog[sklearn]'")
