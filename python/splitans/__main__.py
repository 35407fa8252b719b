"""Command line: ``splitans demo`` (also ``python -m splitans demo``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional


import splitans


def _timed(fn, repeat: int = 5):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def demo(args: argparse.Namespace) -> int:
    import torch

    from .eval import models

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

    blob, t_enc = _timed(lambda: splitans.compress(feature, bits=args.bits, axis=args.axis, mode=args.mode, threads=1))
    restored, t_dec = _timed(lambda: splitans.decompress(blob, threads=1, output="torch"))
    info = splitans.inspect(blob)
    err = (restored - feature).abs().max().item()
    where = "per tensor" if args.axis is None else f"per channel (axis {args.axis})"
    scales = info["scale"]
    print(f"quantize    {args.bits} bits asymmetric {where}: scale {min(scales):.5g}"
          f"{'' if len(scales) == 1 else f'..{max(scales):.5g}'}, max error {err:.4g} "
          f"(bound scale/2 = {max(scales) / 2:.4g})")
    layout = f"CSR {info['rows']} x {info['cols']}" if info["mode"] == "csr" else "dense"
    streams = ", ".join(f"{s['name']} {s['compressed_bytes']:,} B ({s['mode']})" for s in info["streams"])
    bound = sum(s["entropy_bound_bytes"] for s in info["streams"])
    print(f"compress    {len(blob):,} bytes, {layout}: {streams}")
    print(f"ratio       {8 * len(blob) / x.size:.3f} bits/element: {x.nbytes / len(blob):.1f}x smaller than float32, "
          f"{x.nbytes / 2 / len(blob):.1f}x smaller than float16")
    print(f"entropy     order-0 bound of the coded streams {bound:,.0f} bytes; coded size is "
          f"{len(blob) / bound - 1:+.2%} over it, header, tables and states included")
    print(f"time        compress {t_enc * 1e3:.2f} ms, decompress {t_dec * 1e3:.2f} ms (one thread, best of 5)")

    logits = split.tail(restored)
    same = (logits.argmax(1) == reference.argmax(1)).tolist()
    for name, r, c, ok in zip(names, reference.argmax(1).tolist(), logits.argmax(1).tolist(), same):
        print(f"top-1       {name}: uncompressed class {r}, after compression class {c}"
              f"{'' if ok else '  (differs)'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .eval import evaluate

    if args.model != "efficientnet-lite0":
        from .eval import fmnist, report

        points = args.points.split(",") if args.points else list(fmnist.POINTS[args.model])
        rows = report.evaluate_fmnist(
            [args.model], budget_pp=args.budget, fixed_bits=[int(b) for b in args.bits.split(",")],
            limit=args.limit, calibration_limit=args.calibration_limit, points={args.model: points},
        )
        paths = report.write_report(args.out, rows, [], [], {"command": "splitans " + " ".join(sys.argv[1:])},
                                    budget_pp=args.budget)
        print("wrote " + ", ".join(paths.values()))
        return 0
    rows = evaluate.evaluate(
        points=(args.points or "block3.expand,block5.expand,block11.expand,block3.out,block8.out").split(","),
        bits_list=[int(b) for b in args.bits.split(",")],
        configs=args.configs.split(",") if args.configs else tuple(evaluate.CONFIGS),
        augment=args.augment,
        limit=args.limit,
    )
    paths = evaluate.write_reports(rows, args.out)
    print(open(paths["md"]).read())
    print("wrote " + ", ".join(paths.values()))
    return 0


def train_fmnist(args: argparse.Namespace) -> int:
    from .eval import fmnist, train

    directory = args.out or fmnist.checkpoint_dir()
    for family in args.families.split(","):
        model = train.train(family, epochs=args.epochs, seed=args.seed)
        x, y = fmnist.load_data("test")
        accuracy = float((fmnist.predict(model, x) == y.numpy()).mean())
        path = f"{directory}/{family}.npz"
        fmnist.save(model, path)
        print(f"{family}: test accuracy {accuracy:.4f}, saved {path}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    import datetime
    import platform

    from .eval import report

    t0 = time.time()
    argv = " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("splitans") else "report --out " + args.out
    fm_rows: list = []
    nlp_rows: list = []
    eff_rows: list = []

    def write(final: bool) -> None:
        # After every section, so that a failure later keeps what was measured.
        meta = {
            "command": f"splitans {argv}",
            "duration": f"{(time.time() - t0) / 60:.0f} min" + ("" if final else " so far (incomplete run)"),
            "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
            "date": datetime.date.today().isoformat(),
        }
        paths = report.write_report(args.out, fm_rows, nlp_rows, eff_rows, meta, budget_pp=args.budget)
        if final:
            print(f"wrote {paths['md']} and the CSV and PNG files in {os.path.join(args.out, 'results')}")

    families = [f for f in args.families.split(",") if f]
    if families:
        fm_rows = report.evaluate_fmnist(
            families, budget_pp=args.budget, limit=args.limit, calibration_limit=args.calibration_limit
        )
        write(False)
    if not args.skip_nlp:
        nlp_rows = report.evaluate_nlp(
            train=args.nlp_train, test=args.nlp_test, calibration=args.nlp_calibration, budget_pp=args.budget
        )
        write(False)
    if not args.skip_efficientnet:
        from .eval import evaluate

        eff_rows = evaluate.evaluate(
            points=["block3.expand", "block11.expand", "block3.out"], bits_list=[2, 4, 6, 8], augment=args.augment
        )
    write(True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="splitans", description=splitans.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"splitans {splitans.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="split EfficientNet-Lite0, compress its activation, finish the model on it")
    p.add_argument("--split", default="block3.expand", help="split point (default: block3.expand, a sparse ReLU6 output)")
    p.add_argument("--bits", type=int, default=8, choices=range(1, 17), metavar="{1..16}", help="quantization bits")
    p.add_argument("--axis", type=int, default=None, help="per-channel quantization along this axis (1: channels)")
    p.add_argument("--mode", default="auto", choices=["auto", "dense", "csr"], help="representation")
    p.set_defaults(run=demo)
    e = sub.add_parser("eval", help="accuracy, agreement, size and time at split points (CSV, Markdown, PNG)")
    e.add_argument("--model", default="efficientnet-lite0",
                   choices=["efficientnet-lite0", "resnet", "vgg", "mobilenetv2", "densenet", "swin", "efficientnet"],
                   help="EfficientNet-Lite0 (ImageNet) or a Fashion-MNIST family (splitans train-fmnist)")
    e.add_argument("--points", default=None, help="comma-separated split points (default: the model's set)")
    e.add_argument("--bits", default="2,4,6,8", help="comma-separated bit widths (min/max per image)")
    e.add_argument("--budget", type=float, default=0.2,
                   help="Fashion-MNIST models: also search bits/clipping on the calibration split for this "
                        "accuracy budget (percentage points) and report the chosen setting")
    e.add_argument("--calibration-limit", type=int, default=None, help="use only the first N calibration images")
    e.add_argument("--configs", default=None, help="comma-separated, from: paper csr+model, auto, auto per-channel")
    e.add_argument("--augment", type=int, default=2, help="flipped/shifted copies per image for agreement")
    e.add_argument("--limit", type=int, default=None, help="use only the first N images")
    e.add_argument("--out", default="results", help="folder for results.csv, results.md, agreement_vs_bits.png")
    e.set_defaults(run=run_eval)
    t = sub.add_parser("train-fmnist", help="train the Fashion-MNIST models the evaluation uses (seeded)")
    t.add_argument("--families", default="resnet,vgg,mobilenetv2,densenet,swin,efficientnet")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="checkpoint folder (default: benches/checkpoints/fmnist here)")
    t.set_defaults(run=train_fmnist)
    r = sub.add_parser("report", help="the evaluation report: Fashion-MNIST families, MiniLM-L6, EfficientNet-Lite0")
    r.add_argument("--out", default="docs", help="folder for results.md (CSV and PNG files go to OUT/results/)")
    r.add_argument("--families", default=",".join(("resnet", "vgg", "mobilenetv2", "densenet", "swin", "efficientnet")))
    r.add_argument("--budget", type=float, default=0.2, help="accuracy budget in percentage points")
    r.add_argument("--limit", type=int, default=None, help="only the first N Fashion-MNIST test images")
    r.add_argument("--calibration-limit", type=int, default=None, help="only the first N calibration images")
    r.add_argument("--skip-nlp", action="store_true")
    r.add_argument("--nlp-train", type=int, default=3000)
    r.add_argument("--nlp-test", type=int, default=2000)
    r.add_argument("--nlp-calibration", type=int, default=1000)
    r.add_argument("--skip-efficientnet", action="store_true")
    r.add_argument("--augment", type=int, default=4, help="EfficientNet-Lite0: flipped/shifted copies per image")
    r.set_defaults(run=run_report)
    from .runtime import cli as runtime_cli  # argparse only: no grpc, torch or Ray until a command runs

    runtime_cli.add_serve(sub)
    runtime_cli.add_edge(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
