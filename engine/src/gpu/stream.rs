use super::pipelines::Kernel;
use super::{GpuContext, GpuError};

/// One dispatch waiting to be recorded: its parameters live at `params_offset` in the
/// stream's single uniform buffer.
struct Dispatch {
    kernel: Kernel,
    params_offset: u64,
    params_size: u64,
    buffers: Vec<(u32, wgpu::Buffer)>,
    workgroups: [u32; 3],
}

/// Collects a whole forward pass, then records it into one command buffer with one compute
/// pass and submits it once: no readback or submit between layers. All dispatch parameters go
/// up in a single small write, the only per-call data besides the input.
pub struct CommandStream<'a> {
    ctx: &'a GpuContext,
    params: Vec<u8>,
    dispatches: Vec<Dispatch>,
}

impl<'a> CommandStream<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        CommandStream { ctx, params: Vec::new(), dispatches: Vec::new() }
    }

    /// Queues `kernel` with a uniform at binding 0 and `buffers` at bindings 1, 2, ...
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
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
        kernel: Kernel,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) {
        let align = self.ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let offset = self.params.len().div_ceil(align) * align;
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        self.dispatches.push(Dispatch {
            kernel,
            params_offset: offset as u64,
            params_size: std::mem::size_of::<P>() as u64,
            buffers: buffers.iter().map(|(i, b)| (*i, (*b).clone())).collect(),
            workgroups,
        });
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

    /// Records and submits everything queued.
    pub fn submit(self) -> Result<wgpu::SubmissionIndex, GpuError> {
        let ctx = self.ctx;
        let device = &ctx.device;
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch params"),
            size: (self.params.len().max(16)) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&params, 0, &self.params);
        let mut bind_groups = Vec::with_capacity(self.dispatches.len());
        let mut pipelines = Vec::with_capacity(self.dispatches.len());
        for d in &self.dispatches {
            let pipeline = ctx.pipelines.get(device, d.kernel);
            let layout = pipeline.get_bind_group_layout(0);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params,
                    offset: d.params_offset,
                    size: std::num::NonZeroU64::new(d.params_size),
                }),
            }];
            for (binding, b) in &d.buffers {
                entries.push(wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() });
            }
            bind_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.kernel.entry_point()),
                layout: &layout,
                entries: &entries,
            }));
            pipelines.push(pipeline);
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            for ((d, bg), pipeline) in self.dispatches.iter().zip(&bind_groups).zip(&pipelines) {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bg, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        ctx.counters().count_submission();
        Ok(ctx.queue.submit([encoder.finish()]))
    }
}

