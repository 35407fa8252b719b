"""Fitted codecs against the strongest peers, one sample per blob, every peer in the same run.

    python benches/bench_codec.py                      # everything (about 20 min on 2 cores)
    python benches/bench_codec.py --quick              # fewer points and samples (a few minutes)
    python benches/bench_codec.py --points resnet.layer1,lite0.stem --bits 4,8 --json out.json

Data: real activations (``splitans.eval.activations``): the Fashion-MNIST families, the
EfficientNet-Lite0 stem, expansion and block outputs, MiniLM-L6 hidden and FFN activations in
32-token blocks. Each point is quantized per tensor with the range of its calibration samples;
the codec is fitted on those samples and measured on the test samples, which it never saw.

1. **Size.** Mean bytes per test sample (every per-blob byte counted) of the fitted codec and,
   on exactly the same codes: JPEG XL lossless at effort 10 (imagecodecs; the codes tiled into
   a grayscale mosaic of channel tiles, ``bitspersample`` = bits), zstd-19 with a dictionary
   trained on the calibration codes (``zstandard.train_dictionary``; frame without checksum,
   content size or dictionary id), zstd-19, brotli-11, pcodec, the order-0 bound of each
   sample (n·H/8, no table, no header), and splitans' self-contained containers (``auto`` and
   ``best``). WIN when the codec is smaller than both JPEG XL and zstd-19 with a dictionary.
2. **Speed** on maps of at least 256 K elements, one core: the codec's encode and decode in MB/s
   of codes (one byte a code), against JPEG XL, zstd-19 and brotli-11 encoding the same codes.
3. **Latency** of a 1x32x7x7 float32 map (32 channels of VGG pool2): ``codec.compress`` and
   ``codec.decompress`` against numpy quantization plus zstd-1 and zstd-1 decompression plus
   dequantization, in the same run.
4. **Overhead**: the fixed bytes of a blob of a 16-element sample.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

import splitans
from splitans.eval import activations

DEFAULT_POINTS = (
    "resnet.layer1", "resnet.layer2", "vgg.pool1", "vgg.pool2", "mobilenetv2.block4.expand", "mobilenetv2.block3.out",
    "densenet.transition2.relu", "densenet.transition1", "swin.stage1", "efficientnet.block4.expand",
    "lite0.stem", "lite0.block3.expand", "lite0.block11.expand", "lite0.block3.out", "lite0.block8.out",
    "minilm.hidden", "minilm.ffn",
)
QUICK_POINTS = ("resnet.layer1", "vgg.pool2", "mobilenetv2.block3.out", "lite0.block11.expand", "minilm.hidden")


PEER_CACHE: dict = {}


def peers_available():
    out = {}
    for name in ("imagecodecs", "zstandard", "brotli", "pcodec"):
        try:
            out[name] = __import__(name)
        except ImportError:
            out[name] = None
    return out


def mosaic(codes: np.ndarray) -> np.ndarray:
    """A sample's codes as one grayscale image: 2-D as is, else channel tiles (the leading
    axes flattened into channels of the last two) laid out near square."""
    if codes.ndim == 1:
        codes = codes[None]
    if codes.ndim == 2:
        return np.ascontiguousarray(codes)
    h, w = codes.shape[-2:]
    tiles = codes.reshape(-1, h, w)
    c = tiles.shape[0]
    cols = max(1, min(c, int(math.ceil(math.sqrt(c * h / w)))))
    rows = -(-c // cols)
    out = np.zeros((rows * h, cols * w), codes.dtype)
    for k in range(c):
        r, j = divmod(k, cols)
        out[r * h : (r + 1) * h, j * w : (j + 1) * w] = tiles[k]
    return out


def order0_bytes(codes: np.ndarray) -> float:
    counts = np.bincount(codes.ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / codes.size
    return float(-(counts[counts > 0] * np.log2(p)).sum() / 8)


def timed(fn, repeat=3):
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def size_row(name, bits, n_test, peers, log):
    cal, tst = activations.load(name)
    tst = tst[:n_test]
    t0 = time.perf_counter()
    codec = splitans.Codec.fit(cal, bits=bits)
    fit_s = time.perf_counter() - t0
    blobs = [codec.compress(x) for x in tst]
    shape = tst.shape[1:]
    codes = [codec._c.decode_codes(b, 1 << 40)[0].reshape(shape) for b in blobs]
    cal_codes = [codec._c.decode_codes(codec.compress(x), 1 << 40)[0].reshape(shape) for x in cal]
    n = int(np.prod(shape))
    row = {"point": name, "bits": bits, "elements": n, "test_samples": len(tst), "fit_s": round(fit_s, 2),
           "codec_bytes": float(np.mean([len(b) for b in blobs])),
           "order0_bytes": float(np.mean([order0_bytes(c) for c in codes])),
           "model": codec.describe()["model"]}
    d = codec.describe()
    quant = dict(bits=bits, scale=d["scale"][0], zero_point=d["zero_point"][0])
    # splitans' self-contained containers on the same codes (values that quantize back to them).
    xs = [((c.astype(np.float32) - quant["zero_point"]) * np.float32(quant["scale"])) for c in codes]
    row["auto_v1_bytes"] = float(np.mean([len(splitans.compress(x, mode="auto", threads=1, version=1, **quant))
                                          for x in xs]))
    row["auto_bytes"] = float(np.mean([len(splitans.compress(x, mode="auto", threads=1, **quant)) for x in xs]))
    row["best_bytes"] = float(np.mean([len(splitans.compress(x, mode="best", threads=1, **quant)) for x in xs]))
    ic, zs, br, pc = peers["imagecodecs"], peers["zstandard"], peers["brotli"], peers["pcodec"]
    if ic is not None:
        def jxl(c):
            # JPEG XL at effort 10 takes seconds a sample: sizes are kept by the codes' digest
            # (--peer-cache), so that runs of two builds encode each sample once.
            key = f"jxl10:{bits}:{hashlib.sha256(c.tobytes()).hexdigest()[:24]}:{c.shape}"
            if key not in PEER_CACHE:
                PEER_CACHE[key] = len(ic.jpegxl_encode(mosaic(c), lossless=True, effort=10, bitspersample=max(bits, 2)))
            return PEER_CACHE[key]

        row["jxl10_bytes"] = float(np.mean([jxl(c) for c in codes]))
    if zs is not None:
        kw = dict(level=19, write_content_size=False, write_checksum=False, write_dict_id=False)
        samples = [c.tobytes() for c in cal_codes]
        dsize = max(256, min(112640, sum(map(len, samples)) // 4))
        dictionary = zs.train_dictionary(dsize, samples, level=19)
        zd = zs.ZstdCompressor(dict_data=dictionary, **kw)
        z19 = zs.ZstdCompressor(**kw)
        row["zstd19_dict_bytes"] = float(np.mean([len(zd.compress(c.tobytes())) for c in codes]))
        row["zstd19_bytes"] = float(np.mean([len(z19.compress(c.tobytes())) for c in codes]))
    if br is not None:
        row["brotli11_bytes"] = float(np.mean([len(br.compress(c.tobytes(), quality=11)) for c in codes]))
    if pc is not None:
        from pcodec import ChunkConfig, standalone

        row["pcodec_bytes"] = float(np.mean([
            len(standalone.simple_compress(c.ravel().astype(np.uint16), ChunkConfig())) for c in codes
        ]))
    peer = min(row.get("jxl10_bytes", math.inf), row.get("zstd19_dict_bytes", math.inf))
    row["win"] = row["codec_bytes"] < peer
    row["gap_pct"] = 100 * (row["codec_bytes"] - peer) / peer if peer < math.inf else None
    log(f"  {name} {bits} bits: codec {row['codec_bytes']:.0f} B vs JXL {row.get('jxl10_bytes', float('nan')):.0f}, "
        f"zstd-dict {row.get('zstd19_dict_bytes', float('nan')):.0f} ({'WIN' if row['win'] else 'LOSE'})")
    return row


def speed_rows(peers, log, points=("lite0.stem", "lite0.block3.expand"), bits_list=(2, 4, 8)):
    rows = []
    ic, zs, br = peers["imagecodecs"], peers["zstandard"], peers["brotli"]
    for name in points:
        cal, tst = activations.load(name)
        for bits in bits_list:
            codec = splitans.Codec.fit(cal[:12], bits=bits)
            x = tst[0]
            blob = codec.compress(x)
            codes = codec._c.decode_codes(blob, 1 << 40)[0].reshape(x.shape)
            n = codes.size
            enc = timed(lambda: codec.compress(x), 5)
            dec = timed(lambda: codec.decompress(blob), 5)
            dec_codes = timed(lambda: codec._c.decode_codes(blob, 1 << 40), 5)
            row = {"point": name, "bits": bits, "elements": n, "bytes": len(blob),
                   "encode_MBps": n / enc / 1e6, "decode_MBps": n / dec / 1e6, "decode_codes_MBps": n / dec_codes / 1e6}
            raw = codes.tobytes()
            if ic is not None:
                img = mosaic(codes)
                row["jxl10_encode_MBps"] = n / timed(
                    lambda: ic.jpegxl_encode(img, lossless=True, effort=10, bitspersample=max(bits, 2)), 1) / 1e6
            if zs is not None:
                zc = zs.ZstdCompressor(level=19)
                row["zstd19_encode_MBps"] = n / timed(lambda: zc.compress(raw), 1) / 1e6
            if br is not None:
                row["brotli11_encode_MBps"] = n / timed(lambda: br.compress(raw, quality=11), 1) / 1e6
            slowest_peer = max(row.get(k, 0) for k in ("jxl10_encode_MBps", "zstd19_encode_MBps", "brotli11_encode_MBps"))
            row["encode_over_fastest_peer"] = row["encode_MBps"] / slowest_peer if slowest_peer else None
            log(f"  {name} {bits} bits: encode {row['encode_MBps']:.0f} MB/s, decode {row['decode_MBps']:.0f} MB/s")
            rows.append(row)
    return rows


def latency_row(peers, log, repeat=2000):
    cal, tst = activations.load("vgg.pool2")
    cal, x = cal[:, :32].copy(), np.ascontiguousarray(tst[0, :32])
    out = {}
    for bits in (4, 8):
        codec = splitans.Codec.fit(cal, bits=bits)
        blob = codec.compress(x)
        d = codec.describe()
        s, z = np.float32(d["scale"][0]), d["zero_point"][0]
        levels = (1 << bits) - 1

        def per_call(fn):
            fn()
            t = time.perf_counter()
            for _ in range(repeat):
                fn()
            return (time.perf_counter() - t) / repeat * 1e6

        row = {"bytes": len(blob), "compress_us": per_call(lambda: codec.compress(x)),
               "decompress_us": per_call(lambda: codec.decompress(blob))}
        zs = peers["zstandard"]
        if zs is not None:
            zc, zd = zs.ZstdCompressor(level=1), zs.ZstdDecompressor()

            def numpy_zstd():
                return zc.compress(np.clip(np.round(x / s) + z, 0, levels).astype(np.uint8).tobytes())

            frame = numpy_zstd()
            row["numpy_zstd1_compress_us"] = per_call(numpy_zstd)
            row["zstd1_numpy_decompress_us"] = per_call(
                lambda: (np.frombuffer(zd.decompress(frame), np.uint8).astype(np.float32) - z) * s)
            row["numpy_zstd1_bytes"] = len(frame)
        log(f"  1x32x7x7 {bits} bits: compress {row['compress_us']:.1f} us, decompress {row['decompress_us']:.1f} us")
        out[bits] = row
    return out


def overhead_row():
    rng = np.random.default_rng(0)
    cal = np.maximum(rng.normal(size=(64, 16)), 0).astype(np.float32)
    codec = splitans.Codec.fit(cal, bits=4)
    x = cal[7]
    blob = codec.compress(x)
    info = codec.inspect(blob)
    self_contained = splitans.compress(x, bits=4)
    v1 = splitans.compress(x, bits=4, version=1)
    return {"elements": 16, "bits": 4, "codec_blob_bytes": len(blob), "codec_fixed_bytes": info["header_bytes"],
            "codec_body_bytes": info["body_bytes"], "packed_codes_bytes": 8, "kind": info["kind"],
            "self_contained_bytes": len(self_contained), "self_contained_v1_bytes": len(v1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default=None, help="comma-separated points (default: all, or a few with --quick)")
    ap.add_argument("--bits", default="2,3,4,8", help="comma-separated bit widths")
    ap.add_argument("--test", type=int, default=40, help="test samples per point (EfficientNet-Lite0: at most 8)")
    ap.add_argument("--quick", action="store_true", help="fewer points and samples")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: size,speed,latency,overhead")
    ap.add_argument("--json", default=None, help="also write every row here")
    ap.add_argument("--peer-cache", default=None, help="a JSON file of JPEG XL sizes by the codes' digest, "
                    "read and extended (peers are the same for every build)")
    ap.add_argument("--no-peer-speed", action="store_true", help="speed section: time the codec only, not the "
                    "peers' encoders (for A/B runs of two builds, benches/ab_trees.py)")
    args = ap.parse_args(argv)
    points = args.points.split(",") if args.points else list(QUICK_POINTS if args.quick else DEFAULT_POINTS)
    bits_list = [int(b) for b in args.bits.split(",")]
    n_test = 10 if args.quick else args.test
    skip = set(filter(None, args.skip.split(",")))
    peers = peers_available()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    result = {"machine": f"{os.cpu_count()} CPUs", "splitans": splitans.__version__,
              "peers": {k: getattr(v, "__version__", "?") if v else None for k, v in peers.items()}}
    if peers["imagecodecs"] is not None:
        result["peers"]["libjxl"] = peers["imagecodecs"].jpegxl_version()
    print(f"# bench_codec: splitans {splitans.__version__}, peers {result['peers']}\n")
    if args.peer_cache and os.path.exists(args.peer_cache):
        with open(args.peer_cache) as f:
            PEER_CACHE.update(json.load(f))
    if "size" not in skip:
        rows = []
        for name in points:
            for bits in bits_list:
                nt = min(n_test, 8) if name.startswith("lite0") else n_test
                rows.append(size_row(name, bits, nt, peers, log))
                if args.peer_cache:
                    with open(args.peer_cache, "w") as f:
                        json.dump(PEER_CACHE, f)
        result["size"] = rows
        print("## Size: mean bytes per test sample (one sample per blob)\n")
        print("| point | elements | bits | codec | b/el | JPEG XL e10 | zstd-19 + dict | zstd-19 | brotli-11 | pcodec "
              "| order-0 bound | splitans auto (v1) | splitans auto | splitans best | vs best peer |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        f = lambda r, k: f"{r[k]:,.0f}" if r.get(k) is not None else "—"  # noqa: E731
        for r in rows:
            verdict = f"{'WIN' if r['win'] else 'LOSE'} {r['gap_pct']:+.1f}%" if r["gap_pct"] is not None else "—"
            print(f"| {r['point']} | {r['elements']:,} | {r['bits']} | {f(r, 'codec_bytes')} | "
                  f"{8 * r['codec_bytes'] / r['elements']:.3f} | {f(r, 'jxl10_bytes')} | {f(r, 'zstd19_dict_bytes')} | "
                  f"{f(r, 'zstd19_bytes')} | {f(r, 'brotli11_bytes')} | {f(r, 'pcodec_bytes')} | {f(r, 'order0_bytes')} | "
                  f"{f(r, 'auto_v1_bytes')} | {f(r, 'auto_bytes')} | {f(r, 'best_bytes')} | {verdict} |")
        wins = sum(r["win"] for r in rows)
        print(f"\nSmaller than both JPEG XL e10 and zstd-19 with a dictionary on {wins} of {len(rows)} rows.\n")
    if "speed" not in skip:
        speed_peers = dict(peers, imagecodecs=None, zstandard=None, brotli=None) if args.no_peer_speed else peers
        srows = speed_rows(speed_peers, log, bits_list=[b for b in bits_list if b in (2, 4, 8)] or [4])
        result["speed"] = srows
        print("## Speed: one core, maps of at least 256 K elements (MB/s of 8-bit codes)\n")
        print("| point | bits | codec encode | codec decode | decode to codes | JPEG XL e10 encode | zstd-19 encode | "
              "brotli-11 encode | encode vs fastest of those |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in srows:
            g = lambda k: f"{r[k]:.1f}" if r.get(k) is not None else "—"  # noqa: E731
            print(f"| {r['point']} | {r['bits']} | {g('encode_MBps')} | {g('decode_MBps')} | {g('decode_codes_MBps')} | "
                  f"{g('jxl10_encode_MBps')} | {g('zstd19_encode_MBps')} | {g('brotli11_encode_MBps')} | "
                  f"{g('encode_over_fastest_peer')}× |")
        print()
    if "latency" not in skip:
        lat = latency_row(peers, log)
        result["latency"] = lat
        print("## Latency: a 1x32x7x7 float32 map, per call (Python included)\n")
        print("| bits | blob bytes | codec compress µs | codec decompress µs | numpy quantize + zstd-1 µs | "
              "zstd-1 decompress + dequantize µs | zstd-1 bytes |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for bits, r in lat.items():
            print(f"| {bits} | {r['bytes']} | {r['compress_us']:.1f} | {r['decompress_us']:.1f} | "
                  f"{r.get('numpy_zstd1_compress_us', float('nan')):.1f} | "
                  f"{r.get('zstd1_numpy_decompress_us', float('nan')):.1f} | {r.get('numpy_zstd1_bytes', '—')} |")
        print()
    if "overhead" not in skip:
        o = overhead_row()
        result["overhead"] = o
        print("## Overhead: a 16-element sample at 4 bits\n")
        print(f"Fitted codec: {o['codec_blob_bytes']} bytes = {o['codec_fixed_bytes']} fixed (tag, id, CRC) + "
              f"{o['codec_body_bytes']} body ({o['kind']}; the codes packed are {o['packed_codes_bytes']} bytes). "
              f"Self-contained splitans.compress: {o['self_contained_bytes']} bytes "
              f"({o['self_contained_v1_bytes']} as format version 1).\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
