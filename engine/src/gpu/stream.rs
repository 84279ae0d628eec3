use std::time::Instant;

use super::{Kernel, ParamsBinding};
use super::profile::{DispatchTiming, Profile};
use super::{GpuContext, GpuError};

/// What a dispatch costs, for the profiler: floating-point operations and bytes of weights and
/// activations it reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

/// One dispatch waiting to be recorded.
struct Dispatch {
    kernel: &'static Kernel,
    label: String,
    cost: Cost,
    params: Params,
    buffers: Vec<(u32, wgpu::Buffer)>,
    workgroups: [u32; 3],
}

/// Where a dispatch's parameter block is.
enum Params {
    /// At `offset` in the stream's single uniform buffer.
    Uniform { offset: u64, size: u64 },
    /// At `range` of the stream's immediate bytes, set in the pass before the dispatch.
    Immediate(std::ops::Range<usize>),
}

/// Collects a whole forward pass, then records it into one command buffer with one compute
/// pass and submits it once: no readback or submit between layers. Dispatch parameters go in
/// the pass as immediates where the device has them, else up in a single small uniform write:
/// the only per-call data besides the input.
pub struct CommandStream<'a> {
    ctx: &'a GpuContext,
    uniforms: Vec<u8>,
    immediates: Vec<u8>,
    dispatches: Vec<Dispatch>,
    /// Buffer copies, each recorded before the dispatch at its index (after all earlier ones).
    copies: Vec<(usize, Copy)>,
    scope: String,
}

/// A buffer-to-buffer copy between dispatches (the pass is split around it).
struct Copy {
    src: wgpu::Buffer,
    src_offset: u64,
    dst: wgpu::Buffer,
    dst_offset: u64,
    size: u64,
}

/// Bound resources of the dispatches, ready to record.
struct Prepared {
    _uniforms: Option<wgpu::Buffer>,
    bind_groups: Vec<wgpu::BindGroup>,
    pipelines: Vec<wgpu::ComputePipeline>,
}

impl<'a> CommandStream<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        CommandStream { ctx, uniforms: Vec::new(), immediates: Vec::new(), dispatches: Vec::new(), copies: Vec::new(), scope: String::new() }
    }

    /// Names the dispatches queued from now on (`layer 3`, `conv 0`, ...), for profiles.
    pub fn scope(&mut self, label: impl Into<String>) {
        self.scope = label.into();
    }

    /// Queues `kernel` with its parameters (a uniform at binding 0, or immediates) and
    /// `buffers` at bindings 1, 2, ...
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: &'static Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        let numbered: Vec<(u32, &wgpu::Buffer)> =
            buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
        self.dispatch_bound(kernel, params, &numbered, workgroups);
    }

    /// Like [`dispatch`](Self::dispatch) with explicit binding numbers, for entry points that
    /// use only some of their module's bindings (pipeline layouts are derived per entry point).
    pub fn dispatch_bound<P: bytemuck::Pod>(
        &mut self,
        kernel: &'static Kernel,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) {
        debug_assert_eq!(std::mem::size_of::<P>(), kernel.params.size, "{} reads a {}", kernel.entry_point, kernel.params.name);
        let bytes = bytemuck::bytes_of(params);
        let params = match self.ctx.params_binding(kernel) {
            ParamsBinding::Uniform => {
                let align = self.ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
                let offset = self.uniforms.len().div_ceil(align) * align;
                self.uniforms.resize(offset, 0);
                self.uniforms.extend_from_slice(bytes);
                Params::Uniform { offset: offset as u64, size: bytes.len() as u64 }
            }
            ParamsBinding::Immediate => {
                let start = self.immediates.len();
                self.immediates.extend_from_slice(bytes);
                Params::Immediate(start..self.immediates.len())
            }
        };
        self.dispatches.push(Dispatch {
            kernel,
            label: self.scope.clone(),
            cost: Cost::default(),
            params,
            buffers: buffers.iter().map(|(i, b)| (*i, (*b).clone())).collect(),
            workgroups,
        });
    }

    /// Queues a copy of `values` f32 values from `src` at value `src_at` to `dst` at value
    /// `dst_at`, ordered after every dispatch queued so far and before every later one.
    pub fn copy_values(&mut self, src: &wgpu::Buffer, src_at: u64, dst: &wgpu::Buffer, dst_at: u64, values: u64) {
        if values == 0 {
            return;
        }
        self.copies.push((
            self.dispatches.len(),
            Copy { src: src.clone(), src_offset: src_at * 4, dst: dst.clone(), dst_offset: dst_at * 4, size: values * 4 },
        ));
    }

    /// Queues `bytes` to be written to the start of `dst` before the first dispatch. The data
    /// goes through a staging buffer of its own rather than `queue.write_buffer`, whose
    /// internal staging buffer loses the device when memory runs out; this one fails cleanly.
    pub fn upload(&mut self, dst: &wgpu::Buffer, bytes: &[u8]) -> Result<(), GpuError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let staging = self.ctx.staging_with(bytes)?;
        let size = staging.size();
        self.copies.push((0, Copy { src: staging, src_offset: 0, dst: dst.clone(), dst_offset: 0, size }));
        Ok(())
    }

    /// Encodes the copies queued before dispatch `i`.
    fn encode_copies_before(&self, encoder: &mut wgpu::CommandEncoder, i: usize) {
        for (_, c) in self.copies.iter().filter(|(at, _)| *at == i) {
            encoder.copy_buffer_to_buffer(&c.src, c.src_offset, &c.dst, c.dst_offset, c.size);
        }
    }

    fn has_copies_before(&self, i: usize) -> bool {
        self.copies.iter().any(|(at, _)| *at == i)
    }

    /// Records what the most recent dispatch costs (kernel wrappers call this).
    pub fn cost(&mut self, flops: f64, bytes: f64) {
        if let Some(d) = self.dispatches.last_mut() {
            d.cost = Cost { flops, bytes };
        }
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    pub fn context(&self) -> &GpuContext {
        self.ctx
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    fn prepare(&self) -> Prepared {
        let ctx = self.ctx;
        let device = &ctx.device;
        let uniforms = (!self.uniforms.is_empty()).then(|| {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dispatch params"),
                size: self.uniforms.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&buffer, 0, &self.uniforms);
            buffer
        });
        let mut bind_groups = Vec::with_capacity(self.dispatches.len());
        let mut pipelines = Vec::with_capacity(self.dispatches.len());
        for d in &self.dispatches {
            let pipeline = ctx.pipeline(d.kernel);
            let layout = pipeline.get_bind_group_layout(0);
            let mut entries = Vec::with_capacity(d.buffers.len() + 1);
            if let (Params::Uniform { offset, size }, Some(buffer)) = (&d.params, &uniforms) {
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: *offset,
                        size: std::num::NonZeroU64::new(*size),
                    }),
                });
            }
            for (binding, b) in &d.buffers {
                entries.push(wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() });
            }
            bind_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.kernel.entry_point),
                layout: &layout,
                entries: &entries,
            }));
            pipelines.push(pipeline);
        }
        Prepared { _uniforms: uniforms, bind_groups, pipelines }
    }

    /// Sets dispatch `i`'s pipeline, bindings and immediates in `pass` and dispatches it.
    fn encode_dispatch(&self, pass: &mut wgpu::ComputePass, prepared: &Prepared, i: usize) {
        let d = &self.dispatches[i];
        pass.set_pipeline(&prepared.pipelines[i]);
        pass.set_bind_group(0, &prepared.bind_groups[i], &[]);
        if let Params::Immediate(range) = &d.params {
            pass.set_immediates(0, &self.immediates[range.clone()]);
        }
        let [x, y, z] = d.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Records and submits everything queued, as one compute pass.
    pub fn submit(self) -> Result<wgpu::SubmissionIndex, GpuError> {
        let ctx = self.ctx;
        let prepared = self.prepare();
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        // One compute pass, split only where a copy has to run between dispatches.
        let mut i = 0;
        while i < self.dispatches.len() {
            self.encode_copies_before(&mut encoder, i);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            loop {
                self.encode_dispatch(&mut pass, &prepared, i);
                i += 1;
                if i == self.dispatches.len() || self.has_copies_before(i) {
                    break;
                }
            }
        }
        self.encode_copies_before(&mut encoder, self.dispatches.len());
        ctx.counters().count_submission();
        Ok(ctx.queue.submit([encoder.finish()]))
    }

    /// Runs everything queued and times each dispatch: with GPU timestamps around a compute
    /// pass per dispatch where the device has them, else by wall clock around one submit per
    /// dispatch. Slower than [`submit`](Self::submit); for profiling only.
    pub fn submit_profiled(self) -> Result<Profile, GpuError> {
        let ctx = self.ctx;
        let prepared = self.prepare();
        let start = Instant::now();
        let use_timestamps = ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let timings = if use_timestamps {
            self.time_with_timestamps(&prepared)?
        } else {
            self.time_with_wall_clock(&prepared)?
        };
        Ok(Profile { timings, gpu_timestamps: use_timestamps, wall_ms: start.elapsed().as_secs_f64() * 1e3 })
    }

    fn timing(&self, i: usize, start_ns: f64, duration_ns: f64) -> DispatchTiming {
        let d = &self.dispatches[i];
        DispatchTiming {
            kernel: d.kernel.entry_point,
            label: d.label.clone(),
            start_ns,
            duration_ns,
            flops: d.cost.flops,
            bytes: d.cost.bytes,
        }
    }

    fn time_with_timestamps(&self, prepared: &Prepared) -> Result<Vec<DispatchTiming>, GpuError> {
        let ctx = self.ctx;
        let device = &ctx.device;
        let mut timings = Vec::with_capacity(self.dispatches.len());
        // Query sets hold at most 4096 entries: two per dispatch, in chunks.
        const PER_CHUNK: usize = 2048;
        let period = ctx.queue.get_timestamp_period() as f64;
        let mut origin: Option<u64> = None;
        for chunk_start in (0..self.dispatches.len()).step_by(PER_CHUNK) {
            let chunk = chunk_start..(chunk_start + PER_CHUNK).min(self.dispatches.len());
            let queries = (chunk.len() * 2) as u32;
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: queries,
            });
            let bytes = queries as u64 * 8;
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            for (slot, i) in chunk.clone().enumerate() {
                self.encode_copies_before(&mut encoder, i);
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(self.dispatches[i].kernel.entry_point),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * slot as u32),
                        end_of_pass_write_index: Some(2 * slot as u32 + 1),
                    }),
                });
                self.encode_dispatch(&mut pass, prepared, i);
            }
            if chunk.end == self.dispatches.len() {
                self.encode_copies_before(&mut encoder, chunk.end);
            }
            encoder.resolve_query_set(&set, 0..queries, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
            ctx.queue.submit([encoder.finish()]);
            ctx.counters().count_submission();
            let ticks: Vec<u64> = map_u64(ctx, &readback)?;
            for (slot, i) in chunk.enumerate() {
                let (begin, end) = (ticks[2 * slot], ticks[2 * slot + 1]);
                let zero = *origin.get_or_insert(begin);
                let start_ns = begin.saturating_sub(zero) as f64 * period;
                timings.push(self.timing(i, start_ns, end.saturating_sub(begin) as f64 * period));
            }
        }
        Ok(timings)
    }

    fn time_with_wall_clock(&self, prepared: &Prepared) -> Result<Vec<DispatchTiming>, GpuError> {
        let ctx = self.ctx;
        let origin = Instant::now();
        let mut timings = Vec::with_capacity(self.dispatches.len());
        for i in 0..self.dispatches.len() {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            self.encode_copies_before(&mut encoder, i);
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.encode_dispatch(&mut pass, prepared, i);
            }
            if i + 1 == self.dispatches.len() {
                self.encode_copies_before(&mut encoder, i + 1);
            }
            let begin = Instant::now();
            ctx.queue.submit([encoder.finish()]);
            ctx.counters().count_submission();
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            let start_ns = (begin - origin).as_nanos() as f64;
            timings.push(self.timing(i, start_ns, begin.elapsed().as_nanos() as f64));
        }
        Ok(timings)
    }
}

fn map_u64(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Result<Vec<u64>, GpuError> {
    let slice = buffer.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
    rx.recv()
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let data = slice.get_mapped_range().map_err(|e| GpuError::Readback(e.to_string()))?;
    let values = bytemuck::cast_slice::<u8, u64>(&data).to_vec();
    drop(data);
    buffer.unmap();
    Ok(values)
}
