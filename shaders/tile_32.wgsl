// Tile prelude of linear_shared.wgsl: a workgroup of 8 x 8 invocations owns a 32 x 32 block
// of the output, 4 x 4 per invocation: four times the workgroups of tile_64.wgsl, for outputs
// too small to fill a GPU with 64 x 64 blocks (the projections of a short utterance).

const BLOCK: u32 = 32u;
const LANES: u32 = 8u;
