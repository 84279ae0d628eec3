// Tile prelude of linear_shared.wgsl: a workgroup of 16 x 16 invocations owns a 64 x 64 block
// of the output, 4 x 4 per invocation.

const BLOCK: u32 = 64u;
const LANES: u32 = 16u;
