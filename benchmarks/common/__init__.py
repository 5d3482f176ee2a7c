"""What the benchmark entry points share (scikit-learn's asv_benchmarks keep a common.py and
a datasets.py the same way): ``paths`` (where things are), ``metering`` (a process measured
from outside: wall, CPU, peak RSS and RssAnon; the machine and the code measured),
``data`` (synthetic datasets generated once, in parallel, and reused), ``peers`` (Vowpal
Wabbit's command line and its data format). Each entry point (run.py, quality.py,
scaling.py, ...) is a thin script over these.
"""
