"""The model layer: a model directory and what can be done with it.

``directory.py`` is the memory-mapped model on disk (``Model``), ``heads.py`` what its loss
makes of the weights (margins, predictions, metrics), ``inference.py`` scoring datasets
(evaluate, predict), ``metrics.py`` streamed metrics, ``info.py`` what ``streamhog info``
shows. Training lives one layer up (streamhog/training/).
"""
