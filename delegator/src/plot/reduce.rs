//! Reducing hundreds of thousands of samples to what a picture can show: traces decimated to a
//! few thousand points, histograms and 2-D densities over all samples.

use std::ops::Range;

/// Every `stride`-th of `values` from the first, and the last, as `(index, value)`: at most
/// about `max_points` of them, with the stride the smallest that keeps within it.
///
/// A trace thinned this way still looks like a trace (a caterpillar for a mixing chain, a
/// staircase for a stuck one) where drawing a million steps in a thousand pixels fills a
/// solid block. Non-finite values are left out.
pub(crate) fn thin(values: &[f64], max_points: usize) -> (usize, Vec<(usize, f64)>) {
    let stride = values.len().div_ceil(max_points.max(2) - 1).max(1);
    let mut points: Vec<(usize, f64)> =
        values.iter().copied().enumerate().step_by(stride).collect();
    if let Some(last) = values.len().checked_sub(1) {
        if last % stride != 0 {
            points.push((last, values[last]));
        }
    }
    points.retain(|(_, x)| x.is_finite());
    (stride, points)
}

/// The pieces of the polyline through `points` that lie within `lo ≤ y ≤ hi`, each segment
/// cut where it crosses a bound: so a line that leaves the plotted range stops at its edge
/// instead of being drawn across the title or the next panel.
pub(crate) fn clip(points: &[(f64, f64)], (lo, hi): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let inside = |y: f64| (lo..=hi).contains(&y);
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    if let Some(&first) = points.first() {
        if inside(first.1) {
            current.push(first);
        }
    }
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        // The part of the segment between the bounds, as fractions of its length.
        let (mut from, mut to) = (0.0_f64, 1.0_f64);
        let dy = y1 - y0;
        for (bound, below) in [(lo, true), (hi, false)] {
            if dy == 0.0 {
                if (below && y0 < bound) || (!below && y0 > bound) {
                    (from, to) = (1.0, 0.0);
                }
                continue;
            }
            let t = (bound - y0) / dy;
            // Entering the allowed side moves `from` up; leaving it moves `to` down.
            if (dy > 0.0) == below {
                from = from.max(t);
            } else {
                to = to.min(t);
            }
        }
        if from > to {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            continue;
        }
        let at = |t: f64| (x0 + t * (x1 - x0), (y0 + t * dy).clamp(lo, hi));
        if from > 0.0 || current.is_empty() {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            current.push(at(from));
        }
        current.push(at(to));
        if to < 1.0 {
            pieces.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

/// The smallest and largest finite value in `columns`, widened to a non-empty interval when
/// they are equal (a dimension that never moved) and `(-1, 1)` when there is no finite value.
pub(crate) fn finite_range<'a>(columns: impl IntoIterator<Item = &'a [f64]>) -> (f64, f64) {
    let (lo, hi) = columns
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if lo > hi {
        (-1.0, 1.0)
    } else if lo == hi {
        let half = (lo.abs() * 1e-3).max(0.5);
        (lo - half, hi + half)
    } else {
        (lo, hi)
    }
}

/// `range` widened by `fraction` of its width on each side, for axes that should not clip.
pub(crate) fn pad(range: (f64, f64), fraction: f64) -> (f64, f64) {
    let margin = (range.1 - range.0) * fraction;
    (range.0 - margin, range.1 + margin)
}

/// Equal-width bins over `[lo, hi]`; the top edge belongs to the last bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bins {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Right edge of the last bin.
    pub hi: f64,
    /// Number of bins (at least 1).
    pub n: usize,
}

impl Bins {
    /// `n` bins (at least 1) spanning `range`, which must have `range.0 < range.1`.
    pub fn new(range: (f64, f64), n: usize) -> Bins {
        debug_assert!(range.0 < range.1, "empty range {range:?}");
        Bins {
            lo: range.0,
            hi: range.1,
            n: n.max(1),
        }
    }

    /// A number of bins for `n_samples`: about their square root, between `min` and `max`.
    pub fn count_for(n_samples: usize, min: usize, max: usize) -> usize {
        ((n_samples as f64).sqrt().round() as usize).clamp(min, max)
    }

    /// The bin holding `x`, or `None` outside `[lo, hi]` and for NaN.
    pub fn index(&self, x: f64) -> Option<usize> {
        if !(self.lo..=self.hi).contains(&x) {
            return None;
        }
        let position = (x - self.lo) / (self.hi - self.lo) * self.n as f64;
        Some((position as usize).min(self.n - 1))
    }

    /// The width of one bin.
    pub fn width(&self) -> f64 {
        (self.hi - self.lo) / self.n as f64
    }

    /// The left and right edges of bin `i`.
    pub fn edges(&self, i: usize) -> Range<f64> {
        self.lo + i as f64 * self.width()..self.lo + (i + 1) as f64 * self.width()
    }
}

/// Counts of samples per bin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// The bins counted into.
    pub bins: Bins,
    /// Samples per bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Counts every value of every column that falls into `bins`.
    pub fn new<'a>(bins: Bins, columns: impl IntoIterator<Item = &'a [f64]>) -> Histogram {
        let mut counts = vec![0; bins.n];
        for &x in columns.into_iter().flatten() {
            if let Some(i) = bins.index(x) {
                counts[i] += 1;
            }
        }
        Histogram { bins, counts }
    }

    /// Probability density in each bin: count / (total × bin width), so the bars' area is 1.
    pub fn densities(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().sum();
        let scale = 1.0 / (total.max(1) as f64 * self.bins.width());
        self.counts.iter().map(|&c| c as f64 * scale).collect()
    }
}

/// Counts of sample pairs per cell of a grid, for a 2-D density.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram2d {
    /// Bins along the horizontal axis.
    pub x: Bins,
    /// Bins along the vertical axis.
    pub y: Bins,
    /// Pairs per cell, row by row: `counts[iy * x.n + ix]`.
    pub counts: Vec<u64>,
}

impl Histogram2d {
    /// Counts the pairs `(xs[c][t], ys[c][t])` of each column pair `c` that fall in the grid.
    pub fn new<'a>(
        x: Bins,
        y: Bins,
        pairs: impl IntoIterator<Item = (&'a [f64], &'a [f64])>,
    ) -> Histogram2d {
        let mut counts = vec![0; x.n * y.n];
        for (xs, ys) in pairs {
            for (&a, &b) in xs.iter().zip(ys) {
                if let (Some(ix), Some(iy)) = (x.index(a), y.index(b)) {
                    counts[iy * x.n + ix] += 1;
                }
            }
        }
        Histogram2d { x, y, counts }
    }

    /// The fullest cell's count.
    pub fn max_count(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }

    /// Every non-empty cell as `(x edges, y edges, count)`.
    pub fn cells(&self) -> impl Iterator<Item = (Range<f64>, Range<f64>, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(i, &count)| {
                (
                    self.x.edges(i % self.x.n),
                    self.y.edges(i / self.x.n),
                    count,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_every_stride_th_step_and_the_last() {
        let values: Vec<f64> = (0..10_001).map(|i| i as f64).collect();
        let (stride, points) = thin(&values, 100);
        assert_eq!(stride, 102);
        assert!(points.len() <= 100, "{} points", points.len());
        assert_eq!(points.first(), Some(&(0, 0.0)));
        assert_eq!(points.last(), Some(&(10_000, 10_000.0)));
        assert!(points[..points.len() - 1]
            .iter()
            .all(|&(i, x)| i % 102 == 0 && x == i as f64));
        let short = [1.0, f64::NAN, 3.0];
        assert_eq!(thin(&short, 100), (1, vec![(0, 1.0), (2, 3.0)]));
        assert_eq!(thin(&[], 100), (1, vec![]));
    }

    #[test]
    fn clipping_cuts_a_line_where_it_leaves_the_range_and_resumes_where_it_returns() {
        let line = [
            (0.0, 0.0),
            (1.0, 4.0),
            (2.0, 0.0),
            (3.0, 0.5),
            (4.0, -8.0),
            (5.0, 1.0),
        ];
        let pieces = clip(&line, (-1.0, 1.0));
        let expected = vec![
            vec![(0.0, 0.0), (0.25, 1.0)],
            vec![(1.75, 1.0), (2.0, 0.0), (3.0, 0.5), (3.0 + 1.5 / 8.5, -1.0)],
            vec![(4.0 + 7.0 / 9.0, -1.0), (5.0, 1.0)],
        ];
        assert_eq!(pieces.len(), expected.len(), "{pieces:?}");
        for (piece, want) in pieces.iter().zip(&expected) {
            assert_eq!(piece.len(), want.len(), "{pieces:?}");
            for (a, b) in piece.iter().zip(want) {
                assert!(
                    (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12,
                    "{pieces:?}"
                );
            }
        }
        // A line wholly outside draws nothing; a line wholly inside is kept as it is.
        assert!(clip(&[(0.0, 5.0), (1.0, 6.0)], (-1.0, 1.0)).is_empty());
        assert_eq!(
            clip(&[(0.0, 0.5), (1.0, -0.5)], (-1.0, 1.0)),
            vec![vec![(0.0, 0.5), (1.0, -0.5)]]
        );
        // A segment that crosses the whole range keeps its middle.
        let across = clip(&[(0.0, -3.0), (1.0, 3.0)], (-1.0, 1.0));
        assert_eq!(across.len(), 1);
        assert!((across[0][0].0 - 1.0 / 3.0).abs() < 1e-12 && across[0][0].1 == -1.0);
        assert!((across[0][1].0 - 2.0 / 3.0).abs() < 1e-12 && across[0][1].1 == 1.0);
    }

    #[test]
    fn ranges_skip_non_finite_values_and_never_collapse() {
        let a = [3.0, f64::NAN, -2.0];
        let b = [f64::NEG_INFINITY, 7.5];
        assert_eq!(finite_range([&a[..], &b[..]]), (-2.0, 7.5));
        assert_eq!(finite_range([&[4.0, 4.0][..]]), (3.5, 4.5));
        let (lo, hi) = finite_range([&[1e6][..]]);
        assert!(lo < 1e6 && hi > 1e6 && hi - lo == 2e3, "{lo} {hi}");
        assert_eq!(finite_range([&[f64::NAN][..]]), (-1.0, 1.0));
        assert_eq!(finite_range(std::iter::empty()), (-1.0, 1.0));
    }

    #[test]
    fn bins_put_the_top_edge_in_the_last_bin_and_drop_what_is_outside() {
        let bins = Bins::new((0.0, 10.0), 4);
        assert_eq!(bins.index(0.0), Some(0));
        assert_eq!(bins.index(2.49), Some(0));
        assert_eq!(bins.index(2.5), Some(1));
        assert_eq!(bins.index(9.99), Some(3));
        assert_eq!(bins.index(10.0), Some(3));
        assert_eq!(bins.index(10.01), None);
        assert_eq!(bins.index(-0.01), None);
        assert_eq!(bins.index(f64::NAN), None);
        assert_eq!(bins.edges(1), 2.5..5.0);
    }

    #[test]
    fn histograms_count_every_sample_and_their_densities_integrate_to_one() {
        let a = [0.0, 0.1, 0.2, 0.9, 1.0];
        let b = [0.5, 0.55, f64::NAN];
        let histogram = Histogram::new(Bins::new((0.0, 1.0), 2), [&a[..], &b[..]]);
        assert_eq!(histogram.counts, vec![3, 4]);
        let area: f64 = histogram
            .densities()
            .iter()
            .map(|d| d * histogram.bins.width())
            .sum();
        assert!((area - 1.0).abs() < 1e-12, "{area}");
    }

    #[test]
    fn the_bin_count_follows_the_square_root_within_bounds() {
        assert_eq!(Bins::count_for(0, 10, 60), 10);
        assert_eq!(Bins::count_for(900, 10, 60), 30);
        assert_eq!(Bins::count_for(1_000_000, 10, 60), 60);
    }

    #[test]
    fn a_2d_histogram_counts_pairs_in_their_cells() {
        let xs = [0.1, 0.9, 0.9, 0.6, 5.0];
        let ys = [0.1, 0.1, 0.8, 0.8, 0.5];
        let grid = Histogram2d::new(
            Bins::new((0.0, 1.0), 2),
            Bins::new((0.0, 1.0), 2),
            [(&xs[..], &ys[..])],
        );
        // Rows are y: (0,0) (1,0) / (0,1) (1,1); the pair with x = 5 is outside.
        assert_eq!(grid.counts, vec![1, 1, 0, 2]);
        assert_eq!(grid.max_count(), 2);
        let cells: Vec<_> = grid.cells().collect();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[2], (0.5..1.0, 0.5..1.0, 2));
    }
}
