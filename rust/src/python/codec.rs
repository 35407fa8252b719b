//! Bindings for `codec.rs`: the fitted codec as a Python object holding its tables.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::codec::{Clip, Codec, Quantizer};
use crate::container::FloatType;
use crate::fit::{Candidate, FitReport};
use crate::quant::NonFinite;

fn non_finite(v: &str) -> PyResult<NonFinite> {
    match v {
        "error" => Ok(NonFinite::Error),
        "clamp" => Ok(NonFinite::Clamp),
        v => Err(PyValueError::new_err(format!(
            "nonfinite must be 'error' or 'clamp', got {v:?}"
        ))),
    }
}

/// A fitted codec (the Python wrapper is `splitans.Codec`).
#[pyclass(module = "splitans._core", name = "Codec", frozen)]
pub struct PyCodec {
    inner: Arc<Codec>,
}

fn candidate_dict<'py>(py: Python<'py>, c: &Candidate) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let axis = |a: u8| (a != crate::pctx::NO_AXIS).then_some(a);
    d.set_item("axis_x", axis(c.axis_x))?;
    d.set_item("axis_y", axis(c.axis_y))?;
    d.set_item("axis_group", axis(c.axis_g))?;
    d.set_item("predictor", c.predictor.name())?;
    d.set_item("groups", c.groups)?;
    d.set_item("classes", c.classes)?;
    d.set_item("tables", c.tables)?;
    d.set_item("alpha", c.alpha)?;
    d.set_item("bits_per_element", c.bits_per_element)?;
    Ok(d)
}

fn report_dict<'py>(py: Python<'py>, r: &FitReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("chosen", candidate_dict(py, &r.chosen)?)?;
    let tried = PyList::empty(py);
    for c in &r.tried {
        tried.append(candidate_dict(py, c)?)?;
    }
    d.set_item("tried", tried)?;
    Ok(d)
}

#[pymethods]
impl PyCodec {
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyCodec> {
        let codec = py.detach(|| Codec::from_bytes(data))?;
        Ok(PyCodec {
            inner: Arc::new(codec),
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.to_bytes())
    }

    #[getter]
    fn id(&self) -> String {
        self.inner.id_hex()
    }

    #[getter]
    fn bits(&self) -> u8 {
        self.inner.bits
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.float_type.name()
    }

    /// The sample shape, `None` for an axis each blob states.
    #[getter]
    fn shape(&self) -> Vec<Option<usize>> {
        self.inner.shape.clone()
    }

    /// The quantizer and the model, as a dict (for `splitans.Codec.describe`).
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner;
        let d = PyDict::new(py);
        d.set_item("id", c.id_hex())?;
        d.set_item("dtype", c.float_type.name())?;
        d.set_item("bits", c.bits)?;
        d.set_item("shape", c.shape.clone())?;
        d.set_item("serialized_bytes", c.to_bytes().len())?;
        match &c.quantizer {
            Quantizer::Fixed { axis, params } => {
                d.set_item("quantizer", "fixed")?;
                d.set_item("axis", *axis)?;
                d.set_item("scale", params.iter().map(|a| a.scale).collect::<Vec<_>>())?;
                d.set_item(
                    "zero_point",
                    params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
                )?;
            }
            Quantizer::PerSample { axis } => {
                d.set_item("quantizer", "per-sample")?;
                d.set_item("axis", *axis)?;
            }
        }
        let m = &c.model;
        let axis = |a: u8| (a != crate::pctx::NO_AXIS).then_some(a);
        let model = PyDict::new(py);
        model.set_item("predictor", m.predictor.name())?;
        model.set_item("axis_x", axis(m.axis_x))?;
        model.set_item("axis_y", axis(m.axis_y))?;
        model.set_item("axis_group", axis(m.axis_g))?;
        model.set_item("groups", m.n_groups)?;
        model.set_item(
            "classes",
            m.n_classes.iter().map(|&c| c as u32).collect::<Vec<_>>(),
        )?;
        model.set_item("contexts", m.contexts())?;
        model.set_item("tables", m.tables())?;
        model.set_item("precision_bits", m.precision)?;
        d.set_item("model", model)?;
        Ok(d)
    }

    /// One sample (float32, C-contiguous) to a blob.
    #[pyo3(signature = (x, nonfinite))]
    fn compress<'py>(
        &self,
        x: PyReadonlyArrayDyn<'py, f32>,
        nonfinite: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let py = x.py();
        let nf = non_finite(nonfinite)?;
        let shape = x.shape().to_vec();
        let data = x
            .as_slice()
            .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
        let codec = Arc::clone(&self.inner);
        let blob = py.detach(|| codec.compress(data, &shape, nf))?;
        Ok(PyBytes::new(py, &blob))
    }

    /// A blob to (flat float32 values, shape).
    #[pyo3(signature = (data, max_output_bytes))]
    fn decompress<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        max_output_bytes: u64,
    ) -> PyResult<(Bound<'py, PyArray1<f32>>, Vec<usize>)> {
        let codec = Arc::clone(&self.inner);
        let (shape, values) = py.detach(|| codec.decompress(data, max_output_bytes))?;
        Ok((PyArray1::from_vec(py, values), shape))
    }

    /// What a blob's header says; its body is decoded (and so verified) too.
    #[pyo3(signature = (data, max_output_bytes))]
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        max_output_bytes: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let codec = Arc::clone(&self.inner);
        let (info, q) = py.detach(|| codec.decode_codes(data, max_output_bytes))?;
        let d = PyDict::new(py);
        d.set_item("codec", self.inner.id_hex())?;
        d.set_item("kind", info.kind.name())?;
        d.set_item("shape", info.shape.clone())?;
        d.set_item("bytes", data.len())?;
        d.set_item("header_bytes", info.header_bytes)?;
        d.set_item("body_bytes", info.body_bytes)?;
        d.set_item(
            "scale",
            info.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "zero_point",
            info.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
        )?;
        let counts = crate::freq::histogram_u8(&q);
        let (distinct, _, bound) = crate::container::symbol_stats(&counts);
        d.set_item("distinct_codes", distinct)?;
        d.set_item("order0_bound_bytes", bound)?;
        Ok(d)
    }

    /// The codes of a blob (uint8), for tests and the GPU path.
    #[pyo3(signature = (data, max_output_bytes))]
    fn decode_codes<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        max_output_bytes: u64,
    ) -> PyResult<(Bound<'py, PyArray1<u8>>, Vec<usize>)> {
        let codec = Arc::clone(&self.inner);
        let (info, q) = py.detach(|| codec.decode_codes(data, max_output_bytes))?;
        Ok((PyArray1::from_vec(py, q), info.shape))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = slf.getattr("from_bytes")?;
        Ok((ctor, (PyBytes::new(py, slf.get().inner.to_bytes()),)))
    }
}

/// Fits a codec to calibration samples (a list of float32 C-contiguous arrays).
#[pyfunction]
#[pyo3(signature = (samples, dtype, bits, axis, clip, per_sample, nonfinite))]
#[allow(clippy::too_many_arguments)]
fn codec_fit<'py>(
    py: Python<'py>,
    samples: Vec<PyReadonlyArrayDyn<'py, f32>>,
    dtype: &str,
    bits: u8,
    axis: Option<u8>,
    clip: Option<Vec<(f32, f32)>>,
    per_sample: bool,
    nonfinite: &str,
) -> PyResult<(PyCodec, Bound<'py, PyDict>)> {
    let float_type = FloatType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported float dtype {dtype}")))?;
    let nf = non_finite(nonfinite)?;
    let clip = match (clip, per_sample) {
        (Some(r), false) => Clip::Ranges(r),
        (None, false) => Clip::Calibration,
        (None, true) => Clip::PerSample,
        (Some(_), true) => {
            return Err(PyValueError::new_err(
                "a clip range and per-sample parameters exclude each other",
            ))
        }
    };
    let shapes: Vec<Vec<usize>> = samples.iter().map(|s| s.shape().to_vec()).collect();
    let mut views = Vec::with_capacity(samples.len());
    for (s, shape) in samples.iter().zip(&shapes) {
        let data = s
            .as_slice()
            .map_err(|_| PyValueError::new_err("samples must be C-contiguous"))?;
        views.push((data, shape.as_slice()));
    }
    let (codec, report) = py.detach(|| Codec::fit(&views, float_type, bits, axis, &clip, nf))?;
    Ok((
        PyCodec {
            inner: Arc::new(codec),
        },
        report_dict(py, &report)?,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCodec>()?;
    m.add_function(wrap_pyfunction!(codec_fit, m)?)?;
    Ok(())
}
