"""`splitans serve`, `splitans export` and `splitans edge`: argument parsers and their commands.
Imports only argparse at module level, so the rest of the CLI starts without grpc, torch or Ray,
and `splitans edge --head head.onnx` runs without torch at all."""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["add_edge", "add_export", "add_serve"]

STRATEGIES = ["codec", "auto", "best", "float32", "float16", "zstd-float16", "jpeg", "png"]


def _fail(code_name: str, message: str):
    """A one-line error with the documented exit status (``splitans._exit.EXIT_*``)."""
    from .. import _exit

    return _exit.CliError(getattr(_exit, code_name), message)


def _progress(command: str):
    """A function that says on stderr what `command` is doing, with the seconds since start (a
    server that loads a model for a minute says so while it does)."""
    t0 = time.perf_counter()

    def say(line: str) -> None:
        try:
            print(f"splitans {command}: [{time.perf_counter() - t0:5.1f} s] {line}", file=sys.stderr, flush=True)
        except (BrokenPipeError, OSError):
            pass

    return say


# ---- serve -----------------------------------------------------------------------------------
def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the tail of a split model over gRPC (alone, or on Ray Serve replicas)",
                       description="Serve the tail of a split model over gRPC. Says on stderr what it does while it "
                                   "starts (loading torch and the model takes a while); the line 'serving ... on port "
                                   "P' on stdout says it is ready. Needs pip install 'splitans[runtime]' "
                                   "('splitans[ray]' for --ray).")
    p.add_argument("--model", required=True, help="PKG.MODULE:FACTORY returning the model (e.g. splitans.eval.serving:fmnist_resnet)")
    p.add_argument("--split", required=True, help="split point: the last module the edge runs")
    p.add_argument("--codec", action="append", default=[], metavar="FILE",
                   help="a fitted codec (Codec.to_bytes) the server holds; the first is its default (repeatable)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="one input's shape, for a factory whose model has no example_input (or input_shape)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (decode on the GPU for splitans containers)")
    p.add_argument("--host", default="localhost",
                   help="address to listen on (default localhost: this machine only; 0.0.0.0 or [::] for every "
                        "interface, which warns without --tls-cert and a token file or --tls-client-ca)")
    p.add_argument("--port", type=int, default=50051, help="port to listen on (default 50051; 0: any free port)")
    sec = p.add_argument_group("security")
    sec.add_argument("--tls-cert", default=None, metavar="PEM", help="the server's certificate chain (TLS)")
    sec.add_argument("--tls-key", default=None, metavar="PEM", help="the server's private key (with --tls-cert)")
    sec.add_argument("--tls-client-ca", default=None, metavar="PEM",
                     help="mutual TLS: clients must present a certificate this CA signed")
    sec.add_argument("--token-file", default=None, metavar="FILE",
                     help="bearer tokens clients must send, one a line (TOKEN or NAME TOKEN); every call without "
                          "one is UNAUTHENTICATED, except health checks")
    sec.add_argument("--token-env", default=None, metavar="VAR", help="a bearer token from this environment variable")
    sec.add_argument("--codec-upload", default=None, choices=["auto", "authenticated", "on", "off"],
                     help="who may upload codecs: auto (default: authenticated clients where the server "
                          "authenticates, anyone on a loopback-only server, else nobody), authenticated, on, off")
    sec.add_argument("--no-codec-upload", action="store_true", help="the same as --codec-upload off")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-batch", type=int, default=16, help="samples per tail batch")
    lim.add_argument("--max-delay-ms", type=float, default=2.0, help="how long a batch waits to fill")
    lim.add_argument("--queue", type=int, default=64,
                     help="requests waiting (each client gets its share); beyond: RESOURCE_EXHAUSTED")
    lim.add_argument("--workers", type=int, default=64, help="concurrent RPCs at most (half of them for streams)")
    lim.add_argument("--streams-per-client", type=int, default=8,
                     help="InferStream calls one client (a token, a certificate, or else a connection) may hold")
    lim.add_argument("--streams-per-connection", type=int, default=100,
                     help="concurrent calls on one connection (HTTP/2, a backstop); more wait their turn")
    lim.add_argument("--stream-idle-s", type=float, default=30.0,
                     help="a stream that sends nothing for this long (nothing in flight) is closed")
    lim.add_argument("--keepalive-s", type=float, default=60.0,
                     help="ping a quiet connection after this long; drop it when the ping goes unanswered")
    lim.add_argument("--max-message-mb", type=float, default=32.0, help="largest request accepted")
    lim.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get on SIGTERM/SIGINT")
    p.add_argument("--ray", action="store_true", help="run the tail on Ray Serve replicas")
    p.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (with --ray)")
    p.add_argument("--address", default=None, help="an existing Ray cluster (with --ray; default: start one here)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    import warnings

    say = (lambda line: None) if args.quiet else _progress("serve")
    # Everything that can be refused is refused before torch and the model load.
    if (args.tls_cert is None) != (args.tls_key is None):
        raise _fail("EXIT_USAGE", "--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise _fail("EXIT_USAGE", "--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    if args.no_codec_upload and args.codec_upload not in (None, "off"):
        raise _fail("EXIT_USAGE", f"--no-codec-upload and --codec-upload {args.codec_upload} contradict each other")
    upload = "off" if args.no_codec_upload else (args.codec_upload or "auto")
    for path in filter(None, (args.tls_cert, args.tls_key, args.tls_client_ca)):
        if not os.path.exists(path):
            raise _fail("EXIT_IO", f"{path}: no such file")
    _check_pem(args.tls_cert, args.tls_key, args.tls_client_ca, server=True)
    tokens = _server_tokens(args)
    input_shape = _shape(args.input_shape, "--input-shape") if args.input_shape else None
    codecs = []
    for path in args.codec:
        codecs.append(_read_codec(path))
    say("importing grpc")
    from .server import Policy, serve

    try:
        policy = Policy(max_message_bytes=int(args.max_message_mb * (1 << 20)), workers=args.workers,
                        streams_per_client=args.streams_per_client, streams_per_connection=args.streams_per_connection,
                        stream_idle_s=args.stream_idle_s, keepalive_s=args.keepalive_s, codec_upload=upload)
    except ValueError as e:
        raise _fail("EXIT_USAGE", str(e)) from None
    tls = (args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            server = serve(args.model, args.split, codecs=codecs, device=args.device, port=args.port, host=args.host,
                           max_batch=args.max_batch, max_delay_ms=args.max_delay_ms, queue_size=args.queue,
                           policy=policy, tls=tls, tokens=tokens, input_shape=input_shape, ray=args.ray,
                           replicas=args.replicas, address=args.address, progress=say)
        except ValueError as e:  # the model, its factory or the split point: one line, exit 2
            raise _fail("EXIT_USAGE", str(e).splitlines()[0]) from None
    for w in caught:
        print(f"splitans serve: warning: {w.message}", file=sys.stderr, flush=True)
    d = server.backend.describe()
    where = f"Ray Serve, {args.replicas} replicas" if args.ray else f"{args.device}"
    guard = ", ".join(filter(None, ["mutual TLS" if args.tls_client_ca else ("TLS" if tls else "plaintext"),
                                    f"{len(tokens)} token{'s' if len(tokens) != 1 else ''}" if tokens else "",
                                    f"codec uploads {server.codec_upload}"]))
    # The handlers before the line that says the server is ready: a SIGTERM right after it drains.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"serving {d['model']} after {d['split']!r} on port {server.port} ({where}; {guard}); activation "
          f"{tuple(d['activation_shape'])}; codecs {', '.join(c[:12] for c in server.registry.ids()) or 'none'}",
          flush=True)
    # Python runs signal handlers in the main thread, and the kernel hands a process's signal to
    # any thread not blocking it (gRPC's, torch's): an untimed wait would sleep through it.
    while not stop.wait(0.2):
        pass
    _say(f"stopping: {args.grace:g} s for requests in flight")
    server.stop(args.grace)
    _say("stopped")
    return 0


def _check_pem(cert, key, ca, server: bool) -> None:
    """Refuses, before anything loads, a certificate that is not one, a key that is not its
    certificate's, a CA file without a certificate (gRPC would only fail to bind, or to
    connect, later and less clearly)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    try:
        if cert:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as e:
        raise _fail("EXIT_DATA", f"--tls-cert {cert} --tls-key {key}: not a PEM certificate chain and its "
                                 f"private key ({e})") from None
    try:
        if ca:
            ctx.load_verify_locations(ca)
    except (ssl.SSLError, ValueError) as e:
        raise _fail("EXIT_DATA", f"{ca}: not PEM certificates ({e})") from None


def _server_tokens(args) -> dict:
    from .auth import read_tokens, token_from_env

    tokens = {}
    try:
        if args.token_file:
            tokens.update(read_tokens(args.token_file))
        if args.token_env:
            tokens.setdefault(f"env:{args.token_env}", token_from_env(args.token_env))
    except FileNotFoundError as e:
        raise _fail("EXIT_IO", f"{e.filename}: no such file") from None
    except ValueError as e:
        raise _fail("EXIT_USAGE", str(e)) from None
    return tokens


def _client_token(args):
    from .auth import read_token, token_from_env

    if args.token_file and args.token_env:
        raise _fail("EXIT_USAGE", "--token-file and --token-env both give the token: choose one")
    try:
        if args.token_file:
            return read_token(args.token_file)
        if args.token_env:
            return token_from_env(args.token_env)
    except FileNotFoundError as e:
        raise _fail("EXIT_IO", f"{e.filename}: no such file") from None
    except ValueError as e:
        raise _fail("EXIT_USAGE", str(e)) from None
    return None


def _shape(text: str, option: str) -> tuple:
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise _fail("EXIT_USAGE", f"{option} {text}: integers separated by commas, e.g. 3,224,224") from None
    if not shape or min(shape) < 1:
        raise _fail("EXIT_USAGE", f"{option} {text}: every axis at least 1")
    return shape


def _say(line: str) -> None:
    """Print, unless whoever started us has gone (a closed pipe must not stop the shutdown)."""
    try:
        print(line, flush=True)
    except (BrokenPipeError, OSError):
        pass


# ---- inputs ----------------------------------------------------------------------------------
INPUTS_HELP = ("'examples' (the factory's example inputs; needs --model), 'fmnist:N' / 'fmnist-train:N' (the first "
               "N Fashion-MNIST test / training images, Debian's dataset-fashion-mnist), FILE.npy (an array whose "
               "first axis indexes the inputs, already preprocessed), 'imagenet' (foolbox's 20 images, preprocessed "
               "for EfficientNet-Lite0 with torch: pip install --no-deps foolbox==3.3.4) or image files, "
               "comma-separated (through the model's own preprocess, which --model's factory must give; with "
               "--strategy jpeg/png they are sent whole and the server preprocesses them)")


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _local_answer(client, strategy: str, head, tail, loaded, x):
    """(top-1 of the same computation done here: the head, the same encoding and its decoding,
    the tail; top-1 of the uncompressed whole model) for one input, for --check. The first is
    what a correct server must answer; the two differ where the encoding itself loses (a lossy
    codec, JPEG), which is no fault of the service."""
    import numpy as np
    import torch

    from . import encodings
    from .._fitted import Codec
    from .client import run_head

    with torch.no_grad():
        if strategy in encodings.IMAGE_STRATEGIES:
            shape = tuple(loaded.example.shape[1:])
            _, payload, _ = encodings.encode_image(strategy, x)
            local = loaded.model(torch.from_numpy(encodings.decode_image(payload, shape, loaded.transform)))
            # The uncompressed image: the same decoder on a PNG of it (lossless).
            _, png, _ = encodings.encode_image("png", x)
            whole = loaded.model(torch.from_numpy(encodings.decode_image(png, shape, loaded.transform)))
        else:
            a = run_head(head, x)
            codec = client.codec if isinstance(client.codec, Codec) else None
            enc, payload, shape = encodings.encode(strategy, a, codec=codec, options=client.options)
            back = encodings.decode(enc, payload, shape, activation_shape=tuple(np.asarray(a).shape[1:]), codec=codec)
            local = tail(torch.from_numpy(np.ascontiguousarray(back)))
            whole = loaded.model(torch.as_tensor(np.asarray(x)))
    return int(local.argmax(1)[0]), int(whole.argmax(1)[0])


def _check_inputs(spec: str, has_model: bool) -> None:
    """Refuses, before anything is loaded, inputs that cannot be had here (exit 2, 3 or 5)."""
    if spec == "examples":
        if not has_model:
            raise _fail("EXIT_USAGE", "--inputs examples are the model factory's: give --model, or other --inputs")
        return
    if spec.startswith(("fmnist:", "fmnist-train:")):
        kind, _, n = spec.partition(":")
        if not n.isdigit() or int(n) < 1:
            raise _fail("EXIT_USAGE", f"--inputs {spec}: N must be a positive integer")
        from ..eval.fmnist import DATA_DIR

        name = "t10k-images-idx3-ubyte.gz" if kind == "fmnist" else "train-images-idx3-ubyte.gz"
        if not os.path.exists(os.path.join(DATA_DIR, name)):
            raise _fail("EXIT_IO", f"--inputs {spec}: Fashion-MNIST is not at {DATA_DIR} (apt-get install -y "
                                   "dataset-fashion-mnist, or set SPLITANS_FMNIST_DIR)")
        return
    if spec.endswith(".npy"):
        if not os.path.exists(spec):
            raise _fail("EXIT_IO", f"--inputs {spec}: no such file")
        return
    needed = ["foolbox", "torch", "PIL"] if spec == "imagenet" else ["PIL"]
    missing = [m for m in needed if not _installed(m)]
    if spec == "imagenet" and "foolbox" in missing:
        raise _fail("EXIT_MISSING", "--inputs imagenet reads the 20 ImageNet images foolbox ships, and foolbox is not "
                                    "installed: pip install --no-deps foolbox==3.3.4")
    if missing:
        raise _fail("EXIT_MISSING", f"--inputs {spec} reads images with {' and '.join(needed[1:] if spec == 'imagenet' else needed)}, and "
                                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                                    "pip install 'splitans[runtime]', or send preprocessed inputs as FILE.npy")
    if spec != "imagenet":
        for path in spec.split(","):
            if not os.path.exists(path):
                raise _fail("EXIT_IO", f"--inputs: {path}: no such file")


def _image_channels(example_shape=None, onnx_input_shape=None) -> int:
    """The channels an image input is read with: those of the model's example input, or of the
    ONNX head's input (N, C, H, W) when C is fixed; else 3 (RGB)."""
    for shape in (example_shape, onnx_input_shape):
        if shape is not None and len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0:
            return int(shape[1])
    return 3


def _inputs(spec: str, model=None, channels: int = 3):
    """(list of per-input batch-1 arrays or tensors, or None; list of H x W x C uint8 images or
    None). Image files become inputs through the model's own preprocess only (None without
    one); `channels`: 1 reads them as grayscale."""
    import numpy as np

    if spec == "examples":
        x = model.example_input
        return [x[i : i + 1] for i in range(len(x))], None
    if spec.startswith(("fmnist:", "fmnist-train:")):
        from ..eval import fmnist

        kind, _, n = spec.partition(":")
        x, _ = fmnist.load_numpy("test" if kind == "fmnist" else "train")
        x = x[: int(n)]
        imgs = [np.clip(np.rint((xi[0] * fmnist.STD + fmnist.MEAN) * 255), 0, 255).astype(np.uint8)[:, :, None]
                for xi in x]
        return [x[i : i + 1] for i in range(len(x))], imgs
    if spec.endswith(".npy"):
        x = np.load(spec, allow_pickle=False)
        if x.ndim < 1 or x.dtype.kind != "f":
            raise _fail("EXIT_DATA", f"--inputs {spec}: a float array with the inputs on its first axis, not "
                                     f"{x.dtype} {x.shape}")
        return [x[i : i + 1] for i in range(len(x))], None
    if spec != "imagenet":
        from PIL import Image

        imgs = []
        for path in spec.split(","):
            try:
                img = np.asarray(Image.open(path).convert("L" if channels == 1 else "RGB"))
            except (OSError, ValueError) as e:
                raise _fail("EXIT_DATA", f"--inputs: {path}: not an image PIL reads ({e})") from None
            imgs.append(img[:, :, None] if img.ndim == 2 else img)
        preprocess = None if model is None else getattr(model, "preprocess", None) or getattr(model, "input_transform", None)
        if preprocess is None:
            return None, imgs
        xs = []
        for img in imgs:
            x = preprocess(img)
            xs.append(x if hasattr(x, "shape") and len(x.shape) and x.shape[0] == 1 else x[None])
        return xs, imgs
    from ..eval import models

    x = models.imagenet_images()[2]
    # The 224 x 224 crop back to uint8, for the image strategies.
    imgs = [np.clip(np.rint((xi.permute(1, 2, 0).numpy() * 0.502 + 0.498) * 255), 0, 255).astype(np.uint8) for xi in x]
    return [x[i : i + 1] for i in range(len(x))], imgs


def _read_codec(path: str):
    from .._core import CorruptDataError
    from .._fitted import Codec

    with open(path, "rb") as f:
        data = f.read()
    try:
        return Codec.from_bytes(data)
    except CorruptDataError as e:
        raise _fail("EXIT_DATA", f"{path}: not a fitted codec ({e})") from None


# ---- export ----------------------------------------------------------------------------------
def add_export(sub) -> None:
    p = sub.add_parser("export", help="write the head of a split model as ONNX (and fit its codec) for an edge device",
                       description="Cut the model as `splitans serve` does, write the head as one ONNX file (batch "
                                   "axis dynamic where the model allows) checked against the torch head with ONNX "
                                   "Runtime, and optionally fit a codec on calibration inputs. Copy both to the "
                                   "device, which runs `splitans edge --head HEAD.onnx --codec CODEC` with "
                                   "pip install 'splitans[edge,onnx]'. Needs pip install 'splitans[runtime]'.")
    p.add_argument("--model", required=True, help="PKG.MODULE:FACTORY (the model the server cuts)")
    p.add_argument("--split", required=True, help="split point (the server's)")
    p.add_argument("--onnx", "-o", required=True, metavar="HEAD.onnx", help="where to write the head")
    p.add_argument("--fit-codec", type=int, default=0, metavar="N", help="fit a codec on N calibration inputs")
    p.add_argument("--calibration", default="examples", metavar="INPUTS",
                   help="the inputs to fit on (as edge --inputs; default: the factory's examples; use training "
                        "images, e.g. fmnist-train:512, not the ones you test on)")
    p.add_argument("--bits", type=int, default=8, help="bits of the fitted codec (default 8)")
    p.add_argument("--axis", type=int, default=None, help="quantize per channel along this axis of a sample (0)")
    p.add_argument("--codec-out", default=None, metavar="FILE", help="where to write the codec (with --fit-codec)")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.fit_codec and not args.codec_out:
        raise _fail("EXIT_USAGE", "--fit-codec needs --codec-out FILE")
    if args.fit_codec:
        _check_inputs(args.calibration, True)
    say = _progress("export")
    say(f"loading {args.model}")
    import numpy as np
    import torch

    from .._fitted import Codec
    from ..cut import export_onnx, split
    from .service import load_model

    loaded = load_model(args.model)
    head, _ = split(loaded.model, args.split, loaded.example)
    say(f"exporting the head (up to {args.split!r}) to {args.onnx}")
    report = export_onnx(head, loaded.example, args.onnx)
    print(f"wrote {args.onnx}: {report['bytes']:,} bytes, activation {report['activation_shape']}, batch axis "
          f"{'dynamic' if report['dynamic_batch'] else 'fixed at ' + str(len(loaded.example))}; ONNX Runtime "
          f"against torch on {len(loaded.example)} example inputs: max |diff| {report['max_abs_diff']:.3g}")
    if args.fit_codec:
        xs, _ = _inputs(args.calibration, loaded.model)
        if len(xs) < args.fit_codec:
            raise _fail("EXIT_USAGE", f"--fit-codec {args.fit_codec}: --calibration {args.calibration} has "
                                      f"{len(xs)} inputs")
        batch = np.concatenate([np.asarray(v) for v in xs[: args.fit_codec]])
        with torch.no_grad():
            acts = head(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()
        codec = Codec.fit(acts, bits=args.bits, axis=args.axis)
        with open(args.codec_out, "wb") as f:
            f.write(codec.to_bytes())
        print(f"wrote {args.codec_out}: codec {codec.id[:12]}, {args.bits} bits, fitted on {args.fit_codec} inputs "
              f"of {args.calibration}")
    return 0


# ---- edge ------------------------------------------------------------------------------------
def add_edge(sub) -> None:
    p = sub.add_parser("edge", help="run the head of a split model here and send its activations to `splitans serve`",
                       description="Run the head here (an ONNX file through ONNX Runtime with --head: no torch; or "
                                   "the model cut in torch with --model and --split), encode each activation, send it "
                                   "to `splitans serve` and print the answers, one line each as they come. The edge "
                                   "alone: pip install 'splitans[edge,onnx]'.")
    p.add_argument("--target", default="localhost:50051", help="the server, HOST:PORT")
    p.add_argument("--head", default=None, metavar="HEAD.onnx",
                   help="the head as ONNX (splitans export), run by ONNX Runtime; --model and --split not needed")
    p.add_argument("--model", default=None, help="PKG.MODULE:FACTORY (the same model the server cut; needs torch)")
    p.add_argument("--split", default=None, help="split point (the server's; with --model)")
    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="how to send (default: codec when --codec is given or the server has one, else auto)")
    p.add_argument("--codec", default=None, metavar="FILE", help="a fitted codec; 'server' uses the server's")
    p.add_argument("--fit-codec", type=int, default=0, metavar="N",
                   help="fit a codec here on N inputs (the model's examples with --model, else the first N of "
                        "--inputs) and give it to the server")
    p.add_argument("--bits", type=int, default=8, help="bits for --fit-codec and the auto/best strategies")
    p.add_argument("--inputs", default="examples", help=INPUTS_HELP)
    p.add_argument("--stream", action="store_true", help="send all inputs over one streaming call")
    p.add_argument("--check", action="store_true", help="compare each answer with local head+tail inference (--model)")
    p.add_argument("--expect", default=None, metavar="CLASSES.npy",
                   help="the right top-1 class of each input (e.g. the whole model's, computed elsewhere): count "
                        "the answers that differ")
    p.add_argument("--top-k", type=int, default=5, help="classes to return per input (default 5)")
    p.add_argument("--deadline", type=float, default=60.0,
                   help="seconds each request may take in all, retries included (default 60)")
    sec = p.add_argument_group("security")
    sec.add_argument("--tls", action="store_true", help="TLS, checking the server against the system's roots")
    sec.add_argument("--tls-ca", default=None, metavar="PEM", help="TLS, checking the server against this CA")
    sec.add_argument("--tls-cert", default=None, metavar="PEM", help="mutual TLS: this client's certificate")
    sec.add_argument("--tls-key", default=None, metavar="PEM", help="mutual TLS: this client's key")
    sec.add_argument("--tls-server-name", default=None, metavar="NAME",
                     help="the name the server's certificate must carry, when it is not the target's host")
    sec.add_argument("--token-file", default=None, metavar="FILE", help="a file holding the bearer token")
    sec.add_argument("--token-env", default=None, metavar="VAR", help="the bearer token from this environment variable")
    p.set_defaults(run=run_edge)


def run_edge(args: argparse.Namespace) -> int:
    import numpy as np

    # Everything that can be refused is refused before a model, torch or ONNX Runtime loads.
    if args.head is None and (args.model is None or args.split is None):
        raise _fail("EXIT_USAGE", "give the head: --head HEAD.onnx, or --model PKG.MODULE:FACTORY with --split POINT")
    if args.head is not None and not os.path.exists(args.head):
        raise _fail("EXIT_IO", f"--head {args.head}: no such file")
    if args.check and args.model is None:
        raise _fail("EXIT_USAGE", "--check runs the whole model locally: it needs --model and --split "
                                  "(or give the right answers with --expect)")
    if args.fit_codec and args.codec:
        raise _fail("EXIT_USAGE", "--fit-codec and --codec both give the codec: choose one")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise _fail("EXIT_USAGE", "--tls-cert and --tls-key go together")
    for path in filter(None, (args.tls_ca, args.tls_cert, args.tls_key)):
        if not os.path.exists(path):
            raise _fail("EXIT_IO", f"{path}: no such file")
    _check_pem(args.tls_cert, args.tls_key, args.tls_ca, server=False)
    if not args.deadline > 0:
        raise _fail("EXIT_USAGE", f"--deadline {args.deadline}: a positive number of seconds")
    token = _client_token(args)
    _check_inputs(args.inputs, args.model is not None)
    if args.head is not None:
        if not _installed("onnxruntime"):
            raise _fail("EXIT_MISSING", "--head runs the ONNX file with onnxruntime, which is not installed: "
                                        "pip install 'splitans[onnx]'")
    expect = None
    if args.expect:
        expect = np.load(args.expect, allow_pickle=False)
        if expect.ndim != 1 or expect.dtype.kind not in "iu":
            raise _fail("EXIT_DATA", f"--expect {args.expect}: one integer class per input, not {expect.dtype} "
                                     f"{expect.shape}")
    codec = "server" if args.codec == "server" else (_read_codec(args.codec) if args.codec else None)

    from .client import EdgeClient, RemoteError

    loaded = None
    if args.head is not None:
        from .onnx_head import OnnxHead

        head = OnnxHead(args.head)
    else:
        import torch

        from ..cut import split
        from .service import load_model

        torch.set_num_threads(1)
        loaded = load_model(args.model)
        head, tail = split(loaded.model, args.split, loaded.example)
    channels = _image_channels(loaded.example.shape if loaded is not None else None,
                               head.input_shape if args.head is not None else None)
    inputs, images = _inputs(args.inputs, loaded.model if loaded is not None else None, channels)
    if inputs is None and (args.strategy or "codec") not in ("jpeg", "png"):
        raise _fail("EXIT_USAGE", f"--inputs {args.inputs}: images become the head's inputs through the model's own "
                                  "preprocess, and " + ("this model's factory gives none (model.preprocess)"
                                                         if loaded is not None else "--head gives none")
                    + "; send them whole with --strategy jpeg or png (the server preprocesses them), or give "
                      "preprocessed inputs as FILE.npy")
    if inputs is None and (args.check or args.fit_codec):
        raise _fail("EXIT_USAGE", f"--{'check' if args.check else 'fit-codec'} runs the model on the inputs, and "
                                  "these images have no preprocess here (model.preprocess)")
    count = len(images if inputs is None else inputs)
    if expect is not None and len(expect) != count:
        raise _fail("EXIT_USAGE", f"--expect holds {len(expect)} classes for {count} inputs")
    if args.fit_codec:
        from .._fitted import Codec
        from .client import run_head

        calib = loaded.example[: args.fit_codec] if loaded is not None else np.concatenate(
            [np.asarray(x) for x in inputs[: args.fit_codec]])
        a = run_head(head, calib)
        codec = Codec.fit(a.numpy() if hasattr(a, "numpy") else a, bits=args.bits)
    strategy = args.strategy or ("codec" if codec is not None else "auto")
    if strategy in ("jpeg", "png"):
        if images is None:
            raise _fail("EXIT_USAGE", f"--strategy {strategy} needs image inputs (fmnist:N, imagenet or files)")
        sent = images
    else:
        sent = inputs
    tls = args.tls or any((args.tls_ca, args.tls_cert))
    client = EdgeClient(args.target, None if strategy in ("jpeg", "png") else head, codec, strategy=strategy,
                        bits=args.bits, top_k=args.top_k, deadline=args.deadline, tls=tls, root_certs=args.tls_ca,
                        client_cert=args.tls_cert, client_key=args.tls_key, server_name=args.tls_server_name,
                        token=token)
    t = time.perf_counter()
    try:
        info = client.connect()
    except RemoteError as e:
        raise _fail("EXIT_IO", f"the server at {args.target}: {e}") from None
    print(f"server: {info.model} after {info.split!r}, activation {tuple(info.activation_shape)}; "
          f"strategy {strategy}" + (f", codec {client.codec.id[:12]} ({'uploaded' if client.uploads else 'agreed'})"
                                    if strategy == "codec" else ""), flush=True)
    results = client.stream(sent) if args.stream else (client.infer(x, i) for i, x in enumerate(sent))
    wrong = errors = answered = lossy = 0
    sizes = []
    for r in results:
        sizes.append(r.payload_bytes)
        if r.error is not None:
            print(f"input {r.index:3d}: {r.error}", flush=True)
            errors += 1
            continue
        answered += 1
        top = int(r.top_k_index[0, 0])
        name = client.class_name(top)
        line = f"input {r.index:3d}: top-1 {name!r} ({top})" if name else f"input {r.index:3d}: top-1 {top}"
        if expect is not None or args.check:
            if expect is not None:
                want = int(expect[r.index])
            else:
                want, whole = _local_answer(client, strategy, head, tail, loaded, sent[r.index])
                lossy += whole != want
            ok = want == top
            wrong += not ok
            line += f" ({'expected' if expect is not None else 'local'} {want}{'' if ok else ', DIFFERS'})"
        tm = r.timing
        if tm:
            line += (f"  {r.payload_bytes:,} B  head {tm['head_ms']:.1f} encode {tm['encode_ms']:.1f} "
                     f"transfer {tm['transfer_ms']:.1f} decode {tm['decode_ms']:.1f} tail {tm['tail_ms']:.1f} "
                     f"queue {tm['queue_ms']:.1f} ms")
        print(line, flush=True)
    wall = time.perf_counter() - t
    n = len(sizes)
    print(f"{n} requests in {wall:.2f} s; mean payload {np.mean(sizes) if sizes else 0:,.0f} B; retried {client.retried}"
          + (f"; {wrong} differ from local inference through the same encoding; {lossy} of the local answers "
             f"differ from the uncompressed model's (the encoding's own loss)" if args.check else "")
          + (f"; {n} requests, {answered} answered, {wrong} wrong" if expect is not None else ""))
    client.close()
    return 1 if wrong or errors else 0


