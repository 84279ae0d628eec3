//! Activation buffers kept across forward passes. A forward takes its buffers from an
//! [`Arena`]; when the arena is dropped (after the results are read back) they return to the
//! device's pool, and the next forward of a similar shape allocates nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{CommandStream, GpuContext, GpuError};

/// Pooled buffers beyond this many bytes are freed, the largest first.
const MAX_POOLED_BYTES: u64 = 1 << 30;

/// Free activation buffers of one device.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<wgpu::Buffer>>,
    /// How many times the pool has been released: an arena alive across a release (a forward
    /// that ran out of memory) frees its buffers instead of pooling them.
    releases: AtomicU64,
}

impl BufferPool {
    /// The smallest free buffer of at least `bytes`, if one is no more than twice that size
    /// (a larger one would hold memory a later, larger request could use).
    fn take(&self, bytes: u64) -> Option<wgpu::Buffer> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.size() >= bytes && b.size() <= bytes.saturating_mul(2))
            .min_by_key(|(_, b)| b.size())
            .map(|(i, _)| i)?;
        Some(free.swap_remove(best))
    }

    fn give_back(&self, buffers: Vec<wgpu::Buffer>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.extend(buffers);
        free.sort_by_key(|b| b.size());
        let mut total: u64 = free.iter().map(|b| b.size()).sum();
        while total > MAX_POOLED_BYTES {
            match free.pop() {
                Some(b) => total -= b.size(),
                None => break,
            }
        }
    }

    pub(crate) fn pooled_bytes(&self) -> u64 {
        self.free.lock().map(|f| f.iter().map(|b| b.size()).sum()).unwrap_or(0)
    }

    pub(crate) fn clear(&self) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The activation buffers of one forward pass. Keep it alive until every result has been
/// read back: dropping it hands the buffers to the next forward.
pub struct Arena<'a> {
    ctx: &'a GpuContext,
    taken: Mutex<Vec<wgpu::Buffer>>,
    releases_at_start: u64,
}

impl<'a> Arena<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        Arena { ctx, taken: Mutex::new(Vec::new()), releases_at_start: ctx.pool.releases.load(Ordering::Relaxed) }
    }

    fn keep(&self, buffer: &wgpu::Buffer) {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).push(buffer.clone());
    }

    /// A storage buffer for at least `len` f32 values; its contents are undefined.
    pub fn activation(&self, label: &str, len: usize) -> Result<wgpu::Buffer, GpuError> {
        let bytes = GpuContext::activation_bytes(len);
        let buffer = match self.ctx.pool.take(bytes) {
            Some(b) => {
                self.ctx.counters().activation_buffers_reused.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => self.ctx.activation(label, len)?,
        };
        self.keep(&buffer);
        Ok(buffer)
    }

    /// An activation buffer whose first values are `values`, uploaded at the start of `s`.
    pub fn activation_from(&self, s: &mut CommandStream, label: &str, values: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.activation(label, values.len())?;
        s.upload(&buffer, bytemuck::cast_slice(values))?;
        Ok(buffer)
    }

    /// A buffer whose first values are the u32 `values` (lengths, indices).
    pub fn u32_buffer(&self, s: &mut CommandStream, label: &str, values: &[u32]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.activation(label, values.len())?;
        s.upload(&buffer, bytemuck::cast_slice(values))?;
        Ok(buffer)
    }
}

impl Drop for Arena<'_> {
    fn drop(&mut self) {
        let taken = std::mem::take(self.taken.get_mut().unwrap_or_else(|p| p.into_inner()));
        if self.ctx.pool.releases.load(Ordering::Relaxed) == self.releases_at_start {
            self.ctx.pool.give_back(taken);
        }
    }
}
