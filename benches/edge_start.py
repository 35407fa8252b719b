"""Process start to first served prediction on the edge side, against a running server.

Each run starts a fresh `splitans edge` process and times it from the fork to the first answer
it prints (the line ``input   0: top-1 ...``): interpreter start, imports, loading the head,
agreeing the codec with the server, running the head, encoding, the round trip. Two edges take
turns on the same server and inputs:

- ``onnx``: ``splitans edge --head head.onnx --codec CODEC`` (ONNX Runtime; no torch imported),
- ``torch`` (the peer, the only edge before): ``splitans edge --model FACTORY --split POINT
  --codec CODEC`` (imports torch, builds the model, cuts it),

beside the interpreter alone (``python -c pass``) as the floor. The server (`splitans serve`,
the Fashion-MNIST ResNet after ``layer2`` with an 8-bit fitted codec) is started here unless
``--target`` names one serving that model with that codec (``--workdir`` then holds the
``head.onnx``, ``layer2.codec`` and ``inputs.npy`` this script writes on its first run).
``--edge-python`` runs the ONNX edge with another interpreter, e.g. a fresh virtual environment
with only ``pip install 'splitans[edge,onnx]'`` in it.

    python benches/edge_start.py --runs 7
    python benches/edge_start.py --runs 7 --edge-python /tmp/edge/bin/python
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODEL = "splitans.eval.serving:fmnist_resnet"
POINT = "layer2"


def prepare(folder: str) -> None:
    """head.onnx, layer2.codec (8 bits, fitted on 256 training images when the data set is
    here, else on the model's examples) and inputs.npy (the model's 8 example inputs)."""
    if all(os.path.exists(os.path.join(folder, f)) for f in ("head.onnx", "layer2.codec", "inputs.npy")):
        return
    import numpy as np

    from splitans.eval import fmnist, serving

    model = serving.fmnist_resnet()
    np.save(os.path.join(folder, "inputs.npy"), model.example_input.numpy())
    have_data = os.path.exists(os.path.join(fmnist.DATA_DIR, "train-images-idx3-ubyte.gz"))
    calibration = ["--fit-codec", "256", "--calibration", "fmnist-train:256"] if have_data else ["--fit-codec", "8"]
    subprocess.run([sys.executable, "-m", "splitans", "export", "--model", MODEL, "--split", POINT, "--onnx",
                    os.path.join(folder, "head.onnx"), "--bits", "8", "--codec-out",
                    os.path.join(folder, "layer2.codec")] + calibration, check=True, stdout=subprocess.DEVNULL)


def start_server(folder: str):
    proc = subprocess.Popen([sys.executable, "-m", "splitans", "serve", "--model", MODEL, "--split", POINT, "--codec",
                             os.path.join(folder, "layer2.codec"), "--host", "127.0.0.1", "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "on port" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, int(line.split("on port ")[1].split()[0])


def first_answer(cmd, timeout: float = 300.0) -> float:
    """Seconds from starting `cmd` to its first answer line (or to its exit, for the floor)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = None
    for line in proc.stdout:
        if line.startswith("input"):
            took = time.perf_counter() - t
            break
    if took is None:
        proc.wait(timeout)
        if cmd[1:3] != ["-c", "pass"]:
            raise SystemExit(f"{' '.join(cmd)}: no answer (exit {proc.returncode}): {proc.stderr.read()}")
        took = time.perf_counter() - t
    _, err = proc.communicate(timeout=timeout)  # the rest of its answers
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {err}")
    return took


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="processes started per edge (default 5)")
    p.add_argument("--target", default=None, help="a running server, HOST:PORT (default: start one here)")
    p.add_argument("--workdir", default=None, help="folder for head.onnx, layer2.codec, inputs.npy (default: a temporary one)")
    p.add_argument("--edge-python", default=sys.executable, help="the interpreter of the ONNX edge (default: this one)")
    p.add_argument("--skip-torch", action="store_true", help="leave out the torch edge")
    args = p.parse_args(argv)
    folder = args.workdir or tempfile.mkdtemp(prefix="splitans-edge-start-")
    os.makedirs(folder, exist_ok=True)
    prepare(folder)
    server = None
    target = args.target
    if target is None:
        server, port = start_server(folder)
        target = f"127.0.0.1:{port}"
    try:
        common = ["--target", target, "--codec", os.path.join(folder, "layer2.codec"), "--inputs",
                  os.path.join(folder, "inputs.npy")]
        edges = {
            "python -c pass (the floor)": [args.edge_python, "-c", "pass"],
            "onnx: edge --head head.onnx": [args.edge_python, "-m", "splitans", "edge", "--head",
                                            os.path.join(folder, "head.onnx")] + common,
        }
        if not args.skip_torch:
            edges["torch: edge --model --split (peer)"] = [sys.executable, "-m", "splitans", "edge", "--model", MODEL,
                                                           "--split", POINT] + common
        times = {name: [] for name in edges}
        for _ in range(args.runs):  # the edges take turns, so load on the machine hits them alike
            for name, cmd in edges.items():
                times[name].append(first_answer(cmd))
        print(f"process start to first served prediction, {args.runs} runs each; server {target} "
              f"({MODEL} after {POINT!r}, 8-bit fitted codec); edge interpreter {args.edge_python}")
        print(f"| edge | median s | min s | max s |\n|---|---:|---:|---:|")
        for name, ts in times.items():
            print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {max(ts):.2f} |")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
