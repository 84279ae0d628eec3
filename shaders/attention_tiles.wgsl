// Prelude of the flash attention forms (attention_flash.wgsl, attention_flash_subgroup.wgsl),
// composed after attention.wgsl: the key and value tiles their 64 invocations stage in
// workgroup memory, 16 keys at a time, for all the workgroup's queries to read.

const KEYS_PER_TILE: u32 = 16u;
const TILE_VECS: u32 = 256u; // KEYS_PER_TILE * VEC_PER_HEAD
const TILE_STAGERS: u32 = 64u;

var<workgroup> k_tile: array<vec4<f32>, TILE_VECS>;
var<workgroup> v_tile: array<vec4<f32>, TILE_VECS>;

// Invocation `lid` of 64 stages 4 vec4 of the keys and of the values of keys s0 .. s0 + 16 of
// utterance b, head `head_off`. Past the last key (`keys`), the tile repeats it: finite values
// that the forms mask or skip. The caller puts the barrier after.
fn stage_kv_tile(lid: u32, b: u32, head_off: u32, s0: u32, keys: u32) {
    let k_off = key_offset();
    for (var i = lid; i < TILE_VECS; i += TILE_STAGERS) {
        let s = s0 + i / VEC_PER_HEAD;
        let src = q_at(b * p.frames + min(s, keys - 1u), head_off) + k_off + i % VEC_PER_HEAD;
        k_tile[i] = k[src];
        v_tile[i] = v[src + k_off];
    }
}
