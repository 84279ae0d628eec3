use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::pipelines::PipelineCache;
use super::pool::BufferPool;
use super::{GpuError, ParamsBinding, Precision};
use crate::parse::UnknownChoice;

/// Which kernel forms a device runs: those written for GPUs (workgroup memory, cooperative
/// reductions) or those for CPU implementations such as lavapipe (large register tiles, vec4
/// loads, no barriers). Every form computes the same values; the choice is speed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    Gpu,
    Cpu,
}

impl std::str::FromStr for KernelFamily {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "gpu" => Ok(KernelFamily::Gpu),
            "cpu" => Ok(KernelFamily::Cpu),
            _ => Err(UnknownChoice::new("kernel family", s, "gpu or cpu")),
        }
    }
}

/// Which adapter to open, from these settings by default ([`AdapterChoice::from_env`]):
///
/// - `WGPU_BACKEND`: the backends to look on, comma-separated and case-insensitive:
///   `vulkan` (`vk`), `metal` (`mtl`), `dx12` (`d3d12`), `gl` (`gles`, `opengl`), `webgpu`,
///   `primary` (vulkan, metal, dx12, webgpu) and `secondary` (gl). Unset: all of them. Any
///   other name is an error from [`GpuContext::new`], not a silently empty set.
/// - `LIGHTHUBERT_ADAPTER`: which of the adapters found to open. `N` or `#N` (a non-negative
///   integer) is the N-th in preference order, the order [`list_adapters`] prints: real GPUs
///   before software rasterisers, GL after the other backends, otherwise as the driver lists
///   them; `0` is the adapter opened by default, and this is the way to choose between two
///   identical GPUs. Anything else is a case-insensitive substring of the adapter name (the
///   first match in preference order is opened). Unset: index 0.
/// - `LIGHTHUBERT_KERNELS=gpu|cpu` overrides the kernel family the device type implies (run
///   the GPU forms on lavapipe to test them).
/// - `LIGHTHUBERT_TUNE=on|off`: whether loading a model on this device times the GPU GEMM's
///   tile forms on a few shapes to place the line between them (once per adapter, driver and
///   precision; kept under [`crate::cache::dir`]). Unset: on for GPUs, off for CPU adapters
///   such as lavapipe (their kernel family has one GEMM form per slice).
/// - `LIGHTHUBERT_PARAMS=uniform|immediate`: how dispatches hand kernels their parameters.
///   Unset: as immediates where the adapter offers them, else in a uniform buffer; `uniform`
///   never uses immediates (to compare, or to step around a driver's bug); `immediate` is an
///   error on an adapter without them.
#[derive(Debug, Clone)]
pub struct AdapterChoice {
    pub backends: wgpu::Backends,
    /// Why the `WGPU_BACKEND` setting was refused; [`GpuContext::new`] and [`list_adapters`]
    /// report it. Clear it when setting `backends` yourself over a refused setting.
    pub backend_error: Option<BackendError>,
    /// `N`, `#N` or a name substring, as `LIGHTHUBERT_ADAPTER` above.
    pub name_filter: Option<String>,
    pub kernels: Option<String>,
    /// `uniform` or `immediate`, as `LIGHTHUBERT_PARAMS` above.
    pub params: Option<String>,
    /// `on` or `off`, as `LIGHTHUBERT_TUNE` above.
    pub tune: Option<String>,
}

impl AdapterChoice {
    pub fn from_env() -> Self {
        // An empty variable is how shells unset one for a single command: read it as unset.
        let setting = |name| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
        let choice = Self::from_settings(setting("WGPU_BACKEND"), setting("LIGHTHUBERT_ADAPTER"), setting("LIGHTHUBERT_KERNELS"));
        AdapterChoice { params: setting("LIGHTHUBERT_PARAMS"), tune: setting("LIGHTHUBERT_TUNE"), ..choice }
    }

    /// The choice the three settings make, as if they were `WGPU_BACKEND`,
    /// `LIGHTHUBERT_ADAPTER` and `LIGHTHUBERT_KERNELS` (the Python package's keywords).
    pub fn from_settings(backend: Option<String>, adapter: Option<String>, kernels: Option<String>) -> Self {
        let (backends, backend_error) = match backend.as_deref().map(parse_backends) {
            None => (wgpu::Backends::all(), None),
            Some(Ok(b)) => (b, None),
            // Kept for `new` to report: `from_env` cannot fail, and callers build on it.
            Some(Err(reason)) => (wgpu::Backends::all(), Some(reason)),
        };
        AdapterChoice { backends, backend_error, name_filter: adapter, kernels, params: None, tune: None }
    }
}

impl Default for AdapterChoice {
    fn default() -> Self {
        Self::from_env()
    }
}

/// A `LIGHTHUBERT_PARAMS` value.
fn parse_params(setting: &str) -> Result<ParamsBinding, UnknownChoice> {
    match setting.trim() {
        "uniform" => Ok(ParamsBinding::Uniform),
        "immediate" => Ok(ParamsBinding::Immediate),
        other => Err(UnknownChoice::new("parameter binding", other, "uniform or immediate")),
    }
}

/// A `WGPU_BACKEND` value: the names `wgpu::Backends::from_comma_list` (wgpu 30) knows, and
/// wgpu's group names. Not that function itself: it skips unknown names with a log warning
/// and returns an empty set, which later reads as "no adapter found".
fn parse_backends(setting: &str) -> Result<wgpu::Backends, BackendError> {
    let mut backends = wgpu::Backends::empty();
    for item in setting.split(',') {
        let name = item.trim();
        // `vulkan,` means vulkan, as it does to wgpu.
        if name.is_empty() {
            continue;
        }
        backends |= match name.to_lowercase().as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "opengl" | "gles" | "gl" => wgpu::Backends::GL,
            "webgpu" => wgpu::Backends::BROWSER_WEBGPU,
            "primary" => wgpu::Backends::PRIMARY,
            "secondary" => wgpu::Backends::SECONDARY,
            // wgpu knows it, but it computes nothing and gives no adapter unless enabled.
            "noop" => return Err(BackendError::Noop),
            _ => return Err(BackendError::Unknown(name.to_string())),
        };
    }
    if backends.is_empty() {
        return Err(BackendError::NoneNamed(setting.to_string()));
    }
    Ok(backends)
}

/// A `WGPU_BACKEND` value that names no usable backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("`noop` is wgpu's backend that computes nothing; it cannot run the model")]
    Noop,
    #[error("`{0}` is not a backend (expected vulkan, metal, dx12 or gl, comma-separated)")]
    Unknown(String),
    #[error("`{0}` names no backend (expected vulkan, metal, dx12 or gl, comma-separated)")]
    NoneNamed(String),
}

/// `backends` as a person reads it: "vulkan, gl", "all" or "none".
fn backend_names(backends: wgpu::Backends) -> String {
    if backends == wgpu::Backends::all() {
        return "all".to_string();
    }
    if backends.is_empty() {
        return "none".to_string();
    }
    wgpu::Backend::ALL
        .iter()
        .filter(|&&b| backends.contains(b.into()))
        .map(|b| b.to_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What choosing and listing adapters need of one: a type tests build without a GPU.
#[derive(Debug, Clone)]
struct Described {
    name: String,
    backend: wgpu::Backend,
    device_type: wgpu::DeviceType,
}

impl Described {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let i = adapter.get_info();
        Described { name: i.name, backend: i.backend, device_type: i.device_type }
    }

    /// Real GPUs over software rasterisers, then Vulkan/Metal/DX12 over GL.
    fn preference(&self) -> (u8, bool) {
        (device_rank(self.device_type), self.backend == wgpu::Backend::Gl)
    }

    fn line(&self, index: usize) -> String {
        format!("{index}: {} ({:?}, {:?})", self.name, self.backend, self.device_type)
    }
}

/// Adapters in preference order. The sort is stable, so equally preferred adapters (two
/// identical GPUs) keep the order the driver lists them in and an index names the same one
/// from run to run.
fn in_preference_order<T>(mut adapters: Vec<(T, Described)>) -> Vec<(T, Described)> {
    adapters.sort_by_key(|(_, d)| d.preference());
    adapters
}

fn available(ordered: &[Described]) -> String {
    ordered.iter().enumerate().map(|(k, d)| d.line(k)).collect::<Vec<_>>().join("; ")
}

/// Which of `ordered` (in preference order, not empty) `filter` names: see [`AdapterChoice`].
fn pick(filter: Option<&str>, ordered: &[Described]) -> Result<usize, GpuError> {
    let Some(filter) = filter else { return Ok(0) };
    let trimmed = filter.trim();
    let digits = trimmed.strip_prefix('#').unwrap_or(trimmed);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a usize is out of range all the same.
        let index = digits.parse().unwrap_or(usize::MAX);
        if index >= ordered.len() {
            return Err(GpuError::NoAdapterAtIndex { index, count: ordered.len(), available: available(ordered) });
        }
        return Ok(index);
    }
    if trimmed.starts_with('#') {
        return Err(GpuError::BadSetting {
            name: "LIGHTHUBERT_ADAPTER",
            reason: format!("`{filter}` is not an adapter index (expected N or #N, or part of an adapter's name)"),
        });
    }
    let needle = filter.to_lowercase();
    ordered
        .iter()
        .position(|d| d.name.to_lowercase().contains(&needle))
        .ok_or_else(|| GpuError::NoMatchingAdapter { filter: filter.to_string(), available: available(ordered) })
}

/// The adapters `choice.backends` offers, in preference order.
fn ordered_adapters(choice: &AdapterChoice) -> Result<Vec<(wgpu::Adapter, Described)>, GpuError> {
    if let Some(reason) = &choice.backend_error {
        return Err(GpuError::BadSetting { name: "WGPU_BACKEND", reason: reason.to_string() });
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = choice.backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(choice.backends));
    let described = adapters.into_iter().map(|a| {
        let d = Described::of(&a);
        (a, d)
    });
    Ok(in_preference_order(described.collect()))
}

/// The adapters `choice` can open, one line each in preference order: `0: NAME (Backend,
/// DeviceType)`, where the leading number is what `LIGHTHUBERT_ADAPTER=N` takes. Empty when
/// none is found; an error where `choice.backend_error` is set.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<String>, GpuError> {
    Ok(ordered_adapters(choice)?.iter().enumerate().map(|(k, (_, d))| d.line(k)).collect())
}

/// What went up to the GPU. Switching subnets must leave the weight counters untouched.
#[derive(Debug, Default)]
pub struct Counters {
    weight_bytes_uploaded: AtomicU64,
    weight_buffers_created: AtomicU64,
    activation_buffers_created: AtomicU64,
    pub(crate) activation_buffers_reused: AtomicU64,
    submissions: AtomicU64,
}

impl Counters {
    pub fn weight_bytes_uploaded(&self) -> u64 {
        self.weight_bytes_uploaded.load(Ordering::Relaxed)
    }
    pub fn weight_buffers_created(&self) -> u64 {
        self.weight_buffers_created.load(Ordering::Relaxed)
    }
    pub fn activation_buffers_created(&self) -> u64 {
        self.activation_buffers_created.load(Ordering::Relaxed)
    }
    /// Activation buffers a forward pass took from the pool instead of creating.
    pub fn activation_buffers_reused(&self) -> u64 {
        self.activation_buffers_reused.load(Ordering::Relaxed)
    }
    /// Command-buffer submissions: a forward pass is one, plus one for reading results back.
    pub fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }
    pub(crate) fn count_submission(&self) {
        self.submissions.fetch_add(1, Ordering::Relaxed);
    }
}

/// One wgpu device and queue, with everything that should exist once per device.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Which kernel forms dispatches take on this device.
    pub kernel_family: KernelFamily,
    /// The subgroup size, where subgroup operations are enabled and the size is fixed.
    pub subgroup_size: Option<u32>,
    /// The smallest subgroup size the device may run, where subgroup operations are enabled
    /// (sizes may vary between it and `adapter_info.subgroup_max_size`).
    pub subgroup_min_size: Option<u32>,
    /// Whether shaders may use f16 arithmetic (SHADER_F16).
    pub shader_f16: bool,
    /// Whether parameter blocks that fit go as immediates (see [`GpuContext::params_binding`]).
    pub immediates: bool,
    /// Whether kernels may multiply on matrix units: the adapter offers wgpu's cooperative
    /// matrices as 16 x 16 x 16 products of f16 with f32 accumulators (NVIDIA's Vulkan driver
    /// does; no lavapipe does), and f16 shaders.
    pub matrix_units: bool,
    /// Whether loading a model tunes the GPU GEMM's tile line (`LIGHTHUBERT_TUNE`).
    pub autotune: bool,
    /// The GEMM tile lines measured on this device, per precision (see
    /// [`crate::kernels::linear::tune`]).
    tile_lines: Mutex<HashMap<Precision, u64>>,
    pub(crate) pipelines: PipelineCache,
    pub(crate) pool: BufferPool,
    counters: Counters,
    /// Bound where a kernel's optional input (a bias, a residual) is absent.
    pub(crate) empty: wgpu::Buffer,
    /// Errors wgpu reports outside any error scope; wgpu's default handler would panic.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost, once it is (a driver reset, `destroy`): nothing runs after.
    lost: Arc<Mutex<Option<String>>>,
}

fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl GpuContext {
    pub fn new(choice: &AdapterChoice) -> Result<Self, GpuError> {
        // Settings first: a mistyped one is the thing to fix, whatever the adapters are.
        let family = match &choice.kernels {
            None => None,
            Some(v) => Some(v.parse().map_err(|e: UnknownChoice| GpuError::BadSetting { name: "LIGHTHUBERT_KERNELS", reason: e.to_string() })?),
        };
        let params = match &choice.params {
            None => None,
            Some(v) => Some(parse_params(v).map_err(|e| GpuError::BadSetting { name: "LIGHTHUBERT_PARAMS", reason: e.to_string() })?),
        };
        let tune = match choice.tune.as_deref().map(str::trim) {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(other) => {
                return Err(GpuError::BadSetting { name: "LIGHTHUBERT_TUNE", reason: UnknownChoice::new("tuning", other, "on or off").to_string() })
            }
        };
        let mut adapters = ordered_adapters(choice)?;
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter { backends: backend_names(choice.backends) });
        }
        let described: Vec<Described> = adapters.iter().map(|(_, d)| d.clone()).collect();
        let k = pick(choice.name_filter.as_deref(), &described)?;
        let (adapter, _) = adapters.swap_remove(k);
        let mut ctx = Self::from_adapter(adapter, family, params)?;
        if let Some(on) = tune {
            ctx.autotune = on;
        }
        Ok(ctx)
    }

    /// Opens `adapter`; `kernels` overrides the kernel family its device type implies, `params`
    /// how parameters are bound (unset: immediates where offered).
    pub fn from_adapter(adapter: wgpu::Adapter, kernels: Option<KernelFamily>, params: Option<ParamsBinding>) -> Result<Self, GpuError> {
        let adapter_info = adapter.get_info();
        let kernel_family = kernels.unwrap_or(if adapter_info.device_type == wgpu::DeviceType::Cpu {
            KernelFamily::Cpu
        } else {
            KernelFamily::Gpu
        });
        // Ask for everything the adapter can do: large storage bindings matter for long audio.
        let limits = adapter.limits();
        // Timestamps only serve the profiler; subgroups let CPU kernels share loads and GPU
        // attention split a query over lanes; f16 shaders allow f16 arithmetic; immediates
        // spare each dispatch a uniform binding. Take them where offered.
        let mut features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16 | wgpu::Features::IMMEDIATES);
        let immediates = match params {
            None => features.contains(wgpu::Features::IMMEDIATES) && limits.max_immediate_size > 0,
            Some(ParamsBinding::Uniform) => false,
            Some(ParamsBinding::Immediate) if features.contains(wgpu::Features::IMMEDIATES) && limits.max_immediate_size > 0 => true,
            Some(ParamsBinding::Immediate) => {
                return Err(GpuError::BadSetting {
                    name: "LIGHTHUBERT_PARAMS",
                    reason: format!("`immediate`, but {} offers no immediates (use `uniform` or leave it unset)", adapter_info.name),
                })
            }
        };
        if !immediates {
            features.remove(wgpu::Features::IMMEDIATES);
        }
        let matrix_units = adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && features.contains(wgpu::Features::SHADER_F16)
            && adapter.cooperative_matrix_properties().iter().any(|m| {
                (m.m_size, m.n_size, m.k_size) == (16, 16, 16)
                    && m.ab_type == wgpu::CooperativeScalarType::F16
                    && m.cr_type == wgpu::CooperativeScalarType::F32
            });
        let experimental_features = if matrix_units {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: wgpu marks cooperative matrices experimental: its implementation may
            // still have bugs. Only the matrix-unit GEMM uses them, and the GPU benchmark
            // checks its results against the fixtures on the hardware that offers them.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let subgroup_size = (features.contains(wgpu::Features::SUBGROUP)
            && adapter_info.subgroup_min_size == adapter_info.subgroup_max_size)
            .then_some(adapter_info.subgroup_min_size);
        let autotune = adapter_info.device_type != wgpu::DeviceType::Cpu;
        let subgroup_min_size = features.contains(wgpu::Features::SUBGROUP).then_some(adapter_info.subgroup_min_size);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lighthubert"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: adapter_info.name.clone(),
            reason: e.to_string(),
        })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut errors) = sink.lock() {
                errors.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_sink.lock() {
                *l = Some(format!("{reason:?}{}", if message.is_empty() { String::new() } else { format!(": {message}") }));
            }
        });
        let empty = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("empty"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuContext {
            device,
            queue,
            adapter_info,
            limits,
            kernel_family,
            subgroup_size,
            subgroup_min_size,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            immediates,
            matrix_units,
            autotune,
            tile_lines: Mutex::new(HashMap::new()),
            pipelines: PipelineCache::default(),
            pool: BufferPool::default(),
            counters: Counters::default(),
            empty,
            uncaptured,
            lost,
        })
    }

    /// Runs `work` inside out-of-memory and validation error scopes, so a device-side failure
    /// comes back as an error instead of a panic.
    pub fn scoped<T, E: From<GpuError>>(&self, work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.check_not_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = work();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        // A loss explains whatever failed with it; say so rather than the symptom.
        self.check_not_lost()?;
        if let Some(e) = oom {
            // Whatever the pool holds is reclaimable; without it the next request may fit.
            self.release_pooled();
            return Err(GpuError::OutOfMemory { detail: e.to_string() }.into());
        }
        if let Some(e) = validation {
            return Err(GpuError::Device(e.to_string()).into());
        }
        result
    }

    /// An error if the device has been lost: a lost device never runs again, so the caller
    /// must build a new context and reload its models.
    pub fn check_not_lost(&self) -> Result<(), GpuError> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(reason) => Err(GpuError::DeviceLost { reason }),
            None => Ok(()),
        }
    }

    /// The GEMM tile line measured for `precision` on this device, once it is.
    pub fn tile_line(&self, precision: Precision) -> Option<u64> {
        self.tile_lines.lock().ok().and_then(|l| l.get(&precision).copied())
    }

    pub(crate) fn set_tile_line(&self, precision: Precision, line: u64) {
        if let Ok(mut l) = self.tile_lines.lock() {
            l.insert(precision, line);
        }
    }

    /// Whether the device's subgroups are what `kernel` was written for (true for a kernel
    /// without subgroup operations).
    pub fn has_subgroups_for(&self, kernel: &super::Kernel) -> bool {
        kernel.subgroup_size.is_none_or(|n| self.subgroup_size == Some(n))
            && kernel.min_subgroup_size.is_none_or(|n| self.subgroup_min_size.is_some_and(|m| m >= n && m.is_power_of_two()))
    }

    /// Errors the device reported outside any scope since the last call, oldest first.
    pub fn take_uncaptured_errors(&self) -> Vec<String> {
        self.uncaptured.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many compute pipelines have been compiled so far.
    pub fn pipelines_built(&self) -> usize {
        self.pipelines.len()
    }

    /// Compiles `kernels` now, so that no later forward pass (a subnet switch that changes a
    /// kernel's form, say) stalls on shader compilation.
    pub fn build_pipelines(&self, kernels: impl IntoIterator<Item = &'static super::Kernel>) {
        for k in kernels {
            self.pipeline(k);
        }
    }

    /// `kernel`'s compute pipeline, compiled on first use.
    pub(crate) fn pipeline(&self, kernel: &super::Kernel) -> wgpu::ComputePipeline {
        self.pipelines.get(&self.device, kernel, self.params_binding(kernel))
    }

    /// How `kernel` receives its parameters on this device: as immediates where they are on
    /// and its block fits the adapter's `max_immediate_size` (128 bytes at least on Vulkan,
    /// and every block is 64 or less), else in a uniform buffer.
    pub fn params_binding(&self, kernel: &super::Kernel) -> ParamsBinding {
        if self.immediates && kernel.params.size as u64 <= self.limits.max_immediate_size as u64 {
            ParamsBinding::Immediate
        } else {
            ParamsBinding::Uniform
        }
    }

    /// What this device runs with, for benchmark records: the kernel family and the optional
    /// features the kernels use.
    pub fn capabilities(&self) -> String {
        let mut parts = vec![format!("{:?} kernels", self.kernel_family)];
        if self.shader_f16 {
            parts.push("f16".into());
        }
        let i = &self.adapter_info;
        if self.device.features().contains(wgpu::Features::SUBGROUP) {
            parts.push(match self.subgroup_size {
                Some(n) => format!("subgroups of {n}"),
                None => format!("subgroups of {}-{}", i.subgroup_min_size, i.subgroup_max_size),
            });
        }
        if self.immediates {
            parts.push(format!("immediates up to {} B", self.limits.max_immediate_size));
        }
        if self.matrix_units {
            parts.push("f16 matrix units".into());
        }
        parts.join(", ")
    }

    /// A one-line description of the adapter, for logs and benchmark records.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        format!("{} ({:?}, {:?}, driver {} {})", i.name, i.backend, i.device_type, i.driver, i.driver_info)
    }

    /// Uploads one full supernet tensor as f32 (biases, norms; matrices go through
    /// [`GpuContext::upload_matrix`]). These are the only paths weights take to the GPU.
    pub fn upload_weight(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        self.upload_weight_bytes(label, bytemuck::cast_slice(values))
    }

    /// Uploads weight storage of any layout (see [`GpuContext::upload_matrix`]).
    pub(crate) fn upload_weight_bytes(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        self.check_size(label, bytes.len() as u64)?;
        // An empty tensor still needs a valid binding. Not `create_buffer_init`: its internal
        // staging buffer loses the device when memory runs out (see create_buffer_checked).
        let contents: &[u8] = if bytes.is_empty() { &[0u8; 4] } else { bytes };
        let staging = self.staging_with(contents)?;
        let buffer = self.create_buffer_checked(&wgpu::BufferDescriptor {
            label: Some(label),
            size: staging.size(),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })?;
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("weight upload") });
        encoder.copy_buffer_to_buffer(&staging, 0, &buffer, 0, staging.size());
        self.queue.submit([encoder.finish()]);
        self.counters.weight_bytes_uploaded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.counters.weight_buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(buffer)
    }

    pub(crate) fn activation_bytes(len: usize) -> u64 {
        (len.max(4) * 4) as u64
    }

    /// A new storage buffer for activations of `len` f32 values, outside the pool (a forward
    /// pass takes pooled ones from an [`Arena`](super::Arena)).
    pub fn activation(&self, label: &str, len: usize) -> Result<wgpu::Buffer, GpuError> {
        let bytes = Self::activation_bytes(len);
        self.check_size(label, bytes)?;
        let buffer = self.create_buffer_checked(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })?;
        self.counters.activation_buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(buffer)
    }

    /// A mapped-at-creation copy source holding `bytes` (padded to whole 4-byte words), for
    /// uploads that must fail cleanly when memory runs out.
    pub(crate) fn staging_with(&self, bytes: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let size = (bytes.len() as u64).div_ceil(4) * 4;
        // A mapped buffer is host memory. Mesa 25's lavapipe hands out a mapping it could not
        // back without saying so, and wgpu's zero fill of it then kills the process (SIGSEGV,
        // seen with the address space capped): reserving as much here first turns that into
        // an error while the device is still intact. As for device memory, a failure first
        // frees the pooled activation buffers and tries once more.
        let reserve = || host_vec::<u8>("an upload buffer", size as usize).map(drop);
        reserve().or_else(|_| {
            self.release_pooled();
            reserve()
        })?;
        let staging = self.create_buffer_checked(&wgpu::BufferDescriptor {
            label: Some("upload"),
            size,
            usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        })?;
        staging
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|e| GpuError::Device(format!("mapping an upload buffer: {e}")))?
            .slice(..bytes.len())
            .copy_from_slice(bytes);
        staging.unmap();
        Ok(staging)
    }

    /// Creates a buffer, or reports that the device has no memory for it. Out of memory at
    /// buffer creation is the one place wgpu lets a device survive it (a staging buffer of
    /// `queue.write_buffer` or a command encoder failing to allocate loses the device), so
    /// every buffer that scales with the input is created here, before anything is encoded.
    /// A failure first frees the pooled activation buffers and tries once more.
    pub(crate) fn create_buffer_checked(&self, desc: &wgpu::BufferDescriptor) -> Result<wgpu::Buffer, GpuError> {
        let attempt = || {
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buffer = self.device.create_buffer(desc);
            match pollster::block_on(scope.pop()) {
                None => Ok(buffer),
                Some(e) => Err(e),
            }
        };
        attempt().or_else(|_| {
            self.release_pooled();
            attempt()
        })
        .map_err(|e| GpuError::OutOfMemory {
            detail: format!("allocating {} bytes for {}: {e}", desc.size, desc.label.unwrap_or("a buffer")),
        })
    }

    /// An activation buffer filled with `values` (inputs such as the waveform).
    pub fn activation_from(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.activation(label, values.len())?;
        self.fill(&buffer, bytemuck::cast_slice(values))?;
        Ok(buffer)
    }

    /// A storage buffer of u32 values (lengths, indices).
    pub fn u32_buffer(&self, label: &str, values: &[u32]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.activation(label, values.len())?;
        self.fill(&buffer, bytemuck::cast_slice(values))?;
        Ok(buffer)
    }

    /// Writes `bytes` to the start of `dst` through a staging buffer of its own, which fails
    /// cleanly when memory runs out where `queue.write_buffer`'s would lose the device.
    fn fill(&self, dst: &wgpu::Buffer, bytes: &[u8]) -> Result<(), GpuError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let staging = self.staging_with(bytes)?;
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("activation upload") });
        encoder.copy_buffer_to_buffer(&staging, 0, dst, 0, staging.size());
        self.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Bytes of activation buffers waiting in the pool for the next forward pass.
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.pooled_bytes()
    }

    /// Frees every pooled activation buffer (for example after one unusually long input).
    pub fn release_pooled(&self) {
        self.pool.clear()
    }

    /// The largest buffer a kernel can bind on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    fn check_size(&self, what: &str, bytes: u64) -> Result<(), GpuError> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(GpuError::BufferTooLarge { what: what.to_string(), bytes, limit });
        }
        Ok(())
    }

    /// Copies each (buffer, offset, len) range of f32 values back to the CPU, in one submit.
    pub fn read_back(&self, ranges: &[(&wgpu::Buffer, usize, usize)]) -> Result<Vec<Vec<f32>>, GpuError> {
        let total: u64 = ranges.iter().map(|(_, _, n)| (*n as u64) * 4).sum();
        let staging = self.create_buffer_checked(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let mut offset = 0u64;
        for (buffer, start, len) in ranges {
            let bytes = (*len as u64) * 4;
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(buffer, (*start as u64) * 4, &staging, offset, bytes);
            }
            offset += bytes;
        }
        self.queue.submit([encoder.finish()]);
        self.counters.count_submission();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = slice.get_mapped_range().map_err(|e| GpuError::Readback(e.to_string()))?;
        let all: &[f32] = bytemuck::cast_slice(&data);
        let mut out = Vec::with_capacity(ranges.len());
        let mut start = 0usize;
        for (_, _, len) in ranges {
            let mut values = host_vec("read-back values", *len)?;
            values.extend_from_slice(&all[start..start + len]);
            out.push(values);
            start += len;
        }
        drop(data);
        staging.unmap();
        Ok(out)
    }
}

/// An empty vector with room for `len` values, or an error where the host cannot provide it:
/// the inputs and outputs that scale with audio length are allocated this way, so that a huge
/// request is refused instead of aborting the process.
pub fn host_vec<T>(what: &str, len: usize) -> Result<Vec<T>, GpuError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| GpuError::HostOutOfMemory {
        what: what.to_string(),
        bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::{Backend, Backends, DeviceType};

    fn settings(backend: &str) -> AdapterChoice {
        AdapterChoice::from_settings(Some(backend.to_string()), None, None)
    }

    #[test]
    fn wgpu_backend_takes_wgpu_spellings() {
        let cases = [
            ("vulkan", Backends::VULKAN),
            ("VK", Backends::VULKAN),
            ("Metal, mtl", Backends::METAL),
            ("dx12", Backends::DX12),
            ("d3d12", Backends::DX12),
            ("gl", Backends::GL),
            ("gles", Backends::GL),
            ("OpenGL", Backends::GL),
            ("webgpu", Backends::BROWSER_WEBGPU),
            ("primary", Backends::PRIMARY),
            ("secondary", Backends::GL),
            ("vulkan, gl", Backends::VULKAN | Backends::GL),
            ("vulkan,", Backends::VULKAN),
        ];
        for (setting, want) in cases {
            let choice = settings(setting);
            assert_eq!(choice.backends, want, "{setting}");
            assert!(choice.backend_error.is_none(), "{setting}");
        }
        let unset = AdapterChoice::from_settings(None, None, None);
        assert_eq!(unset.backends, Backends::all());
        assert!(unset.backend_error.is_none());
    }

    #[test]
    fn an_unknown_backend_is_an_error_not_an_empty_set() {
        assert_eq!(
            parse_backends("cuda").unwrap_err().to_string(),
            "`cuda` is not a backend (expected vulkan, metal, dx12 or gl, comma-separated)"
        );
        assert_eq!(parse_backends("vulkan,cuda").unwrap_err(), BackendError::Unknown("cuda".into()));
        assert_eq!(parse_backends(" , ").unwrap_err(), BackendError::NoneNamed(" , ".into()));
        assert_eq!(parse_backends("noop").unwrap_err(), BackendError::Noop);
        // Reported where a context is opened or adapters are listed, before any adapter is
        // looked for (so this needs no GPU).
        let choice = settings("cuda");
        for e in [GpuContext::new(&choice).err().unwrap(), list_adapters(&choice).unwrap_err()] {
            assert!(matches!(e, GpuError::BadSetting { name: "WGPU_BACKEND", .. }), "{e:?}");
            assert_eq!(e.to_string(), "WGPU_BACKEND: `cuda` is not a backend (expected vulkan, metal, dx12 or gl, comma-separated)");
        }
    }

    #[test]
    fn backends_print_by_name() {
        assert_eq!(backend_names(Backends::VULKAN | Backends::GL), "vulkan, gl");
        assert_eq!(backend_names(Backends::METAL), "metal");
        assert_eq!(backend_names(Backends::all()), "all");
        assert_eq!(backend_names(Backends::empty()), "none");
        let e = GpuError::NoAdapter { backends: backend_names(Backends::VULKAN | Backends::GL) };
        assert!(e.to_string().starts_with("no GPU adapter found for backends vulkan, gl "), "{e}");
    }

    fn described(name: &str, backend: Backend, device_type: DeviceType) -> ((), Described) {
        ((), Described { name: name.to_string(), backend, device_type })
    }

    /// As a driver might list them: a software rasteriser first, two identical GPUs, GL.
    fn listed() -> Vec<Described> {
        in_preference_order(vec![
            described("llvmpipe", Backend::Vulkan, DeviceType::Cpu),
            described("NVIDIA H100", Backend::Gl, DeviceType::DiscreteGpu),
            described("NVIDIA H100", Backend::Vulkan, DeviceType::DiscreteGpu),
            described("Intel UHD", Backend::Vulkan, DeviceType::IntegratedGpu),
            described("NVIDIA H100", Backend::Vulkan, DeviceType::DiscreteGpu),
        ])
        .into_iter()
        .map(|(_, d)| d)
        .collect()
    }

    #[test]
    fn adapters_are_ordered_by_preference_and_stably() {
        let lines: Vec<String> = listed().iter().enumerate().map(|(k, d)| d.line(k)).collect();
        assert_eq!(
            lines,
            [
                "0: NVIDIA H100 (Vulkan, DiscreteGpu)",
                "1: NVIDIA H100 (Vulkan, DiscreteGpu)",
                "2: NVIDIA H100 (Gl, DiscreteGpu)",
                "3: Intel UHD (Vulkan, IntegratedGpu)",
                "4: llvmpipe (Vulkan, Cpu)",
            ]
        );
        // Stable: the two identical Vulkan GPUs keep the driver's order (list positions 2, 4).
        let tagged = in_preference_order(vec![
            (2, Described { name: "NVIDIA H100".into(), backend: Backend::Vulkan, device_type: DeviceType::DiscreteGpu }),
            (4, Described { name: "NVIDIA H100".into(), backend: Backend::Vulkan, device_type: DeviceType::DiscreteGpu }),
        ]);
        assert_eq!(tagged.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn an_adapter_is_picked_by_index_or_name() {
        let ordered = listed();
        assert_eq!(pick(None, &ordered).unwrap(), 0);
        assert_eq!(pick(Some("1"), &ordered).unwrap(), 1);
        assert_eq!(pick(Some("#1"), &ordered).unwrap(), 1);
        assert_eq!(pick(Some(" #4 "), &ordered).unwrap(), 4);
        assert_eq!(pick(Some("intel"), &ordered).unwrap(), 3);
        assert_eq!(pick(Some("h100"), &ordered).unwrap(), 0);
        assert_eq!(pick(Some("LLVM"), &ordered).unwrap(), 4);

        let e = pick(Some("#5"), &ordered).unwrap_err();
        assert!(matches!(e, GpuError::NoAdapterAtIndex { index: 5, count: 5, .. }), "{e:?}");
        let message = e.to_string();
        assert!(message.starts_with("there is no GPU adapter 5: 5 found; available: 0: NVIDIA H100 (Vulkan, DiscreteGpu); 1: "), "{message}");
        assert!(message.ends_with("; 4: llvmpipe (Vulkan, Cpu)"), "{message}");
        assert!(matches!(pick(Some("99999999999999999999999"), &ordered), Err(GpuError::NoAdapterAtIndex { .. })));

        let e = pick(Some("radeon"), &ordered).unwrap_err();
        assert!(matches!(&e, GpuError::NoMatchingAdapter { filter, .. } if filter == "radeon"), "{e:?}");
        assert!(e.to_string().contains("available: 0: NVIDIA H100 (Vulkan, DiscreteGpu); "), "{e}");
        assert!(matches!(pick(Some("#x"), &ordered), Err(GpuError::BadSetting { name: "LIGHTHUBERT_ADAPTER", .. })));
    }
}
