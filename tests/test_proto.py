"""The gRPC stubs shipped in the package are what grpcio-tools makes of the .proto beside them,
and importing the runtime needs no compiler."""

import pathlib
import shutil
import subprocess
import sys

import pytest

from strict import need_module

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "python"


def test_committed_stubs_are_fresh():
    need_module("grpc_tools", "pip install '.[test]'")
    from splitans.runtime import protogen

    assert protogen.stale(str(PKG)) == {}, "run: python -m splitans.runtime.protogen"


def test_stale_check_catches_an_edited_proto(tmp_path):
    """The check above can fail: a field added to the .proto makes the messages stale, a method
    added to the service both stubs."""
    need_module("grpc_tools", "pip install '.[test]'")
    from splitans.runtime import protogen

    here = tmp_path / "splitans" / "runtime"
    here.mkdir(parents=True)
    for name in ("splitans_runtime.proto",) + protogen.STUBS:
        shutil.copy(PKG / "splitans" / "runtime" / name, here / name)
    assert protogen.stale(str(tmp_path)) == {}
    proto = here / "splitans_runtime.proto"
    text = proto.read_text()
    proto.write_text(text.replace("message InfoRequest {}", "message InfoRequest { bool verbose = 1; }"))
    assert set(protogen.stale(str(tmp_path))) == {"splitans_runtime_pb2.py"}
    proto.write_text(text.replace("  rpc Info(", "  rpc Ping(InfoRequest) returns (InfoRequest);\n  rpc Info("))
    assert set(protogen.stale(str(tmp_path))) == set(protogen.STUBS)
    out = subprocess.run([sys.executable, "-m", "splitans.runtime.protogen", "--check", "--root", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "splitans_runtime_pb2.py" in out.stderr


def test_stub_versions_match_the_declared_lower_bounds():
    """The stubs refuse an older grpcio or protobuf at import: the extras must not allow one."""
    import re

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    runtime = PKG / "splitans" / "runtime"
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", (runtime / "splitans_runtime_pb2_grpc.py").read_text())[1]
    pb = re.search(r"# Protobuf Python Version: ([\d.]+)", (runtime / "splitans_runtime_pb2.py").read_text())[1]
    major = int(pb.split(".")[0])
    assert f"grpcio>={grpc_version}" in extras["edge"] and f"protobuf>={pb},<{major + 1}" in extras["edge"], extras["edge"]
    for extra in ("runtime", "test"):  # the server side takes the edge's bounds
        deps = extras[extra]
        assert any(d.startswith("splitans[edge") for d in deps) or (
            f"grpcio>={grpc_version}" in deps and f"protobuf>={pb},<{major + 1}" in deps), (extra, deps)
    tools = [d for d in extras["test"] if d.startswith("grpcio-tools")]
    assert tools == [f"grpcio-tools=={grpc_version}"], "the test extra pins the generator the stubs record"


def test_importing_the_runtime_and_the_edge_client_pulls_no_heavy_dependency():
    need_module("grpc", "pip install '.[edge]'")
    code = (
        "import sys, splitans.runtime\n"
        "from splitans.runtime import EdgeClient, Result\n"
        "from splitans.runtime.proto import pb2, pb2_grpc\n"
        "import splitans.runtime.onnx_head, splitans.runtime.cli\n"
        "assert 'splitans.runtime.client' in sys.modules\n"
        # grpc itself imports the bare grpc_tools and grpc_health packages where they are installed
        # (aliases kept for old code); their compiler and services must stay out.
        "bad = [m for m in ('torch', 'ray', 'grpc_tools.protoc', 'grpc_tools._protoc_compiler', 'grpc_health.v1',"
        " 'onnxruntime', 'PIL', 'zstandard', 'splitans.eval', 'splitans.cut') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
