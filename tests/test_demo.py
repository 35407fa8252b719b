"""The README's main job runs: real model, real images, compress, decompress, finish the model."""

import subprocess
import sys

from strict import need_module


def test_demo_runs_and_keeps_the_predictions():
    need_module("efficientnet_lite_pytorch", "pip install '.[demo]'")
    need_module("sklearn", "pip install scikit-learn")
    out = subprocess.run(
        [sys.executable, "-m", "splitans", "demo", "--bits", "4"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "compress" in out.stdout and "bits/element" in out.stdout
    top1 = [line for line in out.stdout.splitlines() if line.startswith("top-1")]
    assert len(top1) == 2 and not any("differs" in line for line in top1), out.stdout
    # Class names, not indices alone: each printed name is the one of its index, and the daisy
    # photograph is called a daisy.
    import re

    from splitans.eval.labels import imagenet

    names = imagenet()
    for line in top1:
        for name, index in re.findall(r"'([^']+)' \((\d+)\)", line):
            assert names[int(index)] == name, line
    assert "flower.jpg: uncompressed 'daisy' (985)" in out.stdout, out.stdout
