#!/usr/bin/env python3
"""Peak memory of a large calibration: `splitans.calibrate` on the Fashion-MNIST training and
calibration images (60,000) at one split point, against the activations' own size.

    python benches/rate/calibrate_rss.py                                   # MobileNetV2 block4.expand, 28,224 elements
    python benches/rate/calibrate_rss.py --samples 20000 --bits 4,8       # fewer samples, fewer candidates

The activations are computed into one preallocated float32 array (their own size is what the
peak is compared with). Then the peak resident set is reset (/proc/self/clear_refs) and
calibrate runs; the script prints the activations' size, the resident set before calibrating
and the peak while calibrating (VmHWM: everything the process holds, the activations and the
model included). `/usr/bin/time -v` around it gives the same peak for the whole run.

Run it against another checkout (e.g. before a change) with PYTHONPATH=<checkout>/python.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np


def _status(field: str) -> int:
    """A /proc/self/status field, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="mobilenetv2")
    p.add_argument("--point", default="block4.expand")
    p.add_argument("--samples", type=int, default=60_000, help="calibration samples: the 5,000 held-out images, then training images")
    p.add_argument("--bits", default="1,2,3,4,5,6,8")
    p.add_argument("--options", default="clip,dead_zone,levels,allocation")
    p.add_argument("--budget", type=float, default=0.2)
    a = p.parse_args()

    import torch

    import splitans
    from splitans.eval import fmnist

    torch.set_num_threads(1)
    xc, yc = fmnist.load_data("calibration")
    xtr, ytr = fmnist.load_data("train")
    x, y = torch.cat([xc, xtr])[: a.samples], torch.cat([yc, ytr])[: a.samples].numpy()
    del xc, xtr
    model = fmnist.load(a.family)
    for q in model.parameters():
        q.requires_grad_(False)
    with torch.no_grad():
        first = model.head(x[:1], a.point).numpy()
        acts = np.empty((len(x), *first.shape[1:]), np.float32)
        for i in range(0, len(x), 1000):
            acts[i : i + 1000] = model.head(x[i : i + 1000], a.point).numpy()
    gib = 1 << 30
    print(f"splitans from {os.path.dirname(splitans.__file__)}")
    print(f"{a.family} {a.point}: {len(acts):,} samples x {first[0].size:,} elements = {acts.nbytes / gib:.2f} GiB "
          f"of activations")
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current resident set
        f.write("5")
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec = splitans.calibrate(torch.from_numpy(acts), lambda b: model.tail(b, a.point), y, budget=a.budget,
                                   bits=tuple(int(b) for b in a.bits.split(",")),
                                   options=tuple(o for o in a.options.split(",") if o),
                                   selection=min(0.1, 500 / len(acts)), log=lambda s: print("  " + s, flush=True))
    peak = _status("VmHWM")
    r = codec.calibration
    print(f"calibrated in {time.time() - t:.0f} s: {r.setting}, {r.ratio:.1f}x")
    print(f"resident before calibrate {before / gib:.2f} GiB; peak while calibrating {peak / gib:.2f} GiB = "
          f"{peak / acts.nbytes:.2f}x the activations; {(peak - before) / gib:.2f} GiB beyond what was resident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
