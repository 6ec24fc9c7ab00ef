//! The chains' mean autocovariance at every lag, by FFT so that ESS stays O(n log n) in the
//! chain length.

use super::descriptive::mean;
use super::draws::Draws;

/// Autocovariance at lags 0..n, each chain about its own mean with the 1/n normalisation,
/// averaged over the chains (ArviZ's `np.mean(autocov(ary), axis=0)`).
///
/// Zero-padding to at least 2n makes the FFT's circular correlation equal the linear one. The
/// power spectra are summed before the single inverse transform, since averaging commutes with
/// it, and two real chains share each forward transform as its real and imaginary parts.
pub(super) fn mean_autocovariance(draws: &Draws) -> Vec<f64> {
    let n = draws.draws;
    let size = (2 * n).next_power_of_two();
    let fft = Fft::new(size);
    let mut power = vec![0.0; size];
    let mut buffer = vec![Complex::ZERO; size];
    for first in (0..draws.chains).step_by(2) {
        buffer.fill(Complex::ZERO);
        let a = draws.chain(first);
        let a_mean = mean(a);
        for (z, &x) in buffer.iter_mut().zip(a) {
            z.re = x - a_mean;
        }
        let paired = first + 1 < draws.chains;
        if paired {
            let b = draws.chain(first + 1);
            let b_mean = mean(b);
            for (z, &x) in buffer.iter_mut().zip(b) {
                z.im = x - b_mean;
            }
        }
        fft.forward(&mut buffer);
        if paired {
            // With z = a + ib for real a, b: |A_k|² + |B_k|² = (|Z_k|² + |Z_{N−k}|²) / 2.
            for (k, p) in power.iter_mut().enumerate() {
                *p += 0.5 * (buffer[k].norm_sqr() + buffer[(size - k) % size].norm_sqr());
            }
        } else {
            for (p, z) in power.iter_mut().zip(&buffer) {
                *p += z.norm_sqr();
            }
        }
    }
    // The summed spectrum is real and even, so its forward transform is `size` times its
    // inverse transform, and real.
    for (z, &p) in buffer.iter_mut().zip(&power) {
        *z = Complex { re: p, im: 0.0 };
    }
    fft.forward(&mut buffer);
    let scale = 1.0 / (size as f64 * n as f64 * draws.chains as f64);
    buffer[..n].iter().map(|z| z.re * scale).collect()
}

/// A complex number for the FFT.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const ZERO: Self = Self { re: 0.0, im: 0.0 };

    fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    fn mul(self, other: Self) -> Self {
        Self {
            re: self.re * other.re - self.im * other.im,
            im: self.re * other.im + self.im * other.re,
        }
    }
}

/// An in-place iterative radix-2 decimation-in-time FFT of one power-of-two size.
struct Fft {
    size: usize,
    /// e^(−2πik/size) for k < size/2, each computed directly rather than by recurrence so the
    /// rounding error does not accumulate.
    twiddles: Vec<Complex>,
}

impl Fft {
    fn new(size: usize) -> Self {
        debug_assert!(size.is_power_of_two());
        let twiddles = (0..size / 2)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 / size as f64;
                let (im, re) = angle.sin_cos();
                Complex { re, im }
            })
            .collect();
        Self { size, twiddles }
    }

    /// Replaces `buffer` (of length `size`) by its discrete Fourier transform
    /// X_k = Σ_t x_t e^(−2πikt/size).
    fn forward(&self, buffer: &mut [Complex]) {
        let size = self.size;
        if size < 2 {
            return;
        }
        let bits = size.trailing_zeros();
        for i in 0..size {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if i < j {
                buffer.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= size {
            let half = len / 2;
            let stride = size / len;
            for block in buffer.chunks_exact_mut(len) {
                let (lower, upper) = block.split_at_mut(half);
                for (k, (a, b)) in lower.iter_mut().zip(upper.iter_mut()).enumerate() {
                    let t = b.mul(self.twiddles[k * stride]);
                    *b = Complex {
                        re: a.re - t.re,
                        im: a.im - t.im,
                    };
                    *a = Complex {
                        re: a.re + t.re,
                        im: a.im + t.im,
                    };
                }
            }
            len *= 2;
        }
    }
}
