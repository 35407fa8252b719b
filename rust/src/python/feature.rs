//! Bindings for `feature.rs`: lossy compression of float feature tensors and its planning.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyStringMethods};

use crate::entropy::stream::EncodeOptions;
use crate::format::container::FloatType;
use crate::pipeline::feature::{
    self, FeatureMeta, FeatureOptions, ModeChoice, Plan, Range, Reshape, Stages,
};
use crate::quant::{Affine, Channels, NonFinite};

#[allow(clippy::too_many_arguments)]
pub(crate) fn options(
    shape: &[usize],
    bits: u8,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    mode: &str,
    reshape: &Bound<'_, PyAny>,
    nonfinite: &str,
    coder: EncodeOptions,
) -> PyResult<FeatureOptions> {
    let axis = match axis {
        // An empty tensor has no channels to parameterize: per tensor.
        _ if shape.contains(&0) => None,
        None => None,
        Some(a) if a < shape.len() && a < 255 => Some((
            a as u8,
            Channels {
                channels: shape[a],
                inner: shape[a + 1..].iter().product::<usize>().max(1),
            },
        )),
        Some(a) => {
            return Err(PyValueError::new_err(format!(
                "axis {a} out of range for {} dimensions",
                shape.len()
            )))
        }
    };
    let range = match (clip, scale, zero_point) {
        (None, None, None) => Range::MinMax,
        (Some(c), None, None) => Range::Clip(c),
        (None, Some(s), Some(z)) if s.len() == z.len() => Range::Params(
            s.into_iter()
                .zip(z)
                .map(|(scale, zero_point)| Affine { scale, zero_point })
                .collect(),
        ),
        (None, Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "scale and zero_point differ in length",
            ))
        }
        _ => {
            return Err(PyValueError::new_err(
                "pass either clip= or both scale= and zero_point=",
            ))
        }
    };
    let mode = match mode {
        "dense" => ModeChoice::Dense,
        "csr" => ModeChoice::Csr,
        "auto" => ModeChoice::Auto,
        "context" => ModeChoice::Context,
        "best" => ModeChoice::Best,
        "pcontext" => ModeChoice::Pctx,
        m => {
            return Err(PyValueError::new_err(format!(
                "mode must be 'auto', 'dense', 'csr', 'context', 'pcontext' or 'best', got {m:?}"
            )))
        }
    };
    // A string first: a failed integer extraction costs an exception (a microsecond).
    let reshape = if let Ok(r) = reshape.cast::<pyo3::types::PyString>() {
        match &*r.to_cow()? {
            "model" => Reshape::Model,
            "search" => Reshape::Search,
            r => {
                return Err(PyValueError::new_err(format!(
                    "reshape must be a row count, 'model' or 'search', got {r:?}"
                )))
            }
        }
    } else {
        Reshape::Rows(reshape.extract::<usize>()?)
    };
    let non_finite = match nonfinite {
        "error" => NonFinite::Error,
        "clamp" => NonFinite::Clamp,
        v => {
            return Err(PyValueError::new_err(format!(
                "nonfinite must be 'error' or 'clamp', got {v:?}"
            )))
        }
    };
    Ok(FeatureOptions {
        bits,
        axis,
        range,
        mode,
        reshape,
        non_finite,
        coder,
        version: crate::format::container::COMPACT_VERSION,
    })
}

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
        let mut stages = Stages::default();
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

/// Quantizes and codes a float32 feature tensor, with the interpreter released: the container
/// and the plan (what `encode_feature` and `compress_feature` share).
#[allow(clippy::too_many_arguments)]
fn encode<'py>(
    x: &PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    bits: u8,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    mode: &str,
    reshape: &Bound<'py, PyAny>,
    nonfinite: &str,
    coder: EncodeOptions,
    version: u8,
) -> PyResult<(Vec<u8>, Plan)> {
    let float_type = FloatType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported float dtype {dtype}")))?;
    let shape = x.shape().to_vec();
    let mut opts = options(
        &shape, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, coder,
    )?;
    opts.version = version;
    let data = x
        .as_slice()
        .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
    Ok(x.py()
        .detach(|| feature::compress(data, &shape, float_type, &opts))?)
}

/// Quantizes and codes a float32 feature tensor; returns the container and the plan.
#[pyfunction]
#[pyo3(signature = (x, dtype, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, precision_bits, chunk_log2, threads, version=3))]
#[allow(clippy::too_many_arguments)]
fn encode_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    bits: u8,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    mode: &str,
    reshape: &Bound<'py, PyAny>,
    nonfinite: &str,
    precision_bits: Option<u8>,
    chunk_log2: Option<u8>,
    threads: usize,
    version: u8,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
    let coder = EncodeOptions {
        precision_bits,
        chunk_log2,
        threads,
    };
    let (blob, plan) = encode(
        &x, dtype, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, coder, version,
    )?;
    let py = x.py();
    Ok((PyBytes::new(py, &blob), plan_dict(py, &plan)?))
}

/// `encode_feature` without the plan: the container only (what `compress` returns; building the
/// plan's dictionary costs more than coding a small map).
#[pyfunction]
#[pyo3(signature = (x, dtype, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, precision_bits, chunk_log2, threads, version=3))]
#[allow(clippy::too_many_arguments)]
fn compress_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    dtype: &str,
    bits: u8,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    mode: &str,
    reshape: &Bound<'py, PyAny>,
    nonfinite: &str,
    precision_bits: Option<u8>,
    chunk_log2: Option<u8>,
    threads: usize,
    version: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let coder = EncodeOptions {
        precision_bits,
        chunk_log2,
        threads,
    };
    let (blob, _) = encode(
        &x, dtype, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, coder, version,
    )?;
    Ok(PyBytes::new(x.py(), &blob))
}

/// Predicts the size of each mode and candidate row count without coding.
#[pyfunction]
#[pyo3(signature = (x, bits, axis, clip, scale, zero_point, mode, reshape, nonfinite, search_all))]
#[allow(clippy::too_many_arguments)]
fn plan_feature<'py>(
    x: PyReadonlyArrayDyn<'py, f32>,
    bits: u8,
    axis: Option<usize>,
    clip: Option<Vec<(f32, f32)>>,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
    mode: &str,
    reshape: &Bound<'py, PyAny>,
    nonfinite: &str,
    search_all: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = x.py();
    let shape = x.shape().to_vec();
    let opts = options(
        &shape,
        bits,
        axis,
        clip,
        scale,
        zero_point,
        mode,
        reshape,
        nonfinite,
        EncodeOptions::default(),
    )?;
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
