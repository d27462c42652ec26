//! The inverse DCT blurgate runs itself, on coefficients libjpeg has read: a preview for the
//! detector costs no second pass over the compressed data.

use std::f32::consts::{FRAC_1_SQRT_2, PI};

/// The inverse DCT onto `N` x `N` samples (1..=8) from the lowest N x N coefficients: the
/// block's continuous reconstruction at the centres of N x N equal cells, which for N < 8 is
/// libjpeg's reduced-size IDCT (higher frequencies dropped, not aliased). `N` is a constant so
/// that every loop unrolls: a preview runs this on every block of the photo.
pub(crate) struct Inverse<const N: usize> {
    basis: [[f32; N]; N],
}

impl<const N: usize> Inverse<N> {
    pub(crate) fn new() -> Self {
        let mut basis = [[0f32; N]; N];
        for (x, row) in basis.iter_mut().enumerate() {
            for (u, b) in row.iter_mut().enumerate() {
                let c = if u == 0 { FRAC_1_SQRT_2 } else { 1.0 };
                *b = c / 2.0 * (((2 * x + 1) * u) as f32 * PI / (2 * N) as f32).cos();
            }
        }
        Inverse { basis }
    }

    /// Reconstructs one block (64 quantised coefficients in natural order, `quant` its table
    /// as f32) into `out` from its start, rows `stride` apart, level-shifted and clamped.
    pub(crate) fn block(&self, block: &[i16], quant: &[f32; 64], out: &mut [u8], stride: usize) {
        // Horizontal pass over the coefficient rows that hold anything (most high rows are zero).
        let mut rows = [[0f32; N]; N];
        let mut live = [false; N];
        for v in 0..N {
            let coefs = &block[v * 8..][..N];
            if coefs.iter().all(|&c| c == 0) {
                continue;
            }
            live[v] = true;
            let deq: [f32; N] = std::array::from_fn(|u| f32::from(coefs[u]) * quant[v * 8 + u]);
            for (r, basis) in rows[v].iter_mut().zip(&self.basis) {
                *r = basis.iter().zip(&deq).map(|(b, d)| b * d).sum();
            }
        }
        for (y, basis) in self.basis.iter().enumerate() {
            let mut acc = [128f32; N];
            for v in (0..N).filter(|&v| live[v]) {
                for (a, r) in acc.iter_mut().zip(&rows[v]) {
                    *a += basis[v] * r;
                }
            }
            for (o, a) in out[y * stride..][..N].iter_mut().zip(acc) {
                // The cast saturates: clamping to 0..=255 included.
                *o = (a + 0.5) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-point inverse DCT by its definition (JPEG, ITU T.81 A.3.3).
    fn reference(coefs: &[f32; 64]) -> [f32; 64] {
        let c = |u: usize| if u == 0 { FRAC_1_SQRT_2 } else { 1.0 };
        let mut out = [0f32; 64];
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 0.0;
                for v in 0..8 {
                    for u in 0..8 {
                        s += c(u) * c(v) * coefs[v * 8 + u]
                            * (((2 * x + 1) * u) as f32 * PI / 16.0).cos()
                            * (((2 * y + 1) * v) as f32 * PI / 16.0).cos();
                    }
                }
                out[y * 8 + x] = s / 4.0 + 128.0;
            }
        }
        out
    }

    #[test]
    fn full_size_matches_the_definition_and_reduced_sizes_keep_the_mean() {
        let mut block = [0i16; 64];
        let mut state = 7u32;
        for (i, b) in block.iter_mut().enumerate() {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Larger low frequencies, as in photos; small enough that nothing clamps.
            *b = ((state >> 16) % 41) as i16 - 20;
            if i >= 16 {
                *b /= 4;
            }
        }
        block[0] = 40;
        let quant = [1f32; 64];
        let deq: [f32; 64] = std::array::from_fn(|i| f32::from(block[i]));
        let want = reference(&deq);
        let mut got = [0u8; 64];
        Inverse::<8>::new().block(&block, &quant, &mut got, 8);
        for (g, w) in got.iter().zip(want) {
            assert!((f32::from(*g) - w).abs() <= 0.5 + 1e-3, "{g} vs {w}");
        }
        // Every reduced size averages to the block's mean, as its DC says: 128 + DC / 8.
        let mean = 128.0 + deq[0] / 8.0;
        let avg = |out: &[u8]| out.iter().map(|&v| f32::from(v)).sum::<f32>() / out.len() as f32;
        let mut out = [0u8; 1];
        Inverse::<1>::new().block(&block, &quant, &mut out, 1);
        assert!((avg(&out) - mean).abs() < 1.0);
        let mut out = [0u8; 9];
        Inverse::<3>::new().block(&block, &quant, &mut out, 3);
        assert!((avg(&out) - mean).abs() < 1.0);
        let mut out = [0u8; 36];
        Inverse::<6>::new().block(&block, &quant, &mut out, 6);
        assert!((avg(&out) - mean).abs() < 1.0);
    }
}
