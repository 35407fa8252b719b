"""Every CUDA kernel file compiles with NVRTC for compute_80 and compute_90, without a warning.

Each file is compiled as ``splitans.gpu`` hands it to CuPy: headers inlined by
``gpu.kernel_source``, ``gpu.COMPILE_OPTIONS``, plus the ``-ftz=true`` that CuPy appends. Warnings
are errors (``-Werror=all-warnings``), and any "warning" left in the log fails too. The PTX is then
checked: every kernel ``splitans.gpu`` launches is there, no binary32 arithmetic flushes subnormals
(the quantizer must be IEEE whatever CuPy's -ftz), and nothing spills to local memory. Needs only
NVRTC (the ``nvidia-cuda-nvrtc`` wheel, or a CUDA toolkit), not a GPU; skipped if NVRTC cannot be
loaded at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.resources
import os
import pathlib
import re
import sys
from typing import List, Tuple

import pytest

from splitans import gpu
from strict import need

CUDA_DIR = pathlib.Path(__file__).resolve().parents[1] / "python" / "splitans" / "cuda"
ARCHS = ("compute_80", "compute_90")


def read_repo(name: str) -> str:
    return (CUDA_DIR / name).read_text(encoding="utf-8")


class Nvrtc:
    """compile(source, name, options) -> (ok, log, ptx) through cuda-bindings or ctypes."""

    def __init__(self):
        self.backend, self.why = None, []
        try:
            from cuda.bindings import nvrtc

            nvrtc.nvrtcVersion()
            self.nvrtc, self.backend = nvrtc, "cuda-bindings"
            return
        except Exception as e:  # not installed, or no libnvrtc behind it
            self.why.append(f"cuda.bindings.nvrtc: {e}")
        for path in self._candidates():
            try:
                self.lib = ctypes.CDLL(path)
                self.backend = f"ctypes:{path}"
                return
            except OSError as e:
                self.why.append(f"{path}: {e}")

    @staticmethod
    def _candidates() -> List[str]:
        out = []
        for base in sys.path:
            out += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", "libnvrtc.so*")), reverse=True)
            out += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")), reverse=True)
        for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
            if home:
                out += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")), reverse=True)
        found = ctypes.util.find_library("nvrtc")
        return [p for p in out if "builtins" not in p] + ([found] if found else [])

    def compile(self, source: str, name: str, options: List[str]) -> Tuple[bool, str, str, bool]:
        """(compiled, log, ptx, options_rejected)."""
        if self.backend == "cuda-bindings":
            n = self.nvrtc
            err, prog = n.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], [])
            assert err == n.nvrtcResult.NVRTC_SUCCESS
            try:
                (res,) = n.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])
                _, size = n.nvrtcGetProgramLogSize(prog)
                log = b" " * size
                n.nvrtcGetProgramLog(prog, log)
                ptx = b""
                if res == n.nvrtcResult.NVRTC_SUCCESS:
                    _, size = n.nvrtcGetPTXSize(prog)
                    ptx = b" " * size
                    n.nvrtcGetPTX(prog, ptx)
                rejected = res == n.nvrtcResult.NVRTC_ERROR_INVALID_OPTION
                return res == n.nvrtcResult.NVRTC_SUCCESS, _text(log), _text(ptx), rejected
            finally:
                n.nvrtcDestroyProgram(prog)
        lib = self.lib
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None) == 0
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            res = lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            ptx = b""
            if res == 0:
                lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
                buf = ctypes.create_string_buffer(size.value)
                lib.nvrtcGetPTX(prog, buf)
                ptx = buf.raw
            return res == 0, _text(log.raw), _text(ptx), res == 5  # 5: NVRTC_ERROR_INVALID_OPTION
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace").rstrip("\x00").strip()


@pytest.fixture(scope="module")
def nvrtc() -> Nvrtc:
    n = Nvrtc()
    if n.backend is None:
        need(False, "NVRTC cannot be loaded (pip install nvidia-cuda-nvrtc, or a CUDA toolkit): " + "; ".join(n.why))
    return n


_PTX_CACHE = {}


def compile_kernel(nvrtc: Nvrtc, name: str, arch: str) -> str:
    key = (name, arch)
    if key not in _PTX_CACHE:
        source = gpu.kernel_source(name, read=read_repo)
        base = [*gpu.COMPILE_OPTIONS, "-ftz=true", f"--gpu-architecture={arch}"]
        ok, log, ptx, rejected = nvrtc.compile(source, name, [*base, "-Werror=all-warnings"])
        if rejected:  # an NVRTC without -Werror: the log check below still fails on any warning
            ok, log, ptx, _ = nvrtc.compile(source, name, base)
        assert ok, f"{name} ({arch}) does not compile:\n{log}"
        assert "warning" not in log.lower(), f"{name} ({arch}) compiles with warnings:\n{log}"
        _PTX_CACHE[key] = ptx
    return _PTX_CACHE[key]


def test_kernel_files_are_all_listed():
    """A new .cu or .cuh file must be in splitans.gpu.loader's lists, which this test and the wheel use."""
    assert sorted(p.name for p in CUDA_DIR.glob("*.cu")) == sorted(gpu.KERNEL_FILES)
    assert sorted(p.name for p in CUDA_DIR.glob("*.cuh")) == sorted(gpu.HEADER_FILES)


def test_packaged_kernels_match_the_repository():
    """The installed package ships the kernels (importlib.resources) and they are these files.
    Fails after editing a kernel without reinstalling (pip install .)."""
    root = importlib.resources.files("splitans").joinpath("cuda")
    for name in (*gpu.KERNEL_FILES, *gpu.HEADER_FILES):
        assert root.joinpath(name).read_text(encoding="utf-8") == read_repo(name), f"installed {name} is stale"
        assert gpu.kernel_source(name) == gpu.kernel_source(name, read=read_repo)


def test_kernel_source_inlines_headers():
    src = gpu.kernel_source("rans_encode.cu", read=read_repo)
    assert '#include "' not in src and "#pragma once" not in src
    assert src.count("namespace spn {") == 1  # rans_common.cuh once
    assert '#line 1 "rans_common.cuh"' in src and '#line 1 "rans_encode.cu"' in src
    src = gpu.kernel_source("quantize.cu", read=read_repo)
    assert src.count('#line 1 "rans_common.cuh"') == 1 and src.count('#line 1 "feature_common.cuh"') == 1


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", gpu.KERNEL_FILES)
def test_compiles_without_warnings(nvrtc, name, arch):
    ptx = compile_kernel(nvrtc, name, arch)
    entries = set(re.findall(r"\.entry\s+(\w+)\s*\(", ptx))
    assert (
        set(gpu.KERNELS[name]) <= entries
    ), f"{name}: kernels missing from the PTX: {set(gpu.KERNELS[name]) - entries}"


@pytest.mark.parametrize("name", gpu.KERNEL_FILES)
def test_no_flush_to_zero_and_no_local_memory(nvrtc, name):
    ptx = compile_kernel(nvrtc, name, "compute_90")
    ftz = [line.strip() for line in ptx.splitlines() if re.search(r"\.ftz\b", line) and ".f32" in line]
    assert not ftz, f"{name}: binary32 instructions that flush subnormals under CuPy's -ftz=true: {ftz[:5]}"
    assert ".local" not in ptx, f"{name}: uses local memory (a per-lane array or a spill)"


def test_quantizer_uses_ieee_division(nvrtc):
    ptx = compile_kernel(nvrtc, "quantize.cu", "compute_80")
    assert (
        re.search(r"\bdiv\.rn\.f32\b", ptx)
        and re.search(r"\badd\.rn\.f32\b", ptx)
        and re.search(r"\bmul\.rn\.f32\b", ptx)
    )
    assert not re.search(r"\bdiv\.(approx|full)\.", ptx)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", gpu.KERNEL_FILES)
def test_sass_builds_without_spills(nvrtc, name, arch):
    """Through ptxas to machine code (what CuPy does when it asks NVRTC for a cubin): no
    warnings, and every kernel without spills or local memory."""
    source = gpu.kernel_source(name, read=read_repo)
    ptxas = ["-Xptxas=-warn-spills", "-Xptxas=-warn-lmem-usage", "-Xptxas=-v"]
    base = [*gpu.COMPILE_OPTIONS, "-ftz=true", f"--gpu-architecture={arch}", *ptxas]
    ok, log, _, rejected = nvrtc.compile(source, name, [*base, "-Werror=all-warnings"])
    if rejected:
        ok, log, _, _ = nvrtc.compile(source, name, base)
    assert ok, f"{name} ({arch}):\n{log}"
    assert "warning" not in log.lower(), f"{name} ({arch}):\n{log}"
    entries = re.findall(r"Compiling entry function '(\w+)'", log)
    assert set(gpu.KERNELS[name]) <= set(
        entries
    ), f"{name} ({arch}): ptxas did not build {set(gpu.KERNELS[name]) - set(entries)}"
    spills = [int(b) for b in re.findall(r"(\d+) bytes spill (?:stores|loads)", log)]
    assert spills and not any(spills), f"{name} ({arch}) spills registers:\n{log}"
