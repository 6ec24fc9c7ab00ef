//! Plain statistics of pooled draws (mean, standard deviation, median, quantiles), computed
//! exactly as numpy computes them so that the diagnostics built on them match ArviZ.

/// Mean of `xs`; NaN when `xs` is empty.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation of `xs` with the n − 1 denominator; NaN with fewer than 2 values.
pub fn sd(xs: &[f64]) -> f64 {
    variance(xs).sqrt()
}

/// The `p` quantile of `xs` by linear interpolation between order statistics: numpy's default
/// (`method="linear"`, R's type 7), i.e. position `(n − 1)·p` in the sorted values.
///
/// `xs` may be sorted or not: sorted input is used as it is, anything else is sorted into a
/// copy. NaN when `xs` is empty or holds a NaN, or `p` is outside `[0, 1]`.
pub fn quantile(sorted_or_unsorted: &[f64], p: f64) -> f64 {
    if sorted_or_unsorted.is_empty()
        || !(0.0..=1.0).contains(&p)
        || sorted_or_unsorted.iter().any(|x| x.is_nan())
    {
        return f64::NAN;
    }
    if sorted_or_unsorted.windows(2).all(|w| w[0] <= w[1]) {
        quantile_of_sorted(sorted_or_unsorted, p)
    } else {
        quantile_of_sorted(&sorted_copy(sorted_or_unsorted), p)
    }
}

/// Sample variance with the n − 1 denominator, two-pass like numpy; NaN with fewer than 2 values.
pub(super) fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Median as numpy computes it: the middle value, or the mean of the two middle values
/// computed as (a + b) / 2. That exact form matters: folding about it must make the two middle
/// values tie exactly, as they do in ArviZ. `xs` is non-empty and NaN-free.
pub(super) fn median(xs: &[f64]) -> f64 {
    let mut copy = xs.to_vec();
    let mid = copy.len() / 2;
    let (below, &mut upper, _) = copy.select_nth_unstable_by(mid, f64::total_cmp);
    if xs.len() % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// numpy's "linear" quantile of non-empty, NaN-free, ascending `sorted`.
pub(super) fn quantile_of_sorted(sorted: &[f64], p: f64) -> f64 {
    let last = sorted.len() - 1;
    let position = last as f64 * p;
    let below = position.floor();
    let gamma = position - below;
    let lo = (below as usize).min(last);
    let a = sorted[lo];
    if gamma == 0.0 {
        return a;
    }
    let b = sorted[(lo + 1).min(last)];
    // numpy's `_lerp`: interpolate from the nearer end so that the result stays monotone in p.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `xs` sorted ascending (NaN last).
pub(super) fn sorted_copy(xs: &[f64]) -> Vec<f64> {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
}
