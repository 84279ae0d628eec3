//! The native half of the `lighthubert` Python package (`lighthubert._lighthubert`): the
//! engine and the corpus pipeline behind a thin, typed Python layer (`python/lighthubert/`),
//! which converts arguments and documents the API. Every failure becomes an exception of
//! `lighthubert.errors`; the GIL is released while the GPU or the disk works.

mod audio;
mod corpus;
mod errors;
mod model;
mod subnet;
mod waves;

use pyo3::prelude::*;

#[pymodule]
fn _lighthubert(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::Model>()?;
    m.add_class::<subnet::PySubnet>()?;
    m.add_function(wrap_pyfunction!(audio::load_audio, m)?)?;
    m.add_function(wrap_pyfunction!(audio::list_adapters, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::_plan_corpus, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::_record_failures, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::_remove_partials, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
