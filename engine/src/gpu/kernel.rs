//! What a compute kernel is: one entry point of a WGSL module composed from preludes and a
//! file, the parameter block it reads, and what it needs from the adapter. Each kernel module
//! (`crate::kernels::*`, or a program's own, like the demo's pictures) declares its kernels
//! beside the code that dispatches them; nothing here lists them.

use lighthubert_shaders::Source;
use thiserror::Error;
use wgpu::naga;

use super::WeightPrecision;

/// One compute entry point, as its module declares it.
#[derive(Debug, PartialEq, Eq)]
pub struct Kernel {
    pub entry_point: &'static str,
    /// The file that holds the entry point.
    pub shader: Source,
    /// Files composed before it, in order (WGSL has no includes).
    pub preludes: &'static [Source],
    /// Names this composition among those of the same file ("f16 weights"); empty if it is
    /// the only one.
    pub variant: &'static str,
    /// The Rust layout of the parameter block, held to the WGSL by [`Kernel::check`].
    pub params: ParamsLayout,
    /// The storage precision of the weight matrices it reads, if it reads any.
    pub weights: Option<WeightPrecision>,
    /// Uses f16 arithmetic (the adapter needs `SHADER_F16`).
    pub f16_arithmetic: bool,
    /// Written for subgroups of exactly this size.
    pub subgroup_size: Option<u32>,
    /// Multiplies on matrix units: 16 x 16 x 16 cooperative matrices, f16 inputs and f32
    /// accumulators (see [`GpuContext::matrix_units`](super::GpuContext::matrix_units)).
    pub matrix_units: bool,
    /// Written for subgroups of any power-of-two size from this one up.
    pub min_subgroup_size: Option<u32>,
}

impl Kernel {
    /// A kernel with no weights, f32 arithmetic and no subgroup operations.
    pub const fn new(shader: Source, preludes: &'static [Source], entry_point: &'static str, params: ParamsLayout) -> Kernel {
        Kernel { entry_point, shader, preludes, variant: "", params, weights: None, f16_arithmetic: false, subgroup_size: None, min_subgroup_size: None, matrix_units: false }
    }

    /// Reads weight matrices stored in `precision`; names the variant after it.
    pub const fn reading(self, precision: WeightPrecision, variant: &'static str) -> Kernel {
        Kernel { weights: Some(precision), variant, ..self }
    }

    pub const fn with_f16_arithmetic(self) -> Kernel {
        Kernel { f16_arithmetic: true, ..self }
    }

    pub const fn with_subgroup_size(self, size: u32) -> Kernel {
        Kernel { subgroup_size: Some(size), ..self }
    }

    pub const fn with_min_subgroup_size(self, size: u32) -> Kernel {
        Kernel { min_subgroup_size: Some(size), ..self }
    }

    pub const fn with_matrix_units(self) -> Kernel {
        Kernel { matrix_units: true, ..self }
    }

    /// The full WGSL module: preludes first, then the file, its parameters in a uniform.
    pub fn composed(&self) -> String {
        let mut s = String::new();
        for p in self.preludes {
            s.push_str(p.text);
            s.push('\n');
        }
        s.push_str(self.shader.text);
        s
    }

    /// The module with its parameter block bound as `binding` asks. Every shader declares the
    /// block once as [`UNIFORM_PARAMS`]; immediates swap that declaration for
    /// [`IMMEDIATE_PARAMS`], so one WGSL file serves both.
    pub fn composed_for(&self, binding: ParamsBinding) -> String {
        let source = self.composed();
        match binding {
            ParamsBinding::Uniform => source,
            ParamsBinding::Immediate => source.replacen(UNIFORM_PARAMS, IMMEDIATE_PARAMS, 1),
        }
    }

    /// The module's name: the file, with the variant if there is one.
    pub fn module_label(&self) -> String {
        if self.variant.is_empty() {
            self.shader.name.to_string()
        } else {
            format!("{} ({})", self.shader.name, self.variant)
        }
    }

    /// Identifies the composed module: kernels of one file and variant share it.
    pub(crate) fn module_key(&self) -> (&'static str, &'static str) {
        (self.shader.name, self.variant)
    }

    /// Identifies the pipeline.
    pub(crate) fn key(&self) -> (&'static str, &'static str, &'static str) {
        (self.shader.name, self.variant, self.entry_point)
    }

    /// Every file composed into this kernel's module.
    pub fn files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.preludes.iter().map(|p| p.name).chain([self.shader.name])
    }

    /// Checks the kernel without a GPU: the composed module parses and validates with naga, the
    /// entry point exists, and the parameter struct has the size and field offsets
    /// of [`Kernel::params`] (fields named `_...` are padding, covered by the size).
    /// Both ways of binding the parameters are checked: as a uniform and as immediates.
    pub fn check(&self) -> Result<(), KernelCheckError> {
        let err = |problem: KernelProblem| KernelCheckError { kernel: format!("{} in {}", self.entry_point, self.module_label()), problem };
        let declarations = self.composed().matches(UNIFORM_PARAMS).count();
        if declarations != 1 {
            return Err(err(KernelProblem::ParamsDeclarations(declarations)));
        }
        for binding in [ParamsBinding::Uniform, ParamsBinding::Immediate] {
            self.check_as(binding).map_err(err)?;
        }
        Ok(())
    }

    fn check_as(&self, binding: ParamsBinding) -> Result<(), KernelProblem> {
        let source = self.composed_for(binding);
        let module = naga::front::wgsl::parse_str(&source).map_err(|e| KernelProblem::Parse(e.emit_to_string(&source)))?;
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .map_err(|e| KernelProblem::Invalid(e.emit_to_string(&source)))?;
        if !module.entry_points.iter().any(|e| e.name == self.entry_point) {
            return Err(KernelProblem::NoEntryPoint);
        }
        let is_params = |v: &naga::GlobalVariable| match binding {
            ParamsBinding::Uniform => {
                v.space == naga::AddressSpace::Uniform && v.binding.as_ref().is_some_and(|b| b.group == 0 && b.binding == 0)
            }
            ParamsBinding::Immediate => v.space == naga::AddressSpace::Immediate,
        };
        let block = module.global_variables.iter().map(|(_, v)| v).find(|v| is_params(v)).ok_or(KernelProblem::NoParams)?;
        let ty = &module.types[block.ty];
        let name = ty.name.clone().unwrap_or_default();
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            return Err(KernelProblem::Params(format!("the parameter block {name} is not a struct")));
        };
        let p = &self.params;
        let mismatch = |detail: String| Err(KernelProblem::Params(detail));
        if name != p.name {
            return mismatch(format!("the shader's parameter struct is {name}, the Rust one {}", p.name));
        }
        if *span as usize != p.size {
            return mismatch(format!("{name} is {span} bytes in WGSL, {} in Rust", p.size));
        }
        for m in members.iter().filter(|m| !m.name.as_deref().unwrap_or("_").starts_with('_')) {
            let field = m.name.as_deref().unwrap_or_default();
            match p.fields.iter().find(|(n, _)| *n == field) {
                None => return mismatch(format!("{name}.{field} is in WGSL, not in Rust")),
                Some((_, offset)) if *offset != m.offset as usize => {
                    return mismatch(format!("{name}.{field} is at byte {} in WGSL, {offset} in Rust", m.offset))
                }
                Some(_) => {}
            }
        }
        if let Some((field, _)) = p.fields.iter().find(|(f, _)| !members.iter().any(|m| m.name.as_deref() == Some(*f))) {
            return mismatch(format!("{name}.{field} is in Rust, not in WGSL"));
        }
        Ok(())
    }
}

/// How every shader declares its parameter block (a struct named after [`ParamsLayout::name`]).
pub const UNIFORM_PARAMS: &str = "@group(0) @binding(0) var<uniform> p:";
/// The same block as immediate data.
const IMMEDIATE_PARAMS: &str = "var<immediate> p:";

/// How a dispatch hands a kernel its parameter block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamsBinding {
    /// A slice of the command stream's uniform buffer at group 0, binding 0: every adapter.
    Uniform,
    /// Immediate data (Vulkan push constants) set in the pass before the dispatch: no buffer
    /// to write and read back through a descriptor, where the adapter offers `IMMEDIATES` and
    /// the block fits its `max_immediate_size`.
    Immediate,
}

/// A `#[repr(C)]` parameter block as Rust lays it out: its size and each named field's offset.
/// Build it with [`params_layout!`](crate::params_layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamsLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// `params_layout!(LinearParams { rows, cols })`: the [`ParamsLayout`] of a `#[repr(C)]`
/// struct, as a constant. List every field but the padding.
#[macro_export]
macro_rules! params_layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::gpu::ParamsLayout {
            name: stringify!($ty),
            size: ::std::mem::size_of::<$ty>(),
            fields: &[$((stringify!($field), ::std::mem::offset_of!($ty, $field))),*],
        }
    };
}

/// A kernel that fails [`Kernel::check`].
#[derive(Debug, Error)]
#[error("{kernel}: {problem}")]
pub struct KernelCheckError {
    pub kernel: String,
    pub problem: KernelProblem,
}

#[derive(Debug, Error)]
pub enum KernelProblem {
    #[error("does not parse:\n{0}")]
    Parse(String),
    #[error("does not validate:\n{0}")]
    Invalid(String),
    #[error("no such entry point in the module")]
    NoEntryPoint,
    #[error("no parameter block (a uniform at group 0, binding 0, or immediates)")]
    NoParams,
    #[error("the module declares `{UNIFORM_PARAMS}` {0} times, not once")]
    ParamsDeclarations(usize),
    #[error("the parameter block differs: {0}")]
    Params(String),
}
