"""The quality panel's datasets: each written once under benchmarks/output/panel/NAME as
train/test Parquet (what streamhog reads), VW text (what Vowpal Wabbit reads) and
info.json (shape, loss, the generating model's Bayes loss where known).

Every dataset is generated from streamhog/datasets/panel.py or shipped with streamhog, so
the panel is deterministic and needs no download. ``prepare(name)`` reuses a complete
directory and (re)builds a missing or partial one (written under a temporary name, moved
into place when complete).
"""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PANEL_DIR = HERE / "output" / "panel"
PY = sys.executable


@dataclass
class PanelSet:
    name: str
    what: str                   # one line for the report
    loss: str                   # logistic | squared | softmax
    train_rows: int
    test_rows: int
    build: str                  # builder key (BUILDERS)
    params: dict = field(default_factory=dict)
    large: bool = False         # only with --large (minutes to generate and train)

    @property
    def dir(self) -> Path:
        return PANEL_DIR / self.name


PANEL = [
    PanelSet("a9a", "a9a: census, 123 binary features (UCI Adult, LIBSVM)", "logistic", 32_561, 16_281, "a9a"),
    PanelSet("rcv1-like", "RCV1-shaped synthetic (tools/make_synthetic.py): 1M Zipf ids, unit-norm rows",
             "logistic", 200_000, 50_000, "synthetic"),
    PanelSet("text-small", "text, tf-idf rows of unit L2 norm (Zipf–Mandelbrot words, two topics)", "logistic",
             1_000, 4_000, "text", dict(vocabulary=20_000, doc_length=120, topic_share=0.05, seed=1)),
    PanelSet("counts", "text, raw term counts (long documents: counts up to hundreds)", "logistic", 10_000, 10_000,
             "text", dict(vocabulary=20_000, doc_length=300, length_sigma=1.0, topic_share=0.01, values="counts",
                          seed=2)),
    PanelSet("mixed-scales", "numeric + binary columns scaled ×1000 / ×0.001 / ×1 in turn", "logistic", 20_000,
             10_000, "mixed", dict(seed=3)),
    PanelSet("imbalanced", "web-page-like binary keywords, 3% positives", "logistic", 40_000, 20_000, "binary",
             dict(seed=4)),
    PanelSet("criteo", "Criteo sample: raw click log, hashed (2^20) by `convert --input-format criteo`", "logistic",
             8_000, 2_000, "criteo"),
    PanelSet("regression", "real-valued target, mean 50,000 (mixed-scale features), squared loss", "squared", 20_000,
             10_000, "mixed", dict(target="regression", seed=5)),
    PanelSet("digits", "digits: 8×8 images, 10 classes (scikit-learn), softmax vs VW --oaa", "softmax", 1_400, 397,
             "digits"),
    PanelSet("text-large", "text, tf-idf rows of unit L2 norm, large (Zipf–Mandelbrot, 1M words)", "logistic",
             1_000_000, 100_000, "text",
             dict(vocabulary=1_000_000, doc_length=60, topic_words=100_000, topic_share=0.02, seed=6), large=True),
]
BY_NAME = {p.name: p for p in PANEL}


# -- writing ----------------------------------------------------------------------------------------

def vw_label(loss: str, y: float) -> str:
    if loss == "softmax":
        return str(int(y) + 1)  # VW's --oaa classes are 1..K
    if loss == "squared":
        return repr(float(y))
    return "1" if y > 0 else "-1"


def write_vw(batches, path: Path, loss: str) -> None:
    """VW text, one example a line: `label | id:value ...` (numeric names: VW hashes them to
    themselves, so no collisions below 2^-b); binary features are written as bare ids."""
    with open(path, "w") as f:
        for b in batches:
            ids = b.indices.tolist()
            vals = None if b.values is None else [f"{v:.7g}" for v in b.values.tolist()]
            ip = b.indptr.tolist()
            lines = []
            for r, y in enumerate(b.labels.tolist()):
                lo, hi = ip[r], ip[r + 1]
                feats = " ".join(map(str, ids[lo:hi])) if vals is None else \
                    " ".join(f"{i}:{v}" for i, v in zip(ids[lo:hi], vals[lo:hi]))
                lines.append(f"{vw_label(loss, y)} | {feats}\n")
            f.writelines(lines)


def write_split(batches_fn, d: Path, split: str, loss: str, n_features: int) -> None:
    from streamhog.io.formats import create_writer

    w = create_writer("parquet", d / f"{split}.parquet")
    for b in batches_fn():
        w.write(b)
    w.close(n_features)
    write_vw(batches_fn(), d / f"{split}.vw", loss)


def _streamhog(*args) -> None:
    subprocess.run([PY, "-m", "streamhog", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def _libsvm_to_vw(src: Path, dst: Path, loss: str) -> None:
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as f, open(dst, "w") as out:
        for line in f:
            label, _, feats = line.strip().partition(" ")
            out.write(f"{vw_label(loss, float(label))} | {feats}\n")


# -- builders ---------------------------------------------------------------------------------------

def build_generated(p: PanelSet, d: Path) -> dict:
    from streamhog.datasets import panel

    n = p.train_rows + p.test_rows
    if p.build == "text":
        spec = panel.TextSpec(n_rows=n, **p.params)
        gen, n_features = (lambda a, b: panel.text_batches(spec, 65_536, a, b)), spec.vocabulary
        bayes = {s: panel.text_bayes_logloss(spec, a, b) for s, (a, b) in
                 {"train": (0, p.train_rows), "test": (p.train_rows, n)}.items()}
    else:
        spec_cls, fn = (panel.BinarySpec, panel.binary_batches) if p.build == "binary" else \
            (panel.MixedSpec, panel.mixed_batches)
        spec = spec_cls(n_rows=n, **p.params)
        gen = lambda a, b: fn(spec, 65_536, a, b)  # noqa: E731
        n_features = spec.n_features if p.build == "binary" else spec.n_gaussian + spec.n_amounts + spec.n_binary
        sums: list = []
        for _ in fn(spec, 65_536, p.train_rows, n, bayes=sums):
            pass
        mean = sum(sums) / p.test_rows
        bayes = {"test": (2 * mean) ** 0.5 if p.loss == "squared" else mean}
    write_split(lambda: gen(0, p.train_rows), d, "train", p.loss, n_features)
    write_split(lambda: gen(p.train_rows, n), d, "test", p.loss, n_features)
    return {"spec": asdict(spec), "bayes": bayes}


def build_a9a(p: PanelSet, d: Path) -> dict:
    from streamhog.datasets import a9a

    for split in ("train", "test"):
        extra = ("--n-features", 123) if split == "test" else ()  # a9a.t never uses feature 123
        _streamhog("convert", a9a(split), d / f"{split}.parquet", "--overwrite", "--quiet", *extra)
        _libsvm_to_vw(a9a(split), d / f"{split}.vw", p.loss)
    return {"source": "streamhog.datasets.a9a (LIBSVM a9a, UCI Adult)"}


def build_synthetic(p: PanelSet, d: Path) -> dict:
    from streamhog.datasets.synthetic import SyntheticSpec, bayes_logloss, synthetic_batches

    spec = SyntheticSpec(n_rows=p.train_rows + p.test_rows)  # tools/make_synthetic.py's defaults
    gen = lambda a, b: synthetic_batches(spec, 65_536, a, b)  # noqa: E731
    write_split(lambda: gen(0, p.train_rows), d, "train", p.loss, spec.n_features)
    write_split(lambda: gen(p.train_rows, spec.n_rows), d, "test", p.loss, spec.n_features)
    return {"spec": asdict(spec), "bayes": {"test": bayes_logloss(spec, gen(p.train_rows, spec.n_rows))}}


def build_criteo(p: PanelSet, d: Path) -> dict:
    from streamhog.datasets import criteo_sample
    from streamhog.io.hashing import numeric_token

    for split in ("train", "test"):
        src = criteo_sample(split)
        _streamhog("convert", src, d / f"{split}.parquet", "--input-format", "criteo", "--overwrite", "--quiet")
        # VW hashes the raw fields itself: integer fields log-binned with streamhog's bins
        # (as categoricals: VW's better encoding on this sample), categoricals as they are.
        with gzip.open(src, "rt") as f, open(d / f"{split}.vw", "w") as out:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                n = " ".join(f"I{k}_{numeric_token(v)}" for k, v in enumerate(fields[1:14], 1) if v)
                c = " ".join(f"C{k}_{v}" for k, v in enumerate(fields[14:40], 1) if v)
                out.write(f"{'1' if fields[0] == '1' else '-1'} |n {n} |c {c}\n")
    return {"source": "streamhog.datasets.criteo_sample (Criteo Display Advertising Challenge, first 10,000 rows)"}


def build_digits(p: PanelSet, d: Path) -> dict:
    subprocess.run([PY, ROOT / "tools" / "make_digits.py", d], check=True)
    for split, src in (("train", "digits.train"), ("test", "digits.test")):
        _streamhog("convert", d / src, d / f"{split}.parquet", "--overwrite", "--quiet", "--n-features", 64)
        _libsvm_to_vw(d / src, d / f"{split}.vw", p.loss)
    return {"source": "sklearn.datasets.load_digits via tools/make_digits.py (UCI optical digits)"}


BUILDERS = {"a9a": build_a9a, "synthetic": build_synthetic, "text": build_generated, "binary": build_generated,
            "mixed": build_generated, "criteo": build_criteo, "digits": build_digits}


def prepare(name: str) -> PanelSet:
    """The dataset's directory, built if it is missing or was left incomplete."""
    p = BY_NAME[name]
    if (p.dir / "info.json").exists():
        return p
    tmp = p.dir.with_name(f".{p.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    extra = BUILDERS[p.build](p, tmp)
    info = {"name": p.name, "what": p.what, "loss": p.loss, "train_rows": p.train_rows, "test_rows": p.test_rows,
            **extra}
    (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(p.dir, ignore_errors=True)
    tmp.rename(p.dir)
    return p


def info(name: str) -> dict:
    return json.loads((BY_NAME[name].dir / "info.json").read_text())


def load_xy(path: Path, n_features: int | None = None):
    """A Parquet split as (scipy CSR float64, labels float64) for the reference solvers."""
    from streamhog import open_dataset
    from streamhog.io.batch import concat_batches

    ds = open_dataset(path)
    reader = ds.open_reader()
    try:
        b = concat_batches([reader.read(k) for k in range(ds.n_blocks)])
    finally:
        reader.close()
    return b.to_scipy(n_features or ds.n_features).astype(np.float64), b.labels.astype(np.float64)
