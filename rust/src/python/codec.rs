//! Bindings for `codec.rs`: the fitted codec as a Python object holding its tables.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::format::container::FloatType;
use crate::layout::levels::Codebook;
use crate::model::fit::{Candidate, FitReport};
use crate::pipeline::codec::{Clip, Codec, Quantizer};
use crate::quant::{self, Affine};

use super::options::non_finite;

/// The kernels' layout words and the quantization channels (channels, inner).
type Geometry<'py> = (Bound<'py, PyArray1<u64>>, (usize, usize));

/// A fitted codec (the Python wrapper is `splitans.Codec`).
#[pyclass(module = "splitans._core", name = "Codec", frozen)]
pub struct PyCodec {
    inner: Arc<Codec>,
}

fn candidate_dict<'py>(py: Python<'py>, c: &Candidate) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let axis = |a: u8| (a != crate::model::pctx::NO_AXIS).then_some(a);
    d.set_item("axis_x", axis(c.axis_x))?;
    d.set_item("axis_y", axis(c.axis_y))?;
    d.set_item("axis_group", axis(c.axis_g))?;
    d.set_item("plane_lanes", c.plane_lanes)?;
    d.set_item("predictor", c.predictor.name())?;
    d.set_item("groups", c.groups)?;
    d.set_item("classes", c.classes)?;
    d.set_item("tables", c.tables)?;
    d.set_item("alpha", c.alpha)?;
    d.set_item("precision", c.precision)?;
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
        d.set_item("quantizer", c.quantizer.name())?;
        d.set_item("axis", c.quantizer.axis())?;
        d.set_item("version", c.version())?;
        match &c.quantizer {
            Quantizer::Fixed { params, .. } | Quantizer::DeadZone { params, .. } => {
                d.set_item("scale", params.iter().map(|a| a.scale).collect::<Vec<_>>())?;
                d.set_item(
                    "zero_point",
                    params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
                )?;
            }
            _ => {}
        }
        match &c.quantizer {
            Quantizer::DeadZone { dead_zone, .. } => d.set_item("dead_zone", dead_zone.clone())?,
            Quantizer::Levels { books, index, .. } => {
                let list = PyList::empty(py);
                for b in books {
                    let bd = PyDict::new(py);
                    bd.set_item("levels", b.levels.clone())?;
                    bd.set_item("thresholds", b.thresholds.clone())?;
                    bd.set_item("zero_code", b.zero_code())?;
                    bd.set_item("max_error", b.max_error())?;
                    list.append(bd)?;
                }
                d.set_item("codebooks", list)?;
                d.set_item("codebook_index", index.clone())?;
                // Integers, as for the other quantizers (a Vec<u8> would become bytes).
                d.set_item(
                    "zero_point",
                    index
                        .iter()
                        .map(|&i| i32::from(books[i as usize].zero_code()))
                        .collect::<Vec<_>>(),
                )?;
            }
            _ => {}
        }
        let m = &c.model;
        let axis = |a: u8| (a != crate::model::pctx::NO_AXIS).then_some(a);
        let model = PyDict::new(py);
        model.set_item("predictor", m.predictor.name())?;
        model.set_item("axis_x", axis(m.axis_x))?;
        model.set_item("axis_y", axis(m.axis_y))?;
        model.set_item("axis_group", axis(m.axis_g))?;
        model.set_item("plane_lanes", m.plane_lanes)?;
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

    /// What each sample of a batch (float32, C-contiguous, samples along the first axis)
    /// decodes to, without coding it: `decompress(compress(x))`, quantization only.
    #[pyo3(signature = (batch, nonfinite))]
    fn round_trip<'py>(
        &self,
        batch: PyReadonlyArrayDyn<'py, f32>,
        nonfinite: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let py = batch.py();
        let nf = non_finite(nonfinite)?;
        let shape = batch.shape().to_vec();
        if shape.is_empty() {
            return Err(PyValueError::new_err("a batch needs a leading sample axis"));
        }
        let data = batch
            .as_slice()
            .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
        let codec = Arc::clone(&self.inner);
        let sample = shape[1..].to_vec();
        let n: usize = sample.iter().product();
        let out = py.detach(|| -> crate::Result<Vec<f32>> {
            let mut out = Vec::with_capacity(data.len());
            if n > 0 {
                for x in data.chunks(n) {
                    out.extend(codec.round_trip(x, &sample, nf)?);
                }
            } else {
                codec.check_shape(&sample)?;
            }
            Ok(out)
        })?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// A blob to (flat float32 values, shape).
    #[pyo3(signature = (data, max_output_bytes))]
    fn decompress<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        max_output_bytes: u64,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<usize>)> {
        // The codec's dtype straight from the decoder (float16 as its bits, saturated; bfloat16
        // as float32, numpy having none): no float32 copy beside a narrower output.
        let codec = Arc::clone(&self.inner);
        Ok(match codec.float_type {
            FloatType::F16 => {
                let (shape, v) =
                    py.detach(|| codec.decompress_as(data, max_output_bytes, quant::f16_bits))?;
                (PyArray1::from_vec(py, v).into_any(), shape)
            }
            FloatType::F64 => {
                let (shape, v) =
                    py.detach(|| codec.decompress_as(data, max_output_bytes, f64::from))?;
                (PyArray1::from_vec(py, v).into_any(), shape)
            }
            FloatType::F32 | FloatType::BF16 => {
                let (shape, v) = py.detach(|| codec.decompress(data, max_output_bytes))?;
                (PyArray1::from_vec(py, v).into_any(), shape)
            }
        })
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
        let (info, counts) = py.detach(|| codec.code_counts(data, max_output_bytes))?;
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
        let (distinct, _, bound) = crate::format::container::symbol_stats(&counts);
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

    /// Raises ValueError unless `shape` is a sample shape of this codec.
    fn check_shape(&self, shape: Vec<usize>) -> PyResult<()> {
        Ok(self.inner.check_shape(&shape)?)
    }

    /// The model's tables as the GPU kernels read them (pctx_common.cuh).
    fn gpu_tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = self.inner.tables().device();
        let d = PyDict::new(py);
        d.set_item("ctx_g", PyArray1::from_vec(py, t.ctx_g))?;
        d.set_item("ctx_a", PyArray1::from_vec(py, t.ctx_a))?;
        d.set_item("ctx_b", PyArray1::from_vec(py, t.ctx_b))?;
        d.set_item("ctx_c", PyArray1::from_vec(py, t.ctx_c))?;
        d.set_item("context_map", PyArray1::from_vec(py, t.context_map))?;
        d.set_item("cums", PyArray1::from_vec(py, t.cums))?;
        Ok(d)
    }

    /// The kernels' layout words of a sample shape, and its quantization channels
    /// (channels, inner).
    fn gpu_geometry<'py>(&self, py: Python<'py>, shape: Vec<usize>) -> PyResult<Geometry<'py>> {
        self.inner.check_shape(&shape)?;
        let ch = self.inner.channels(&shape);
        let geo = crate::model::pctx::device_geometry(&self.inner.model, &shape, ch);
        Ok((
            PyArray1::from_vec(py, geo.to_vec()),
            (ch.channels, ch.inner),
        ))
    }

    /// The lanes of each chunk of a sample shape's coded body (FORMAT.md 9.4).
    fn gpu_chunk_lanes(&self, shape: Vec<usize>) -> PyResult<Vec<u32>> {
        self.inner.check_shape(&shape)?;
        let lay = crate::model::pctx::Layout::new(&self.inner.model, &shape);
        Ok(lay.chunks().iter().map(|c| c.lanes as u32).collect())
    }

    /// A blob's header, checked (CRC included), and for a coded body the byte offsets in the
    /// blob of each chunk's states and words, with its word count.
    #[pyo3(signature = (data, max_output_bytes))]
    fn gpu_parse<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        max_output_bytes: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let info = self.inner.describe(data, max_output_bytes)?;
        let d = PyDict::new(py);
        d.set_item("kind", info.kind.name())?;
        d.set_item("shape", info.shape.clone())?;
        d.set_item(
            "scale",
            info.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "zero_point",
            info.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
        )?;
        d.set_item("header_bytes", info.header_bytes)?;
        let n: usize = info.shape.iter().product();
        let body = &data[info.header_bytes..];
        if info.kind == crate::pipeline::codec::BlobKind::Coded {
            if n == 0 {
                return Err(crate::error::CodecError::Corrupt(
                    "a coded body for an empty sample".into(),
                )
                .into());
            }
            let lay = crate::model::pctx::Layout::new(&self.inner.model, &info.shape);
            let spans = crate::model::pctx::parse_body(body, &lay.chunks())?;
            let h = info.header_bytes as u64;
            d.set_item(
                "state_offsets",
                PyArray1::from_vec(py, spans.iter().map(|c| h + c.states_at as u64).collect()),
            )?;
            d.set_item(
                "word_offsets",
                PyArray1::from_vec(py, spans.iter().map(|c| h + c.words_at as u64).collect()),
            )?;
            d.set_item(
                "word_counts",
                PyArray1::from_vec(py, spans.iter().map(|c| c.words as u32).collect()),
            )?;
        }
        Ok(d)
    }

    /// A blob around a body made elsewhere (the GPU path): header, lengths, parameters, CRC.
    #[pyo3(signature = (kind, shape, scale, zero_point, body))]
    fn gpu_assemble<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        shape: Vec<usize>,
        scale: Vec<f32>,
        zero_point: Vec<i32>,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let kind = match kind {
            "coded" => crate::pipeline::codec::BlobKind::Coded,
            "raw" => crate::pipeline::codec::BlobKind::Raw,
            "constant" => crate::pipeline::codec::BlobKind::Constant,
            k => return Err(PyValueError::new_err(format!("unknown blob kind {k:?}"))),
        };
        self.inner.check_shape(&shape)?;
        let params: Vec<crate::quant::Affine> = scale
            .into_iter()
            .zip(zero_point)
            .map(|(scale, zero_point)| crate::quant::Affine { scale, zero_point })
            .collect();
        Ok(PyBytes::new(
            py,
            &self.inner.assemble(kind, &shape, &params, body),
        ))
    }

    /// Bytes of `n` codes packed `bits` bits each (a raw body).
    fn raw_len(&self, n: usize) -> usize {
        self.inner.raw_len(n)
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

/// Fits a codec's context model with a given quantizer: `kind` "fixed" (`params`),
/// "dead-zone" (`params` and `dead_zone`), "levels" (`codebooks` of (levels, thresholds) and a
/// `codebook_index` per channel) or "per-sample".
#[pyfunction]
#[pyo3(signature = (samples, dtype, bits, kind, axis, params, dead_zone, codebooks, codebook_index, nonfinite))]
#[allow(clippy::too_many_arguments)]
fn codec_fit_quantizer<'py>(
    py: Python<'py>,
    samples: Vec<PyReadonlyArrayDyn<'py, f32>>,
    dtype: &str,
    bits: u8,
    kind: &str,
    axis: Option<u8>,
    params: Option<Vec<(f32, i32)>>,
    dead_zone: Option<Vec<f32>>,
    codebooks: Option<Vec<(Vec<f32>, Vec<f32>)>>,
    codebook_index: Option<Vec<u32>>,
    nonfinite: &str,
) -> PyResult<(PyCodec, Bound<'py, PyDict>)> {
    let float_type = FloatType::from_name(dtype)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported float dtype {dtype}")))?;
    let nf = non_finite(nonfinite)?;
    let need = |what: &str| PyValueError::new_err(format!("a {kind} quantizer needs {what}"));
    let affine = |p: Vec<(f32, i32)>| -> Vec<Affine> {
        p.into_iter()
            .map(|(scale, zero_point)| Affine { scale, zero_point })
            .collect()
    };
    let quantizer = match kind {
        "per-sample" => Quantizer::PerSample { axis },
        "fixed" => Quantizer::Fixed {
            axis,
            params: affine(params.ok_or_else(|| need("params"))?),
        },
        "dead-zone" => Quantizer::DeadZone {
            axis,
            params: affine(params.ok_or_else(|| need("params"))?),
            dead_zone: dead_zone.ok_or_else(|| need("dead_zone"))?,
        },
        "levels" => Quantizer::Levels {
            axis,
            books: codebooks
                .ok_or_else(|| need("codebooks"))?
                .into_iter()
                .map(|(levels, thresholds)| Codebook { levels, thresholds })
                .collect(),
            index: codebook_index.ok_or_else(|| need("codebook_index"))?,
        },
        k => {
            return Err(PyValueError::new_err(format!(
                "unknown quantizer kind {k:?}: one of 'fixed', 'dead-zone', 'levels', 'per-sample'"
            )))
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
    let (codec, report) =
        py.detach(|| Codec::fit_quantizer(&views, float_type, bits, quantizer, nf))?;
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
    m.add_function(wrap_pyfunction!(codec_fit_quantizer, m)?)?;
    Ok(())
}
