"""Moved to `splitans.cut` (cutting a model needs no part of the runtime); this name stays so
code that imported ``splitans.runtime.cut`` keeps working."""

from ..cut import Split, export_onnx, split, split_points  # noqa: F401

__all__ = ["Split", "export_onnx", "split", "split_points"]
