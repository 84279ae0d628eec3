// GELU in the exact erf form, x * Phi(x), as torch.nn.functional.gelu computes it.
// WGSL has no erf, so this file is a prelude of functions that kernels prepend.

// erf for f32, max error about 1 ulp (N. Juffa's minimax polynomials). Above |a| = 0.9277
// it goes through 1 - exp(r), which keeps the tail accurate where 1 + erf(x) gets small.
fn erf_f32(a: f32) -> f32 {
    let t = abs(a);
    let s = a * a;
    if (t > 0.927734375) {
        var r = fma(-1.72853470e-5, t, 3.83197126e-4);
        let u = fma(-3.88396438e-3, t, 2.42546219e-2);
        r = fma(r, s, u);
        r = fma(r, t, -1.06777877e-1);
        r = fma(r, t, -6.34846687e-1);
        r = fma(r, t, -1.28717512e-1);
        r = fma(r, t, -t);
        // exp underflows to 0 far out, giving exactly +-1 like the reference.
        return select(-1.0, 1.0, a >= 0.0) * (1.0 - exp(r));
    }
    var r = -5.96761703e-4;
    r = fma(r, s, 4.99119423e-3);
    r = fma(r, s, -2.67681349e-2);
    r = fma(r, s, 1.12819925e-1);
    r = fma(r, s, -3.76125336e-1);
    r = fma(r, s, 1.28379166e-1);
    return fma(r, a, a);
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}
