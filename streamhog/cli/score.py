"""``streamhog evaluate``, ``predict``, ``info`` and ``plot``: a model or a dataset, read."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from .mf import mf_info, ranking_options_given, run_evaluate_mf, run_predict_mf, scores_mf
from .options import _open_data, _positive_int, add_data_arguments


def _add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a .parquet file, a directory of them, or a .zarr store; local or a URL (s3://, "
                                "gs://, http(s)://, file://)")
    p.add_argument("--model", required=True, help="model directory (on local disk)")
    p.add_argument("--threads", type=_positive_int, default=None, help="scoring threads (default: one per core)")
    add_data_arguments(p)


def _open_model(args):
    """The model of an evaluate or predict command, with a warning when it is not a finished one."""
    from ..model.directory import Model

    model = Model.open(args.model)
    if (why := model.unfinished) is not None:
        print(f"streamhog {args.command}: warning: {why}", file=sys.stderr)
    return model


def run_evaluate(args) -> int:
    from ..model.inference import evaluate

    if scores_mf(args):  # a factorization model: cli/mf.py
        return run_evaluate_mf(args)
    if given := ranking_options_given(args):
        raise ConfigError(f"{', '.join(given)}: ranking metrics of a factorization model's recommendations; "
                          f"{args.model} is a linear model")
    model = _open_model(args)
    metrics = evaluate(model, _open_data(args.data, args), threads=args.threads)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in metrics.items()))
    return 0


def run_predict(args) -> int:
    from ..model.inference import predict_to_parquet

    if scores_mf(args):
        return run_predict_mf(args)
    model = _open_model(args)
    n = predict_to_parquet(model, _open_data(args.data, args), args.out, overwrite=args.overwrite,
                           threads=args.threads)
    print(f"wrote {args.out}: {n:,} predictions")
    return 0


def run_info(args) -> int:
    from ..io.formats.storage import is_remote
    from ..io.summary import label_counts
    from ..model.info import model_info

    if not is_remote(args.path) and (info := mf_info(args.path)) is not None:
        pass  # a factorization model or an interaction file: cli/mf.py
    elif not is_remote(args.path) and (Path(args.path) / "model.json").is_file():
        info = model_info(args.path)
        if info.get("unfinished"):
            print(f"streamhog info: warning: {info['unfinished']}", file=sys.stderr)
    else:
        ds = _open_data(args.path, args, notes=False)  # info lists them
        info = ds.info()
        info["labels"] = {f"{k:g}": v for k, v in label_counts(ds).items()}
    if args.json:
        print(json.dumps(info))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, (dict, list)) and key != "labels":
            value = json.dumps(value)
        elif key == "labels":
            value = ", ".join(f"{k}: {v:,}" for k, v in list(value.items())[:10]) + (
                f" ... ({len(value)} distinct)" if len(value) > 10 else "")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    return 0


def run_plot(args) -> int:
    from ..model.plot import plot_history

    plot_history(args.model, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0
