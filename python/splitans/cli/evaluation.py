"""The evaluation harness's commands: demo, eval, train-fmnist and report, with their parsers.
They run ``splitans.eval`` and need its extras, imported only when one of them runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

import splitans

from .._exit import EXIT_OK, EXIT_USAGE, CliError
from .options import MODES, Command, _check_axis

#: EfficientNet-Lite0 points the demo can cut at: every block output, and the ReLU6 output of
#: each expanding block that has no skip connection around it (inside a residual block the tail
#: would also need the block's input). ``splitans.eval.models.split_points`` lists all of them
#: from the model; tests/test_cli.py checks this list against it without loading the weights.
DEMO_SPLITS = (
    "block0.out", "block1.expand", "block1.out", "block2.out", "block3.expand", "block3.out", "block4.out",
    "block5.expand", "block5.out", "block6.out", "block7.out", "block8.expand", "block8.out", "block9.out",
    "block10.out", "block11.expand", "block11.out", "block12.out", "block13.out", "block14.out",
    "block15.expand", "block15.out",
)

FAMILIES = ("resnet", "vgg", "mobilenetv2", "densenet", "swin", "efficientnet")


def _timed(fn, repeat: int = 5):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def demo(args: argparse.Namespace) -> int:
    import torch

    from ..eval import models

    # Every split point gives an N x C x H x W activation: check --axis before loading the model.
    _check_axis(args.axis, np.empty((0,) * 4), "the activation, N x C x H x W,")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = models.efficientnet_lite0()
    names, images = models.sample_images()
    split = models.EfficientNetSplit(model, args.split)
    with torch.no_grad():
        reference = model(images)
    feature = split.head(images)
    x = feature.numpy()
    print(f"model       EfficientNet-Lite0 (ImageNet-1k weights), images {', '.join(names)}")
    print(f"split       {args.split}: activation {tuple(x.shape)} float32, {x.nbytes:,} bytes, "
          f"{(x == 0).mean():.1%} exact zeros")
    repeat = 1 if args.mode in ("context", "pcontext", "best") else 5  # context coders: one run says enough
    opts = splitans.Options(bits=args.bits, axis=args.axis, mode=args.mode, threads=1)
    blob, t_enc = _timed(lambda: splitans.compress(feature, opts), repeat)
    restored, t_dec = _timed(lambda: splitans.decompress(blob, threads=1, output="torch"), repeat)
    info = splitans.inspect(blob)
    err = (restored - feature).abs().max().item()
    where = "per tensor" if args.axis is None else f"per channel (axis {args.axis})"
    scales = info["scale"]
    print(f"quantize    {args.bits} bits asymmetric {where}: scale {min(scales):.5g}"
          f"{'' if len(scales) == 1 else f'..{max(scales):.5g}'}, max error {err:.4g} "
          f"(bound scale/2 = {max(scales) / 2:.4g})")
    layout = f"CSR {info['rows']} x {info['cols']}" if info["mode"] == "csr" else info["mode"]
    streams = ", ".join(f"{s['name']} {s['compressed_bytes']:,} B ({s['mode']})" for s in info["streams"])
    bound = sum(s["entropy_bound_bytes"] for s in info["streams"])
    print(f"compress    {len(blob):,} bytes, {layout}: {streams}")
    print(f"ratio       {8 * len(blob) / x.size:.3f} bits/element: {x.nbytes / len(blob):.1f}x smaller than float32, "
          f"{x.nbytes / 2 / len(blob):.1f}x smaller than float16")
    if info["mode"] != "context" and bound > 0:
        print(f"entropy     order-0 bound of the coded streams {bound:,.0f} bytes; coded size is "
              f"{len(blob) / bound - 1:+.2%} over it, header, tables and states included")
    print(f"time        compress {t_enc * 1e3:.2f} ms, decompress {t_dec * 1e3:.2f} ms "
          f"(one thread, best of {repeat})")

    logits = split.tail(restored)
    same = (logits.argmax(1) == reference.argmax(1)).tolist()
    from ..eval.labels import imagenet

    classes = imagenet()
    for name, r, c, ok in zip(names, reference.argmax(1).tolist(), logits.argmax(1).tolist(), same):
        print(f"top-1       {name}: uncompressed {classes[r]!r} ({r}), after compression {classes[c]!r} ({c})"
              f"{'' if ok else '  (differs)'}")
    return EXIT_OK


def _meta(t0: float, final: bool, seconds: Optional[float] = None) -> dict:
    """`seconds`: the measuring time when it is not the time since t0 (a report resumed from
    sections measured by earlier runs)."""
    import datetime
    import platform

    return {
        # --resume only reuses sections: the command that regenerates the report is the one without it.
        "command": "splitans " + " ".join(a for a in sys.argv[1:] if a != "--resume")
        if sys.argv and sys.argv[0].endswith(("splitans", "__main__.py")) else "splitans report --out docs",
        "duration": f"{(time.time() - t0 if seconds is None else seconds) / 60:.0f} min"
        + ("" if final else " so far (incomplete run)"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
    }


def _options(text: Optional[str]):
    from ..calibration import OPTIONS

    if text is None:
        return OPTIONS
    return tuple(o for o in text.split(",") if o)


def _bit_widths(text: Optional[str], default: Sequence[int]) -> tuple:
    """--bits of the evaluation commands: comma-separated widths 1..16."""
    if not text:
        return tuple(default)
    try:
        bits = tuple(int(b) for b in text.split(",") if b)
    except ValueError:
        raise CliError(EXIT_USAGE, f"--bits {text!r}: comma-separated integers expected") from None
    bad = [b for b in bits if not 1 <= b <= 16]
    if bad or not bits:
        raise CliError(EXIT_USAGE, f"--bits {text!r}: widths run from 1 to 16")
    return bits


def run_eval(args: argparse.Namespace) -> int:
    from ..eval import evaluate

    t0 = time.time()
    if args.model != "efficientnet-lite0" or args.budget is not None:
        from ..eval import experiments, fmnist, nets, report

        none = ([], [])
        bits = _bit_widths(args.bits, experiments.BITS)
        if args.model == "efficientnet-lite0":
            points = args.points.split(",") if args.points else ["block3.expand", "block11.expand"]
            lite0 = nets.evaluate_lite0(points, budget_pp=args.budget, confidence=args.confidence,
                                          options=_options(args.options), photos=args.limit)
            paths = report.write_report(args.out, none, none, lite0, _meta(t0, True),
                                        budgets={"lite0": args.budget}, confidence=args.confidence)
        else:
            budget = 0.2 if args.budget is None else args.budget
            points = args.points.split(",") if args.points else list(fmnist.POINTS[args.model])
            fm = nets.evaluate_fmnist(
                [args.model], budget_pp=budget, confidence=args.confidence, limit=args.limit,
                calibration_limit=args.calibration_limit, points={args.model: points}, bits=bits,
                options=_options(args.options), frontier=args.frontier, calibration_split=args.calibration_split,
            )
            paths = report.write_report(args.out, fm, none, none, _meta(t0, True), budgets={"fmnist": budget},
                                        confidence=args.confidence)
        print("wrote " + ", ".join(paths.values()))
        return EXIT_OK
    rows = evaluate.evaluate(
        points=(args.points or "block3.expand,block5.expand,block11.expand,block3.out,block8.out").split(","),
        bits_list=[int(b) for b in (args.bits or "2,4,6,8").split(",")],
        configs=args.configs.split(",") if args.configs else tuple(evaluate.CONFIGS),
        augment=args.augment,
        limit=args.limit,
    )
    paths = evaluate.write_reports(rows, args.out)
    print(open(paths["md"]).read())
    print("wrote " + ", ".join(paths.values()))
    return EXIT_OK


def train_fmnist(args: argparse.Namespace) -> int:
    from ..eval import fmnist, train

    directory = args.out or fmnist.checkpoint_dir()
    for family in args.families.split(","):
        model = train.train(family, epochs=args.epochs, seed=args.seed)
        x, y = fmnist.load_data("test")
        accuracy = float((fmnist.predict(model, x) == y.numpy()).mean())
        path = f"{directory}/{family}.npz"
        fmnist.save(model, path)
        print(f"{family}: test accuracy {accuracy:.4f}, saved {path}")
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from ..eval import experiments, fmnist, nets, report
    from ..eval.nlp import evaluate_nlp

    t0 = time.time()
    none: tuple = ([], [])
    fm, nlp, lite0 = none, none, none
    budgets = {"fmnist": args.budget, "nlp": args.nlp_budget, "lite0": args.lite0_budget}
    options = _options(args.options)

    seconds = [0.0]  # measuring time of every section, resumed ones included

    compare = args.compare_split if args.compare_split not in ("none", args.calibration_split) else None
    fm_compare: tuple = none

    def write(final: bool) -> None:
        # After every section, so that a failure later keeps what was measured.
        paths = report.write_report(args.out, fm, nlp, lite0, _meta(t0, final, seconds[0]), budgets=budgets,
                                    confidence=args.confidence, fm_compare=fm_compare)
        if final:
            print(f"wrote {paths['md']} and the CSV and PNG files in {os.path.join(args.out, 'results')}")

    def section(name: str, run):
        # Each finished section is kept as JSON beside the CSVs; --resume reuses it. Sections are
        # per family, so that runs of disjoint --families (in parallel) and a last --resume run
        # make one report.
        path = os.path.join(args.out, "results", f"{name}.json")
        if args.resume and os.path.exists(path):
            with open(path) as f:
                kept = json.load(f)
            if isinstance(kept, dict):
                rows, fronts = kept["rows"], kept["fronts"]
                seconds[0] += float(kept.get("seconds", 0.0))
            else:  # the earlier [rows, fronts] form
                rows, fronts = kept
            print(f"{name}: reusing {path}")
            return rows, fronts
        t = time.time()
        rows, fronts = run()
        took = time.time() - t
        seconds[0] += took
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"rows": rows, "fronts": fronts, "seconds": took}, f,
                      default=lambda v: v.item() if hasattr(v, "item") else str(v))
        return rows, fronts

    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise CliError(EXIT_USAGE, f"unknown family {unknown[0]!r}: choose from {', '.join(FAMILIES)}")
    bits = _bit_widths(args.bits, experiments.BITS)
    chosen = [p for p in (args.points or "").split(",") if p]
    if chosen:
        stray = [p for p in chosen if not any(p in fmnist.POINTS[f] for f in families)]
        if stray:
            raise CliError(EXIT_USAGE, f"split point {stray[0]!r} is not a point of " + ", ".join(families))
    for family in families:
        points = [p for p in chosen if p in fmnist.POINTS[family]] if chosen else None
        if chosen and not points:
            continue
        for split in [args.calibration_split] + ([compare] if compare else []):
            # A subset of points or bit widths is its own section: --resume never mistakes it for the full one.
            name = f"fmnist-{family}" + ("-" + "+".join(points) if points else "") + (
                "-bits" + "+".join(map(str, bits)) if args.bits else "") + (
                "" if split == "calibration" else "-" + split)
            rows, fronts = section(name, lambda split=split: nets.evaluate_fmnist(
                [family], budget_pp=args.budget, confidence=args.confidence, limit=args.limit,
                calibration_limit=args.calibration_limit, options=options, frontier=args.frontier, bits=bits,
                calibration_split=split, points={family: points} if points else None))
            if split == args.calibration_split:
                fm = (fm[0] + rows, fm[1] + fronts)
            else:
                fm_compare = (fm_compare[0] + rows, fm_compare[1] + fronts)
            write(False)
    if not args.skip_nlp:
        nlp = section("minilm", lambda: evaluate_nlp(
            train=args.nlp_train, test=args.nlp_test, calibration=args.nlp_calibration, budget_pp=args.nlp_budget,
            confidence=args.confidence, options=options, frontier=args.frontier))
        write(False)
    if not args.skip_efficientnet:
        lite0 = section("efficientnet_lite0", lambda: nets.evaluate_lite0(
            budget_pp=args.lite0_budget, confidence=args.confidence, options=options, frontier=args.frontier))
    write(True)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Their parsers


def _calibration_split_option(p: argparse.ArgumentParser, default: str = "calibration") -> None:
    p.add_argument("--calibration-split", default=default, choices=("calibration", "train+calibration"),
                   help="Fashion-MNIST calibration samples: the 5,000 held-out images, or those and the 55,000 "
                        f"training images (default: {default})")


def add_demo(command: Command) -> None:
    p = command("demo", "split EfficientNet-Lite0, compress its activation, finish the model on it",
                "The main job: EfficientNet-Lite0 (ImageNet weights) on two photographs, cut at a split\n"
                "point; the activation is compressed, decompressed, and the rest of the network runs on it.\n"
                "Needs the demo extra: pip install 'splitans[demo]'.\n\n"
                "split points: " + ", ".join(DEMO_SPLITS) + "\n"
                "(blockN.expand: the sparse ReLU6 output of block N's expansion; blockN.out: the block's output)",
                demo)
    p.add_argument("--split", default="block3.expand", choices=DEMO_SPLITS, metavar="POINT",
                   help="split point, one of those listed above (default: block3.expand, a sparse ReLU6 output)")
    p.add_argument("--bits", type=int, default=8, choices=range(1, 17), metavar="{1..16}",
                   help="quantization bits (default 8)")
    p.add_argument("--axis", type=int, default=None, help="per-channel quantization along this axis (1: channels)")
    p.add_argument("--mode", default="auto", choices=MODES,
                   help="layout, as for compress: auto (default), dense, csr, context, pcontext or best")


def add_eval(command: Command) -> None:
    e = command("eval", "accuracy, agreement, size and time at split points (CSV, Markdown, PNG)",
                "Cut a model at split points, compress each image's activation and measure accuracy,\n"
                "agreement, size and time. Needs the eval extra: pip install 'splitans[eval]'.", run_eval)
    e.add_argument("--model", default="efficientnet-lite0", choices=("efficientnet-lite0",) + FAMILIES,
                   help="EfficientNet-Lite0 (ImageNet) or a Fashion-MNIST family (splitans train-fmnist)")
    e.add_argument("--points", default=None, help="comma-separated split points (default: the model's set)")
    e.add_argument("--bits", default=None,
                   help="comma-separated bit widths: the grid (EfficientNet-Lite0, default 2,4,6,8) or those that "
                        "calibrate searches (with --budget; default 1,2,3,4,5,6,8)")
    e.add_argument("--budget", type=float, default=None,
                   help="accuracy budget in percentage points for splitans.calibrate, which picks a fitted codec on the "
                        "calibration split (Fashion-MNIST models: default 0.2; EfficientNet-Lite0: changed top-1 "
                        "predictions, and without --budget the fixed grid of --bits is run instead)")
    e.add_argument("--confidence", type=float, default=0.9, help="confidence that the chosen codec meets the budget")
    e.add_argument("--options", default=None,
                   help="quantizer options calibrate may use (comma-separated from clip,dead_zone,levels,allocation,"
                        "per_token; default all; empty for the base grid only)")
    e.add_argument("--frontier", type=int, default=6, help="searched settings measured on test for the plot (0: none)")
    e.add_argument("--calibration-limit", type=int, default=None, help="use only the first N calibration images")
    _calibration_split_option(e)
    e.add_argument("--configs", default=None, help="comma-separated, from: paper csr+model, auto, auto per-channel")
    e.add_argument("--augment", type=int, default=2, help="flipped/shifted copies per image for agreement")
    e.add_argument("--limit", type=int, default=None,
                   help="use only the first N images (EfficientNet-Lite0 with --budget: the first N photographs)")
    e.add_argument("--out", default="results", help="folder for results.csv, results.md, agreement_vs_bits.png")


def add_train_fmnist(command: Command) -> None:
    t = command("train-fmnist", "train the Fashion-MNIST models the evaluation uses (seeded)",
                "Train the Fashion-MNIST model families the evaluation uses, seeded, and save their\n"
                "checkpoints. Needs the eval extra and apt-get install dataset-fashion-mnist.", train_fmnist)
    t.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated model families to train (default: all six: {','.join(FAMILIES)})")
    t.add_argument("--epochs", type=int, default=3, help="training epochs per family (default 3)")
    t.add_argument("--seed", type=int, default=0, help="random seed for initialisation and batch order (default 0)")
    t.add_argument("--out", default=None, help="checkpoint folder (default: benches/checkpoints/fmnist here)")


def add_report(command: Command) -> None:
    r = command("report", "the evaluation report: Fashion-MNIST families, MiniLM-L6, EfficientNet-Lite0",
                "Regenerate docs/results.md with its CSVs and plots. Needs the eval extra,\n"
                "apt-get install dataset-fashion-mnist and pip install --no-deps foolbox==3.3.4.", run_report)
    r.add_argument("--out", default="docs", help="folder for results.md (CSV and PNG files go to OUT/results/)")
    r.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated Fashion-MNIST families to evaluate (default: all six; empty: none)")
    r.add_argument("--points", default=None,
                   help="comma-separated Fashion-MNIST split points (default: every point of each family)")
    r.add_argument("--bits", default=None,
                   help="comma-separated bit widths calibrate searches on Fashion-MNIST (default 1,2,3,4,5,6,8)")
    r.add_argument("--budget", type=float, default=0.2, help="Fashion-MNIST accuracy budget in percentage points")
    r.add_argument("--nlp-budget", type=float, default=0.5, help="MiniLM-L6 accuracy budget in percentage points")
    r.add_argument("--lite0-budget", type=float, default=1.0,
                   help="EfficientNet-Lite0 budget: changed top-1 predictions in percent")
    r.add_argument("--confidence", type=float, default=0.9, help="confidence that each chosen codec meets its budget")
    r.add_argument("--options", default=None, help="quantizer options calibrate may use (default all)")
    r.add_argument("--frontier", type=int, default=6,
                   help="searched settings measured on test per point, for the plots")
    r.add_argument("--limit", type=int, default=None, help="only the first N Fashion-MNIST test images")
    r.add_argument("--calibration-limit", type=int, default=None, help="only the first N calibration images")
    _calibration_split_option(r, "train+calibration")
    r.add_argument("--compare-split", default="calibration", choices=("calibration", "train+calibration", "none"),
                   help="Fashion-MNIST: also calibrate on this split and show it beside the main tables, with both "
                        "bracket counts (the bias check; default: calibration; none: skip)")
    r.add_argument("--skip-nlp", action="store_true", help="leave out the MiniLM-L6 / Rotten Tomatoes section")
    r.add_argument("--nlp-train", type=int, default=3000,
                   help="Rotten Tomatoes sentences to train the classifier head on (default 3000)")
    r.add_argument("--nlp-test", type=int, default=2000, help="Rotten Tomatoes test sentences (default 2000)")
    r.add_argument("--nlp-calibration", type=int, default=3000,
                   help="Rotten Tomatoes sentences to calibrate the codec on (default 3000)")
    r.add_argument("--skip-efficientnet", action="store_true", help="leave out the EfficientNet-Lite0 section")
    r.add_argument("--resume", action="store_true",
                   help="reuse the sections an earlier run finished (OUT/results/<section>.json)")
