//! Bindings for `feature.rs`: lossy compression of float feature tensors and its planning.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::format::container::FloatType;
use crate::pipeline::feature::{self, FeatureMeta, Plan, Stages};

use super::options::CoderOptions;

fn stages_dict<'py>(py: Python<'py>, s: &Stages) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("quantize", s.quantize)?;
    d.set_item("sparse", s.sparse)?;
    d.set_item("entropy", s.entropy)?;
    d.set_item("container", s.container)?;
    Ok(d)
}

/// Decompresses a feature container and returns the seconds of each stage (for benchmarks),
/// under the same output cap as `decode`.
#[pyfunction]
#[pyo3(signature = (data, threads, max_output_bytes=crate::python::DEFAULT_MAX_OUTPUT_BYTES))]
fn decode_feature_stages<'py>(
    py: Python<'py>,
    data: &[u8],
    threads: usize,
    max_output_bytes: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let stages = py.detach(|| -> crate::Result<Stages> {
        let mut stages = Stages {
            timed: true,
            ..Stages::default()
        };
        let t = std::time::Instant::now();
        let h = crate::format::container::read_header(data)?;
        crate::format::container::check_output_size(&h, max_output_bytes)?;
        stages.container += t.elapsed().as_secs_f64();
        feature::decompress_to(
            data,
            &h,
            max_output_bytes,
            threads,
            feature::Output::F32,
            &mut stages,
        )?;
        Ok(stages)
    })?;
    stages_dict(py, &stages)
}

fn plan_dict<'py>(py: Python<'py>, p: &Plan) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        "scale",
        p.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
    )?;
    d.set_item(
        "zero_point",
        p.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
    )?;
    d.set_item("clamped", p.clamped)?;
    d.set_item("elements", p.total)?;
    d.set_item("nonzeros", p.nonzeros)?;
    d.set_item("dense_bytes", p.dense_bytes)?;
    d.set_item("values_bytes", p.values_bytes)?;
    let cands = PyList::empty(py);
    for cand in &p.candidates {
        let c = PyDict::new(py);
        c.set_item("rows", cand.rows)?;
        c.set_item("cols", p.total / cand.rows)?;
        c.set_item("model_bytes", cand.model_bytes.map(|m| m + p.values_bytes))?;
        c.set_item(
            "search_bytes",
            cand.search_bytes.map(|s| s + p.values_bytes),
        )?;
        cands.append(c)?;
    }
    d.set_item("candidates", cands)?;
    d.set_item("rows", p.rows)?;
    d.set_item(
        "csr_bytes",
        if p.csr_bytes.is_finite() {
            Some(p.csr_bytes)
        } else {
            None
        },
    )?;
    d.set_item("mode", p.mode.name())?;
    d.set_item("reason", p.reason.to_string())?;
    d.set_item("seconds", stages_dict(py, &p.seconds)?)?;
    Ok(d)
}

/// The per-tensor arguments of the feature calls: the channel axis (non-negative), clip ranges,
/// scale and zero point, as `_feature._prepare` makes them.
type PerTensor = (
    Option<usize>,
    Option<Vec<(f32, f32)>>,
    Option<Vec<f32>>,
    Option<Vec<i32>>,
);

/// Quantizes and codes a float32 feature tensor with `code` (`feature::compress` or
/// `compress_blob`), the interpreter released (what `encode_feature` and `compress_feature`
/// share).
fn encode<'py, T: Send>(
    x: &PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    options: &CoderOptions,
    (axis, clip, scale, zero_point): PerTensor,
    code: fn(&[f32], &[usize], FloatType, &feature::FeatureOptions) -> crate::error::Result<T>,
) -> PyResult<T> {
    let float_type = FloatType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported float dtype {dtype}")))?;
    let shape = x.shape().to_vec();
    let opts = options.feature(&shape, axis, clip, scale, zero_point, None)?;
    let data = x
        .as_slice()
        .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
    Ok(x.py().detach(|| code(data, &shape, float_type, &opts))?)
}

/// Quantizes and codes a float32 feature tensor; returns the container and the plan.
#[pyfunction]
#[pyo3(signature = (x, dtype, options, axis, clip, scale, zero_point))]
fn encode_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    options: PyRef<'py, CoderOptions>,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
    let per_tensor = (axis, clip, scale, zero_point);
    let (blob, plan) = encode(&x, dtype, &options, per_tensor, feature::compress)?;
    let py = x.py();
    Ok((PyBytes::new(py, &blob), plan_dict(py, &plan)?))
}

/// `encode_feature` without the plan: the container only (what `compress` returns; building the
/// plan's dictionary costs more than coding a small map).
#[pyfunction]
#[pyo3(signature = (x, dtype, options, axis, clip, scale, zero_point))]
fn compress_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    options: PyRef<'py, CoderOptions>,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let per_tensor = (axis, clip, scale, zero_point);
    let blob = encode(&x, dtype, &options, per_tensor, feature::compress_blob)?;
    Ok(PyBytes::new(x.py(), &blob))
}

/// Predicts the size of each mode and candidate row count without coding.
#[pyfunction]
#[pyo3(signature = (x, options, axis, clip, scale, zero_point, search_all))]
fn plan_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    options: PyRef<'py, CoderOptions>,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    search_all: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = x.py();
    let shape = x.shape().to_vec();
    let opts = options.feature(&shape, axis, clip, scale, zero_point, None)?;
    let data = x
        .as_slice()
        .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
    let plan = py.detach(|| feature::plan(data, &shape, &opts, search_all))?;
    plan_dict(py, &plan)
}

/// Adds the feature section's fields to an `inspect` dictionary.
pub fn describe(d: &Bound<'_, PyDict>, meta: &FeatureMeta, count: usize) -> PyResult<()> {
    d.set_item("bits", meta.bits)?;
    d.set_item("mode", meta.mode.name())?;
    d.set_item("axis", meta.axis)?;
    d.set_item(
        "scale",
        meta.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
    )?;
    d.set_item(
        "zero_point",
        meta.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
    )?;
    d.set_item("clamped", meta.clamped)?;
    d.set_item(
        "clipped_fraction",
        if count == 0 {
            0.0
        } else {
            meta.clamped as f64 / count as f64
        },
    )?;
    d.set_item("rows", if meta.rows > 0 { Some(meta.rows) } else { None })?;
    d.set_item("cols", count.checked_div(meta.rows))?;
    d.set_item("section_bytes", meta.section_bytes)?;
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_feature, m)?)?;
    m.add_function(wrap_pyfunction!(compress_feature, m)?)?;
    m.add_function(wrap_pyfunction!(plan_feature, m)?)?;
    m.add_function(wrap_pyfunction!(decode_feature_stages, m)?)?;
    Ok(())
}
