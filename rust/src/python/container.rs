//! Bindings for `format/container.rs`: compress / decompress integer arrays and symbol streams.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::entropy::stream::EncodeOptions;
use crate::format::container::{self, DType, ElemType, Element, Kind};

fn dtype_from_name(name: &str) -> PyResult<DType> {
    Ok(match name {
        "uint8" => DType::U8,
        "int8" => DType::I8,
        "uint16" => DType::U16,
        "int16" => DType::I16,
        "uint32" => DType::U32,
        "int32" => DType::I32,
        "uint64" => DType::U64,
        "int64" => DType::I64,
        other => return Err(PyValueError::new_err(format!("unsupported dtype {other}"))),
    })
}

fn options(precision_bits: Option<u8>, chunk_log2: Option<u8>, threads: usize) -> EncodeOptions {
    EncodeOptions {
        precision_bits,
        chunk_log2,
        threads,
    }
}

/// Calls `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! with_element {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::U8 => {
                type $t = u8;
                $body
            }
            DType::I8 => {
                type $t = i8;
                $body
            }
            DType::U16 => {
                type $t = u16;
                $body
            }
            DType::I16 => {
                type $t = i16;
                $body
            }
            DType::U32 => {
                type $t = u32;
                $body
            }
            DType::I32 => {
                type $t = i32;
                $body
            }
            DType::U64 => {
                type $t = u64;
                $body
            }
            DType::I64 => {
                type $t = i64;
                $body
            }
        }
    };
}

fn encode_typed<'py, T: Element + numpy::Element>(
    array: &Bound<'py, PyAny>,
    kind: Kind,
    opts: EncodeOptions,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = array.py();
    let array: PyReadonlyArrayDyn<'py, T> = array.extract()?;
    let shape: Vec<usize> = array.shape().to_vec();
    let data = array
        .as_slice()
        .map_err(|_| PyValueError::new_err("array must be C-contiguous"))?;
    let blob = py.detach(|| match kind {
        Kind::Symbols => container::encode_symbols(data, &opts),
        _ => container::compress(data, &shape, &opts),
    })?;
    Ok(PyBytes::new(py, &blob))
}

/// Compresses a C-contiguous integer array named by `dtype`; `kind` 1 codes 1-D symbols.
#[pyfunction]
#[pyo3(signature = (array, dtype, kind, precision_bits, chunk_log2, threads))]
fn encode<'py>(
    array: &Bound<'py, PyAny>,
    dtype: &str,
    kind: u8,
    precision_bits: Option<u8>,
    chunk_log2: Option<u8>,
    threads: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let kind = match kind {
        1 => Kind::Symbols,
        2 => Kind::Array,
        _ => return Err(PyValueError::new_err("unknown container kind")),
    };
    let opts = options(precision_bits, chunk_log2, threads);
    with_element!(dtype_from_name(dtype)?, T => encode_typed::<T>(array, kind, opts))
}

/// Refuses a container whose shape or dtype is not the expected one: checked on the header,
/// before anything is allocated.
pub(crate) fn check_expected(
    header: &container::Header,
    expect_shape: Option<Vec<u64>>,
    expect_dtype: Option<&str>,
) -> PyResult<()> {
    if let Some(shape) = expect_shape {
        if shape.len() != header.shape.len()
            || shape
                .iter()
                .zip(&header.shape)
                .any(|(&a, &b)| a != b as u64)
        {
            return Err(PyValueError::new_err(format!(
                "the container holds an array of shape {:?}, not the expected {:?}",
                header.shape, shape
            )));
        }
    }
    if let Some(dtype) = expect_dtype {
        if dtype != header.elem.name() {
            return Err(PyValueError::new_err(format!(
                "the container holds {}, not the expected {dtype}",
                header.elem.name()
            )));
        }
    }
    Ok(())
}

fn stream_dict<'py>(
    py: Python<'py>,
    name: &str,
    s: &container::StreamInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let sd = PyDict::new(py);
    sd.set_item("name", name)?;
    sd.set_item("mode", s.mode)?;
    sd.set_item("symbols", s.symbols)?;
    sd.set_item("symbol_bytes", s.symbol_bytes)?;
    sd.set_item("distinct_symbols", s.distinct_symbols)?;
    sd.set_item("alphabet_size", s.alphabet_size)?;
    sd.set_item("precision_bits", s.precision_bits)?;
    sd.set_item("lanes", s.lanes)?;
    sd.set_item("chunk_symbols", s.chunk_symbols)?;
    sd.set_item("compressed_bytes", s.compressed_bytes)?;
    sd.set_item("entropy_bound_bytes", s.entropy_bound_bytes)?;
    Ok(sd)
}

/// Describes a container: header fields and, per stream, its coding statistics. Checks what
/// `decode` checks (`container::inspect_streams`, `feature::inspect`).
#[pyfunction]
#[pyo3(signature = (data, max_output_bytes, threads=0))]
fn inspect<'py>(
    py: Python<'py>,
    data: &[u8],
    max_output_bytes: u64,
    threads: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let h = container::read_header(data)?;
    container::check_output_size(&h, max_output_bytes)?;
    let d = PyDict::new(py);
    d.set_item("format_version", h.version)?;
    d.set_item("kind", h.kind.name())?;
    d.set_item("dtype", h.elem.name())?;
    d.set_item("shape", pyo3::types::PyTuple::new(py, &h.shape)?)?;
    d.set_item("compressed_bytes", data.len())?;
    d.set_item("header_bytes", h.header_len)?;
    let streams = PyList::empty(py);
    match h.elem {
        ElemType::Int(dtype) => {
            let infos =
                py.detach(|| container::inspect_streams(data, &h, max_output_bytes, threads))?;
            for (k, s) in infos.iter().enumerate() {
                let name = if dtype.planes() == 1 {
                    "symbols".to_string()
                } else {
                    format!("plane{k}")
                };
                streams.append(stream_dict(py, &name, s)?)?;
            }
        }
        ElemType::Float(_) => {
            let (meta, infos) = py.detach(|| {
                crate::pipeline::feature::inspect(data, &h, max_output_bytes, threads)
            })?;
            super::feature::describe(&d, &meta, h.count)?;
            let names: &[&str] = if infos.len() == 1 {
                &["codes"]
            } else {
                &["row_counts", "col_indices", "values"]
            };
            for (name, s) in names.iter().zip(&infos) {
                streams.append(stream_dict(py, name, s)?)?;
            }
        }
    }
    d.set_item("streams", streams)?;
    Ok(d)
}

/// The most bytes `compress` can return for `n` elements of `dtype` in `ndim` dimensions.
#[pyfunction]
#[pyo3(signature = (n, dtype, ndim))]
fn max_compressed_size(n: u64, dtype: &str, ndim: usize) -> PyResult<usize> {
    let d = dtype_from_name(dtype)?;
    usize::try_from(n)
        .ok()
        .and_then(|n| container::max_compressed_size(n, d, ndim))
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "no {dtype} array of {n} elements fits in memory: the size bound overflows"
            ))
        })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(max_compressed_size, m)?)?;
    m.add("MAX_NDIM", container::MAX_NDIM)?;
    m.add("FORMAT_VERSION", container::VERSION)?;
    Ok(())
}
