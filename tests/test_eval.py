"""`splitans eval` on a small subset: real model, per-image compression, reports written."""

import csv

import pytest

from strict import need_module


def test_eval_subset_writes_reports(tmp_path):
    need_module("efficientnet_lite_pytorch", "pip install '.[eval]'")
    need_module("sklearn", "pip install scikit-learn")
    from splitans.eval import evaluate

    rows = evaluate.evaluate(points=["block3.expand"], bits_list=[8, 2], augment=1, limit=2)
    assert [(r["bits"], r["config"]) for r in rows] == [(b, c) for b in (8, 2) for c in evaluate.CONFIGS]
    eight = [r for r in rows if r["bits"] == 8]
    assert all(r["agreement"] == 1.0 for r in eight), eight
    two = next(r for r in rows if r["bits"] == 2 and r["config"] == "auto")
    auto8 = next(r for r in eight if r["config"] == "auto")
    assert two["bits_per_element"] < auto8["bits_per_element"] < 8
    assert auto8["ratio_vs_float32"] == pytest.approx(32 / auto8["bits_per_element"])
    paths = evaluate.write_reports(rows, str(tmp_path))
    with open(paths["csv"]) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert "block3.expand" in open(paths["md"]).read()
