//! Bindings for `format/`: the GPU path's containers, assembled from the streams its kernels
//! coded by the writers of the CPU encoder (FORMAT.md 2, 6.2 and 10), so that the byte format
//! has one writer. Each stream comes as the bytes of a whole version-1 stream (FORMAT.md 3),
//! which the GPU path copies to the host once.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::format::container::{self, DType, ElemType, FloatType, Kind, COMPACT_VERSION};
use crate::format::feature::{self, Mode, NO_AXIS};
use crate::quant::Affine;

/// A container of kind "symbols" or "array" (FORMAT.md 2.4) of an integer `dtype` around its
/// coded streams, one per 16-bit plane (one for 8-bit dtypes).
#[pyfunction]
fn gpu_array_container<'py>(
    py: Python<'py>,
    kind: &str,
    dtype: &str,
    shape: Vec<usize>,
    streams: Vec<PyBackedBytes>,
) -> PyResult<Bound<'py, PyBytes>> {
    let kind = match kind {
        "symbols" => Kind::Symbols,
        "array" => Kind::Array,
        _ => {
            return Err(PyValueError::new_err(format!(
                "kind {kind:?}: symbols or array"
            )))
        }
    };
    let dtype = DType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("{dtype} is not an integer dtype")))?;
    let streams: Vec<&[u8]> = streams.iter().map(|s| &s[..]).collect();
    let blob = py.detach(|| container::assemble(kind, ElemType::Int(dtype), &shape, &streams))?;
    Ok(PyBytes::new(py, &blob))
}

/// A feature container (version 1, or 3: compact) of a float `dtype` quantized to `bits`-bit
/// codes with `scale` / `zero_point` per channel of `axis`, around its coded streams: the codes
/// ("dense"), or the row counts, column indices and `nnz` values of `rows` rows ("csr").
#[pyfunction]
#[pyo3(signature = (version, dtype, shape, bits, mode, axis, scale, zero_point, clamped, rows, nnz, streams))]
#[allow(clippy::too_many_arguments)]
fn gpu_feature_container<'py>(
    py: Python<'py>,
    version: u8,
    dtype: &str,
    shape: Vec<usize>,
    bits: u8,
    mode: &str,
    axis: Option<u8>,
    scale: Vec<f32>,
    zero_point: Vec<i32>,
    clamped: u64,
    rows: usize,
    nnz: usize,
    streams: Vec<PyBackedBytes>,
) -> PyResult<Bound<'py, PyBytes>> {
    if version != 1 && version != COMPACT_VERSION {
        return Err(PyValueError::new_err(format!("version {version}: 1 or 3")));
    }
    let float_type = FloatType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("{dtype} is not a float dtype")))?;
    let mode = match mode {
        "dense" => Mode::Dense,
        "csr" => Mode::Csr,
        _ => {
            return Err(PyValueError::new_err(format!(
                "mode {mode:?}: dense or csr"
            )))
        }
    };
    if scale.len() != zero_point.len() {
        return Err(PyValueError::new_err(
            "scale and zero_point differ in length",
        ));
    }
    let params: Vec<Affine> = scale
        .into_iter()
        .zip(zero_point)
        .map(|(scale, zero_point)| Affine { scale, zero_point })
        .collect();
    let streams: Vec<&[u8]> = streams.iter().map(|s| &s[..]).collect();
    let blob = py.detach(|| {
        feature::assemble(
            version == COMPACT_VERSION,
            float_type,
            &shape,
            bits,
            mode,
            axis.unwrap_or(NO_AXIS),
            &params,
            clamped,
            rows,
            nnz,
            &streams,
        )
    })?;
    Ok(PyBytes::new(py, &blob))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gpu_array_container, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_feature_container, m)?)?;
    Ok(())
}
