//! A constant-velocity Kalman filter over a face box (centre, width, height and their speeds),
//! as in SORT and ByteTrack; noise scales with the box's height so small and large faces
//! are followed alike.

use crate::detect::FaceBox;

const N: usize = 8;
const M: usize = 4;
/// Position and speed noise per pixel of box height (ByteTrack's weights).
const POSITION_NOISE: f32 = 1.0 / 20.0;
const SPEED_NOISE: f32 = 1.0 / 160.0;

type Matrix = [[f32; N]; N];

/// State `[cx, cy, w, h, vx, vy, vw, vh]` per frame, and its covariance.
#[derive(Debug, Clone)]
pub struct Kalman {
    x: [f32; N],
    p: Matrix,
}

impl Kalman {
    /// A filter at `b`, standing still, unsure of its speed.
    pub fn new(b: &FaceBox) -> Kalman {
        let z = measure(b);
        let mut x = [0.0; N];
        x[..M].copy_from_slice(&z);
        let h = z[3].max(1.0);
        let mut p = [[0.0; N]; N];
        for i in 0..M {
            p[i][i] = (2.0 * POSITION_NOISE * h).powi(2);
            p[i + M][i + M] = (10.0 * SPEED_NOISE * h).powi(2);
        }
        Kalman { x, p }
    }

    /// The box where the filter stands.
    pub fn state(&self) -> FaceBox {
        let [cx, cy, w, h, ..] = self.x;
        FaceBox { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 }
    }

    /// Moves the state `frames` frames ahead.
    pub fn predict(&mut self, frames: f32) {
        for i in 0..M {
            self.x[i] += self.x[i + M] * frames;
        }
        self.x[2] = self.x[2].max(1.0);
        self.x[3] = self.x[3].max(1.0);
        // P = F P Fᵀ + Q with F = [[I, dt·I], [0, I]].
        let mut f = identity();
        for (i, row) in f.iter_mut().enumerate().take(M) {
            row[i + M] = frames;
        }
        let mut p = mul(&mul(&f, &self.p), &transpose(&f));
        let h = self.x[3];
        for i in 0..M {
            p[i][i] += (POSITION_NOISE * h).powi(2) * frames;
            p[i + M][i + M] += (SPEED_NOISE * h).powi(2) * frames;
        }
        self.p = p;
    }

    /// Corrects the state with a detected box.
    pub fn update(&mut self, b: &FaceBox) {
        let z = measure(b);
        let r = (POSITION_NOISE * self.x[3]).powi(2);
        // S = H P Hᵀ + R is P's top-left block plus R; K = P Hᵀ S⁻¹.
        let s: [[f32; M]; M] =
            std::array::from_fn(|i| std::array::from_fn(|j| self.p[i][j] + if i == j { r } else { 0.0 }));
        let Some(si) = invert4(&s) else { return };
        let mut k = [[0.0f32; M]; N];
        for (i, row) in k.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..M).map(|l| self.p[i][l] * si[l][j]).sum();
            }
        }
        let y: Vec<f32> = (0..M).map(|i| z[i] - self.x[i]).collect();
        for (i, row) in k.iter().enumerate() {
            self.x[i] += (0..M).map(|j| row[j] * y[j]).sum::<f32>();
        }
        // P = (I - K H) P.
        let mut p = self.p;
        for (i, row) in p.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v -= (0..M).map(|l| k[i][l] * self.p[l][j]).sum::<f32>();
            }
        }
        self.p = p;
    }
}

fn measure(b: &FaceBox) -> [f32; M] {
    [(b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0, b.width().max(1.0), b.height().max(1.0)]
}

fn identity() -> Matrix {
    let mut m = [[0.0; N]; N];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    m
}

fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..N).map(|k| a[i][k] * b[k][j]).sum()))
}

fn transpose(a: &Matrix) -> Matrix {
    std::array::from_fn(|i| std::array::from_fn(|j| a[j][i]))
}

/// Gauss-Jordan inverse with partial pivoting; `None` when singular.
fn invert4(a: &[[f32; M]; M]) -> Option<[[f32; M]; M]> {
    // [A | I], reduced to [I | A⁻¹].
    let mut m: [[f64; 2 * M]; M] = std::array::from_fn(|i| {
        std::array::from_fn(|j| if j < M { a[i][j] as f64 } else { (j - M == i) as u8 as f64 })
    });
    for c in 0..M {
        let pivot = (c..M).max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))?;
        if m[pivot][c].abs() < 1e-12 {
            return None;
        }
        m.swap(c, pivot);
        let d = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= d);
        for r in (0..M).filter(|&r| r != c) {
            let f = m[r][c];
            let pivot_row = m[c];
            m[r].iter_mut().zip(pivot_row).for_each(|(v, p)| *v -= f * p);
        }
    }
    Some(std::array::from_fn(|i| std::array::from_fn(|j| m[i][M + j] as f32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: f32, y: f32) -> FaceBox {
        FaceBox { x1: x, y1: y, x2: x + 40.0, y2: y + 50.0 }
    }

    #[test]
    fn learns_a_steady_motion_and_predicts_it() {
        let mut k = Kalman::new(&at(100.0, 50.0));
        for t in 1..=15 {
            k.predict(1.0);
            k.update(&at(100.0 + 6.0 * t as f32, 50.0 - 2.0 * t as f32));
        }
        k.predict(3.0);
        let p = k.state();
        let truth = at(100.0 + 6.0 * 18.0, 50.0 - 2.0 * 18.0);
        assert!((p.x1 - truth.x1).abs() < 2.0 && (p.y1 - truth.y1).abs() < 2.0, "{p:?} vs {truth:?}");
        assert!((p.width() - 40.0).abs() < 1.0 && (p.height() - 50.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn inverts_a_symmetric_matrix() {
        let a = [[4.0, 1.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.5], [0.0, 0.0, 2.0, 0.0], [0.0, 0.5, 0.0, 1.0]];
        let inv = invert4(&a).unwrap();
        for (i, row) in a.iter().enumerate() {
            for j in 0..M {
                let v: f32 = row.iter().zip(&inv).map(|(x, r)| x * r[j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{i},{j}: {v}");
            }
        }
        assert!(invert4(&[[0.0; M]; M]).is_none());
    }
}
