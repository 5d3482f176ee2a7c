"""The docstring examples run, on the bundled dataset (river style)."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["streamhog", "streamhog.datasets", "streamhog.datasets.synthetic", "streamhog.datasets.panel",
           "streamhog.training.job",
           "streamhog.losses", "streamhog.io.formats", "streamhog.io.formats.memory", "streamhog.model.api",
           "streamhog.sklearn", "streamhog.factorization.train", "streamhog.factorization.synthetic",
           "streamhog.factorization.recommendations"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
