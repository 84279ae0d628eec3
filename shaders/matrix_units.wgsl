enable f16;
enable wgpu_cooperative_matrix;

// Prelude of the kernels that run on matrix units (NVIDIA's tensor cores through
// VK_KHR_cooperative_matrix): f16 values and wgpu's cooperative matrices. Must come first in
// the module: `enable` precedes every declaration.
