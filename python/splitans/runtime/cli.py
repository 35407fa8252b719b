"""`splitans serve` and `splitans edge`: argument parsers and their commands. Imports only
argparse at module level, so the rest of the CLI starts without grpc, torch or Ray."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_edge", "add_serve"]


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the tail of a split model over gRPC (alone, or on Ray Serve replicas)")
    p.add_argument("--model", required=True, help="PKG.MODULE:FACTORY returning the model (e.g. splitans.eval.serving:fmnist_resnet)")
    p.add_argument("--split", required=True, help="split point: the last module the edge runs")
    p.add_argument("--codec", action="append", default=[], metavar="FILE",
                   help="a fitted codec (Codec.to_bytes) the server holds; the first is its default (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (decode on the GPU for splitans containers)")
    p.add_argument("--host", default="[::]", help="address to listen on (default [::]: every interface)")
    p.add_argument("--port", type=int, default=50051, help="port to listen on (default 50051; 0: any free port)")
    p.add_argument("--max-batch", type=int, default=16, help="samples per tail batch")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="how long a batch waits to fill")
    p.add_argument("--queue", type=int, default=64, help="requests waiting at most; beyond: RESOURCE_EXHAUSTED")
    p.add_argument("--workers", type=int, default=32, help="concurrent RPCs at most")
    p.add_argument("--max-message-mb", type=float, default=32.0, help="largest request accepted")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get on SIGTERM/SIGINT")
    p.add_argument("--no-codec-upload", action="store_true", help="refuse codecs uploaded by clients")
    p.add_argument("--ray", action="store_true", help="run the tail on Ray Serve replicas")
    p.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (with --ray)")
    p.add_argument("--address", default=None, help="an existing Ray cluster (with --ray; default: start one here)")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .._fitted import Codec
    from .server import serve

    codecs = []
    for path in args.codec:
        with open(path, "rb") as f:
            codecs.append(Codec.from_bytes(f.read()))
    server = serve(args.model, args.split, codecs=codecs, device=args.device, port=args.port, host=args.host,
                   max_batch=args.max_batch, max_delay_ms=args.max_delay_ms, queue_size=args.queue,
                   workers=args.workers, max_message_bytes=int(args.max_message_mb * (1 << 20)),
                   allow_codec_upload=not args.no_codec_upload, ray=args.ray, replicas=args.replicas,
                   address=args.address)
    d = server.backend.describe()
    where = f"Ray Serve, {args.replicas} replicas" if args.ray else f"{args.device}"
    print(f"serving {d['model']} after {d['split']!r} on port {server.port} ({where}); activation "
          f"{tuple(d['activation_shape'])}; codecs {', '.join(c[:12] for c in d['codec_ids']) or 'none'}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    _say(f"stopping: {args.grace:g} s for requests in flight")
    server.stop(args.grace)
    _say("stopped")
    return 0


def _say(line: str) -> None:
    """Print, unless whoever started us has gone (a closed pipe must not stop the shutdown)."""
    try:
        print(line, flush=True)
    except (BrokenPipeError, OSError):
        pass


def add_edge(sub) -> None:
    p = sub.add_parser("edge", help="run the head of a split model here and send its activations to `splitans serve`")
    p.add_argument("--target", default="localhost:50051", help="the server, HOST:PORT")
    p.add_argument("--model", required=True, help="PKG.MODULE:FACTORY (the same model the server cut)")
    p.add_argument("--split", required=True, help="split point (the server's)")
    p.add_argument("--strategy", default=None, choices=["codec", "auto", "best", "float32", "float16", "zstd-float16",
                                                         "jpeg", "png"],
                   help="how to send (default: codec when --codec is given or the server has one, else auto)")
    p.add_argument("--codec", default=None, metavar="FILE", help="a fitted codec; 'server' uses the server's")
    p.add_argument("--fit-codec", type=int, default=0, metavar="N",
                   help="fit a codec on N of the model's example inputs here (and give it to the server)")
    p.add_argument("--bits", type=int, default=8, help="bits for --fit-codec and the auto/best strategies")
    p.add_argument("--inputs", default="examples",
                   help="'examples' (the factory's example inputs), 'fmnist:N' (Fashion-MNIST test images), "
                        "'imagenet' (foolbox's 20 images) or image files, comma-separated")
    p.add_argument("--stream", action="store_true", help="send all inputs over one streaming call")
    p.add_argument("--check", action="store_true", help="compare each answer with local head+tail inference")
    p.add_argument("--top-k", type=int, default=5, help="classes to return per input (default 5)")
    p.set_defaults(run=run_edge)


def _inputs(spec: str, model):
    """(list of per-input batch-1 tensors, list of H x W x C uint8 images or None)."""
    import numpy as np
    import torch

    if spec == "examples":
        x = model.example_input
        return [x[i : i + 1] for i in range(len(x))], None
    if spec.startswith("fmnist:"):
        from ..eval import fmnist

        n = int(spec.split(":", 1)[1])
        x, _ = fmnist.load_data("test")
        x = x[:n]
        imgs = [np.clip(np.rint((xi[0].numpy() * fmnist.STD + fmnist.MEAN) * 255), 0, 255).astype(np.uint8)[:, :, None]
                for xi in x]
        return [x[i : i + 1] for i in range(n)], imgs
    if spec == "imagenet":
        from ..eval import models

        got = models.imagenet_images()
        if got is None:
            raise SystemExit("--inputs imagenet needs foolbox's images: pip install --no-deps foolbox==3.3.4")
        x = got[2]
    else:
        from PIL import Image

        from ..eval import models

        x = torch.cat([models.preprocess(np.asarray(Image.open(p).convert("RGB"))) for p in spec.split(",")])
    # The 224 x 224 crop back to uint8, for the image strategies.
    imgs = [np.clip(np.rint((xi.permute(1, 2, 0).numpy() * 0.502 + 0.498) * 255), 0, 255).astype(np.uint8) for xi in x]
    return [x[i : i + 1] for i in range(len(x))], imgs


def run_edge(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from .._fitted import Codec
    from .client import EdgeClient
    from .cut import split
    from .service import load_model

    torch.set_num_threads(1)
    loaded = load_model(args.model)
    head, tail = split(loaded.model, args.split, loaded.example)
    codec = None
    if args.codec == "server":
        codec = "server"
    elif args.codec:
        with open(args.codec, "rb") as f:
            codec = Codec.from_bytes(f.read())
    elif args.fit_codec:
        with torch.no_grad():
            codec = Codec.fit(head(loaded.example[: args.fit_codec]), bits=args.bits)
    inputs, images = _inputs(args.inputs, loaded.model)
    strategy = args.strategy or ("codec" if codec is not None else "auto")
    if strategy in ("jpeg", "png"):
        if images is None:
            raise SystemExit(f"--strategy {strategy} needs image inputs (fmnist:N, imagenet or files)")
        sent = images
    else:
        sent = inputs
    client = EdgeClient(args.target, None if strategy in ("jpeg", "png") else head, codec, strategy=strategy,
                        bits=args.bits, top_k=args.top_k)
    t = time.perf_counter()
    info = client.connect()
    print(f"server: {info.model} after {info.split!r}, activation {tuple(info.activation_shape)}; "
          f"strategy {strategy}" + (f", codec {client.codec.id[:12]} ({'uploaded' if client.uploads else 'agreed'})"
                                    if strategy == "codec" else ""))
    results = sorted(client.stream(sent), key=lambda r: r.index) if args.stream else \
        [client.infer(x, i) for i, x in enumerate(sent)]
    wall = time.perf_counter() - t
    wrong = 0
    for r in results:
        line = f"input {r.index:3d}: top-1 {int(r.top_k_index[0, 0])}"
        if r.error is not None:
            line = f"input {r.index:3d}: {r.error}"
            wrong += 1
        elif args.check:
            with torch.no_grad():
                want = int(loaded.model(inputs[r.index]).argmax(1)[0])
            ok = want == int(r.top_k_index[0, 0])
            wrong += not ok
            line += f" (local whole model {want}{'' if ok else ', DIFFERS'})"
        tm = r.timing
        if tm:
            line += (f"  {r.payload_bytes:,} B  head {tm['head_ms']:.1f} encode {tm['encode_ms']:.1f} "
                     f"transfer {tm['transfer_ms']:.1f} decode {tm['decode_ms']:.1f} tail {tm['tail_ms']:.1f} "
                     f"queue {tm['queue_ms']:.1f} ms")
        print(line)
    sizes = [r.payload_bytes for r in results]
    print(f"{len(results)} requests in {wall:.2f} s; mean payload {np.mean(sizes):,.0f} B; retried {client.retried}"
          + (f"; {wrong} differ from local inference" if args.check else ""))
    client.close()
    return 1 if wrong else 0


def main(argv=None) -> int:  # pragma: no cover - `python -m splitans.runtime.cli`
    parser = argparse.ArgumentParser(prog="splitans")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve(sub)
    add_edge(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
