//! Density contours for the pair plot: a 2-D histogram smoothed, the levels that enclose given
//! shares of its mass, and the lines at those levels by marching squares.

use super::reduce::Histogram2d;

/// Shares of the mass the pair plot's contours enclose: those that 1 and 2 standard deviations
/// enclose for a 2-D normal, 1 − e^(−k²/2), as corner.py draws them.
pub(crate) const CONTOUR_MASSES: [f64; 2] = [0.393_469_340_287_366_6, 0.864_664_716_763_387_3];

/// A grid of values at the centres of a 2-D histogram's cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grid {
    /// Cell centres along x, increasing.
    pub xs: Vec<f64>,
    /// Cell centres along y, increasing.
    pub ys: Vec<f64>,
    /// Values row by row: `values[iy * xs.len() + ix]`.
    pub values: Vec<f64>,
}

impl Grid {
    /// The counts of `histogram` smoothed by a 3 × 3 binomial kernel (weights 1 2 1 by 1 2 1),
    /// enough to keep the contours of a few thousand draws from tracing single cells.
    pub fn smoothed(histogram: &Histogram2d) -> Grid {
        let (nx, ny) = (histogram.x.n, histogram.y.n);
        let at = |ix: isize, iy: isize| -> f64 {
            if ix < 0 || iy < 0 || ix >= nx as isize || iy >= ny as isize {
                0.0
            } else {
                histogram.counts[iy as usize * nx + ix as usize] as f64
            }
        };
        let mut values = Vec::with_capacity(nx * ny);
        for iy in 0..ny as isize {
            for ix in 0..nx as isize {
                let mut sum = 0.0;
                for (dy, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    for (dx, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                        sum += wx * wy * at(ix + dx, iy + dy);
                    }
                }
                values.push(sum / 16.0);
            }
        }
        let centre = |bins: super::reduce::Bins| -> Vec<f64> {
            (0..bins.n)
                .map(|i| {
                    let edges = bins.edges(i);
                    (edges.start + edges.end) / 2.0
                })
                .collect()
        };
        Grid {
            xs: centre(histogram.x),
            ys: centre(histogram.y),
            values,
        }
    }

    /// The value above which the grid's cells hold `mass` of its total: the contour at this
    /// level encloses the highest-density region of that mass. `None` for an empty grid.
    pub fn level_enclosing(&self, mass: f64) -> Option<f64> {
        let mut sorted: Vec<f64> = self.values.iter().copied().filter(|&v| v > 0.0).collect();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        let total: f64 = sorted.iter().sum();
        let mut cumulative = 0.0;
        for &value in &sorted {
            cumulative += value;
            if cumulative >= mass * total {
                return Some(value);
            }
        }
        sorted.last().copied()
    }

    /// The contour line at `level`, as segments between points where the grid, linearly
    /// interpolated along each cell edge, equals it (marching squares). A saddle cell is
    /// resolved by its centre's value, the mean of its corners.
    pub fn contour(&self, level: f64) -> Vec<[(f64, f64); 2]> {
        let (nx, ny) = (self.xs.len(), self.ys.len());
        let value = |ix: usize, iy: usize| self.values[iy * nx + ix];
        let mut segments = Vec::new();
        for iy in 0..ny.saturating_sub(1) {
            for ix in 0..nx.saturating_sub(1) {
                // Corners counter-clockwise from the lower left.
                let corners = [(ix, iy), (ix + 1, iy), (ix + 1, iy + 1), (ix, iy + 1)];
                let v = corners.map(|(x, y)| value(x, y));
                let above = v.map(|v| v >= level);
                // Where the level crosses edge k (from corner k to corner k + 1).
                let crossing = |k: usize| {
                    let (a, b) = (k, (k + 1) % 4);
                    let t = (level - v[a]) / (v[b] - v[a]);
                    let (xa, ya) = (self.xs[corners[a].0], self.ys[corners[a].1]);
                    let (xb, yb) = (self.xs[corners[b].0], self.ys[corners[b].1]);
                    (xa + t * (xb - xa), ya + t * (yb - ya))
                };
                let crossed: Vec<usize> =
                    (0..4).filter(|&k| above[k] != above[(k + 1) % 4]).collect();
                match crossed.as_slice() {
                    [a, b] => segments.push([crossing(*a), crossing(*b)]),
                    [e0, e1, e2, e3] => {
                        // A saddle: corners 0 and 2 on one side, 1 and 3 on the other. If the
                        // centre is on corner 0's side, the lines cut off corners 1 and 3.
                        let centre_above = v.iter().sum::<f64>() / 4.0 >= level;
                        if centre_above == above[0] {
                            segments.push([crossing(*e0), crossing(*e1)]);
                            segments.push([crossing(*e2), crossing(*e3)]);
                        } else {
                            segments.push([crossing(*e3), crossing(*e0)]);
                            segments.push([crossing(*e1), crossing(*e2)]);
                        }
                    }
                    _ => {}
                }
            }
        }
        segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid of exp(−r²/2) on [−4, 4]² at `n` points a side.
    fn gaussian(n: usize) -> Grid {
        let axis: Vec<f64> = (0..n)
            .map(|i| -4.0 + 8.0 * i as f64 / (n - 1) as f64)
            .collect();
        let values = axis
            .iter()
            .flat_map(|&y| axis.iter().map(move |&x| (-(x * x + y * y) / 2.0).exp()))
            .collect();
        Grid {
            xs: axis.clone(),
            ys: axis,
            values,
        }
    }

    #[test]
    fn a_gaussian_contour_is_the_circle_of_its_level() {
        let grid = gaussian(81);
        // exp(−r²/2) = exp(−1/2) on the unit circle.
        let segments = grid.contour((-0.5_f64).exp());
        assert!(segments.len() > 40, "{} segments", segments.len());
        for point in segments.iter().flatten() {
            let r = (point.0 * point.0 + point.1 * point.1).sqrt();
            // Linear interpolation across a cell of side 0.1 errs by well under its size.
            assert!((r - 1.0).abs() < 0.01, "{point:?} at radius {r}");
        }
        // A closed curve: every end point is shared by exactly two segments.
        let mut ends: Vec<(i64, i64)> = segments
            .iter()
            .flatten()
            .map(|p| ((p.0 * 1e9).round() as i64, (p.1 * 1e9).round() as i64))
            .collect();
        ends.sort_unstable();
        for pair in ends.chunks(2) {
            assert_eq!(pair[0], pair[1], "an open end");
        }
    }

    #[test]
    fn the_level_enclosing_a_mass_is_that_of_the_normals_circle() {
        // The share of a 2-D standard normal inside radius k is 1 − exp(−k²/2), so the levels
        // enclosing CONTOUR_MASSES are those of the circles of radius 1 and 2.
        let grid = gaussian(161);
        for (mass, radius) in CONTOUR_MASSES.iter().zip([1.0_f64, 2.0]) {
            let level = grid.level_enclosing(*mass).unwrap();
            let expected = (-radius * radius / 2.0).exp();
            assert!(
                (level / expected - 1.0).abs() < 0.02,
                "{mass}: level {level}, expected {expected}"
            );
        }
        let empty = Grid {
            xs: vec![0.0],
            ys: vec![0.0],
            values: vec![0.0],
        };
        assert_eq!(empty.level_enclosing(0.5), None);
    }

    #[test]
    fn a_saddle_is_resolved_by_its_centre() {
        // Corners 0 and 2 high, 1 and 3 low; the centre (mean 0.5) sits above 0.4, on the high
        // corners' side, so the lines cut off the low corners 1 and 3.
        let grid = Grid {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
            values: vec![1.0, 0.0, 0.0, 1.0],
        };
        let segments = grid.contour(0.4);
        assert_eq!(segments.len(), 2);
        let cuts_off = |corner: (f64, f64)| {
            segments.iter().any(|s| {
                s.iter()
                    .all(|p| (p.0 - corner.0).abs() <= 0.6 && (p.1 - corner.1).abs() <= 0.6)
            })
        };
        assert!(cuts_off((1.0, 0.0)) && cuts_off((0.0, 1.0)), "{segments:?}");
    }

    #[test]
    fn smoothing_keeps_the_mass_inside_and_spreads_a_spike() {
        use super::super::reduce::{Bins, Histogram2d};
        let xs = [0.5];
        let ys = [0.5];
        let histogram = Histogram2d::new(
            Bins::new((0.0, 1.0), 5),
            Bins::new((0.0, 1.0), 5),
            [(&xs[..], &ys[..])],
        );
        let grid = Grid::smoothed(&histogram);
        assert_eq!(grid.values[2 * 5 + 2], 0.25);
        assert_eq!(grid.values[2 * 5 + 1], 0.125);
        assert_eq!(grid.values[5 + 1], 0.0625);
        assert!((grid.values.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for (centre, expected) in grid.xs.iter().zip([0.1, 0.3, 0.5, 0.7, 0.9]) {
            assert!((centre - expected).abs() < 1e-12, "{:?}", grid.xs);
        }
    }
}
