//! Bindings for the compression options: `CoderOptions`, the frozen native half of
//! `splitans.Options`, and the names of its enumerations.
//!
//! `splitans.Options` validates every field once, when it is built, and holds one of these: the
//! fields the codec reads as they are (bits, mode, reshape, nonfinite, the coder's settings,
//! the container version), parsed into the codec's enums. Every binding that compresses a float
//! feature takes it whole instead of a dozen positional arguments, so the doors (`compress`,
//! `compress_many`, `plan`, the GPU planning) cannot read them differently. The per-tensor parts
//! (the channel axis resolved against the shape, clip ranges, scale and zero point) depend on
//! the array and come with each call. The names below are the only spelling of each
//! enumeration: `splitans`, numcodecs, zarr, the runtime and the CLI read them from `_core`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyStringMethods, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::entropy::stream::EncodeOptions;
use crate::pipeline::feature::{FeatureOptions, ModeChoice, Range, Reshape};
use crate::quant::{Affine, Channels, NonFinite};

/// The modes by name, in the order the documentation lists them.
const MODES: [(&str, ModeChoice); 6] = [
    ("auto", ModeChoice::Auto),
    ("dense", ModeChoice::Dense),
    ("csr", ModeChoice::Csr),
    ("context", ModeChoice::Context),
    ("pcontext", ModeChoice::Pctx),
    ("best", ModeChoice::Best),
];

/// The modes the GPU path codes: the fast coders, whose choice it reproduces byte for byte.
const GPU_MODES: [&str; 3] = ["auto", "dense", "csr"];

/// What to do with NaN and infinities, by name.
const NONFINITE: [(&str, NonFinite); 2] =
    [("error", NonFinite::Error), ("clamp", NonFinite::Clamp)];

/// The ways to choose the CSR row count besides an explicit one.
const RESHAPES: [(&str, Reshape); 2] = [("model", Reshape::Model), ("search", Reshape::Search)];

/// The container versions a float feature can be written as (the newest first).
const VERSIONS: [u8; 2] = [crate::format::container::COMPACT_VERSION, 1];

fn quoted(names: impl Iterator<Item = &'static str>) -> String {
    let names: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

fn mode_named(name: &str) -> PyResult<ModeChoice> {
    MODES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "mode must be {}, got {name:?}",
                quoted(MODES.iter().map(|(n, _)| *n))
            ))
        })
}

/// `nonfinite=` by name (the fitted codec's calls take it too).
pub(crate) fn non_finite(name: &str) -> PyResult<NonFinite> {
    NONFINITE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "nonfinite must be {}, got {name:?}",
                quoted(NONFINITE.iter().map(|(n, _)| *n))
            ))
        })
}

fn reshape_of(reshape: &Bound<'_, PyAny>) -> PyResult<Reshape> {
    // A string first: a failed integer extraction costs an exception (a microsecond).
    if let Ok(r) = reshape.cast::<PyString>() {
        let r = r.to_cow()?;
        return RESHAPES
            .iter()
            .find(|(n, _)| *n == r)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "reshape must be a row count, 'model' or 'search', got {r:?}"
                ))
            });
    }
    match reshape.extract::<usize>()? {
        0 => Err(PyValueError::new_err(
            "reshape must be a positive row count, 'model' or 'search', got 0",
        )),
        n => Ok(Reshape::Rows(n)),
    }
}

/// The options of `splitans.Options` the codec reads, parsed once (the Python wrapper builds
/// it; it is not the public object).
#[pyclass(frozen, module = "splitans._core", name = "CoderOptions")]
#[derive(Clone, Debug)]
pub struct CoderOptions {
    bits: Option<u8>,
    mode: ModeChoice,
    reshape: Reshape,
    non_finite: NonFinite,
    coder: EncodeOptions,
    version: u8,
}

#[pymethods]
impl CoderOptions {
    #[new]
    #[pyo3(signature = (bits, mode, reshape, nonfinite, precision_bits, chunk_log2, threads, version))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bits: Option<u8>,
        mode: &str,
        reshape: &Bound<'_, PyAny>,
        nonfinite: &str,
        precision_bits: Option<u8>,
        chunk_log2: Option<u8>,
        threads: usize,
        version: u8,
    ) -> PyResult<Self> {
        if let Some(b) = bits {
            if !(1..=16).contains(&b) {
                return Err(PyValueError::new_err(format!(
                    "bits must be an integer from 1 to 16, got {b}"
                )));
            }
        }
        if !VERSIONS.contains(&version) {
            return Err(PyValueError::new_err(format!(
                "version must be 3 or 1, got {version}"
            )));
        }
        Ok(CoderOptions {
            bits,
            mode: mode_named(mode)?,
            reshape: reshape_of(reshape)?,
            non_finite: non_finite(nonfinite)?,
            coder: EncodeOptions {
                precision_bits,
                chunk_log2,
                threads,
            },
            version,
        })
    }

    #[getter]
    fn bits(&self) -> Option<u8> {
        self.bits
    }

    #[getter]
    fn mode(&self) -> &'static str {
        MODES
            .iter()
            .find(|(_, m)| *m == self.mode)
            .map_or("auto", |(n, _)| *n)
    }

    #[getter]
    fn reshape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.reshape {
            Reshape::Rows(n) => n.into_bound_py_any(py),
            Reshape::Model => "model".into_bound_py_any(py),
            Reshape::Search => "search".into_bound_py_any(py),
        }
    }

    #[getter]
    fn nonfinite(&self) -> &'static str {
        NONFINITE
            .iter()
            .find(|(_, v)| *v == self.non_finite)
            .map_or("error", |(n, _)| *n)
    }

    #[getter]
    fn precision_bits(&self) -> Option<u8> {
        self.coder.precision_bits
    }

    #[getter]
    fn chunk_log2(&self) -> Option<u8> {
        self.coder.chunk_log2
    }

    #[getter]
    fn threads(&self) -> usize {
        self.coder.threads
    }

    #[getter]
    fn version(&self) -> u8 {
        self.version
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "CoderOptions(bits={}, mode={:?}, reshape={}, nonfinite={:?}, precision_bits={}, chunk_log2={}, threads={}, version={})",
            self.bits.map_or("None".to_string(), |b| b.to_string()),
            self.mode(),
            self.reshape(py)?.repr()?,
            self.nonfinite(),
            self.coder.precision_bits.map_or("None".to_string(), |b| b.to_string()),
            self.coder.chunk_log2.map_or("None".to_string(), |b| b.to_string()),
            self.coder.threads,
            self.version,
        ))
    }
}

impl CoderOptions {
    /// The coder's settings (precision, chunk size, threads).
    pub(crate) fn coder(&self) -> EncodeOptions {
        self.coder
    }

    /// The codec's options for one tensor of `shape`: these with its channel axis (already
    /// non-negative), clip ranges or scale and zero point. `threads` replaces the options'
    /// threads (a batch runs each tensor on one).
    pub(crate) fn feature(
        &self,
        shape: &[usize],
        axis: Option<usize>,
        clip: Option<Vec<(f32, f32)>>,
        scale: Option<Vec<f32>>,
        zero_point: Option<Vec<i32>>,
        threads: Option<usize>,
    ) -> PyResult<FeatureOptions> {
        let bits = self.bits.ok_or_else(|| {
            PyTypeError::new_err("compressing a float array needs bits= (1..16), e.g. bits=8")
        })?;
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
        let mut coder = self.coder;
        if let Some(t) = threads {
            coder.threads = t;
        }
        Ok(FeatureOptions {
            bits,
            axis,
            range,
            mode: self.mode,
            reshape: self.reshape,
            non_finite: self.non_finite,
            coder,
            version: self.version,
        })
    }
}

fn names<'py, T>(py: Python<'py>, table: &[(&'static str, T)]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, table.iter().map(|(n, _)| *n))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<CoderOptions>()?;
    m.add("MODES", names(py, &MODES)?)?;
    m.add("GPU_MODES", PyTuple::new(py, GPU_MODES)?)?;
    m.add("NONFINITE", names(py, &NONFINITE)?)?;
    m.add("RESHAPES", names(py, &RESHAPES)?)?;
    m.add("VERSIONS", PyTuple::new(py, VERSIONS)?)?;
    Ok(())
}
