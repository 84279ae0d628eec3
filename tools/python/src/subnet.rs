//! `lighthubert.Subnet`: a subnet of a model's search space, checked against it.

use lighthubert::supernet::Supernet;
use lighthubert::Subnet;
use pyo3::prelude::*;

use crate::errors::{self, Kind};

/// A subnet in the authors' format, validated against the model that made it.
#[pyclass(frozen, eq, module = "lighthubert._lighthubert", name = "Subnet")]
#[derive(Debug, Clone, PartialEq)]
pub struct PySubnet {
    pub subnet: Subnet,
    parameters: u64,
}

impl PySubnet {
    pub fn new(supernet: &Supernet, subnet: Subnet) -> PySubnet {
        let parameters = supernet.parameter_count(&subnet);
        PySubnet { subnet, parameters }
    }

    /// The text `lighthubert extract --subnet` takes for this subnet (its JSON).
    pub fn spec(&self) -> String {
        self.subnet.to_json()
    }
}

/// `spec`: a preset (`default`, `min`, `max`, `random:SEED`), a JSON file, or JSON text.
pub fn resolve(supernet: &Supernet, spec: &str) -> PyResult<Subnet> {
    if spec.trim_start().starts_with('{') {
        return supernet.subnet(spec).map_err(|e| errors::raise(Kind::Subnet, format!("subnet {spec}: {e}")));
    }
    lighthubert_tools::setup::resolve_subnet(supernet, spec).map_err(errors::from_cli)
}

#[pymethods]
impl PySubnet {
    #[getter]
    fn embed_dim(&self) -> usize {
        self.subnet.embed_dim
    }

    /// Kept transformer layers.
    #[getter]
    fn layer_num(&self) -> usize {
        self.subnet.layer_num
    }

    /// Attention heads (of 64 channels) of each kept layer.
    #[getter]
    fn heads_num(&self) -> Vec<usize> {
        self.subnet.heads_num.clone()
    }

    /// FFN width of each kept layer.
    #[getter]
    fn ffn_embed(&self) -> Vec<usize> {
        self.subnet.ffn_embed.clone()
    }

    #[getter]
    fn atten_dim(&self) -> Vec<usize> {
        self.subnet.atten_dim.clone()
    }

    /// Parameters of the subnet (the reference's count).
    #[getter]
    fn parameters(&self) -> u64 {
        self.parameters
    }

    /// Hidden states a forward pass returns: post_extract_proj plus one per kept layer.
    #[getter]
    fn num_states(&self) -> usize {
        self.subnet.layer_num + 1
    }

    /// The subnet as the authors' dict (`lighthubert subnet` prints the same as JSON).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &self.subnet).map_err(|e| errors::raise(Kind::Other, e.to_string()))
    }

    fn to_json(&self) -> String {
        self.subnet.to_json()
    }

    fn __repr__(&self) -> String {
        let s = &self.subnet;
        let span = |v: &[usize]| {
            let (lo, hi) = (v.iter().min().copied().unwrap_or(0), v.iter().max().copied().unwrap_or(0));
            if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }
        };
        format!(
            "Subnet(embed_dim={}, layer_num={}, heads {}, ffn {}: {:.2} M parameters)",
            s.embed_dim,
            s.layer_num,
            span(&s.heads_num),
            span(&s.ffn_embed),
            self.parameters as f64 / 1e6
        )
    }
}
