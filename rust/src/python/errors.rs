//! The one place where codec errors become Python exceptions.

use pyo3::create_exception;
use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::prelude::*;

use crate::error::CodecError;

create_exception!(
    splitans,
    CorruptDataError,
    PyValueError,
    "The data is not a valid splitans container: truncated, altered, or not splitans at all."
);
create_exception!(
    splitans,
    UnsupportedVersionError,
    CorruptDataError,
    "The container was written by a newer format version than this library reads."
);
create_exception!(
    splitans,
    OutputTooLargeError,
    PyValueError,
    "Decoding would produce more bytes than max_output_bytes allows."
);

impl From<CodecError> for PyErr {
    fn from(e: CodecError) -> PyErr {
        let msg = e.to_string();
        match e {
            CodecError::Corrupt(_) => CorruptDataError::new_err(msg),
            CodecError::UnsupportedVersion { .. } => UnsupportedVersionError::new_err(msg),
            CodecError::OutputTooLarge { .. } => OutputTooLargeError::new_err(msg),
            CodecError::InvalidArgument(_) => PyValueError::new_err(msg),
            CodecError::OutOfMemory { .. } => PyMemoryError::new_err(msg),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CorruptDataError", py.get_type::<CorruptDataError>())?;
    m.add(
        "UnsupportedVersionError",
        py.get_type::<UnsupportedVersionError>(),
    )?;
    m.add("OutputTooLargeError", py.get_type::<OutputTooLargeError>())?;
    Ok(())
}
