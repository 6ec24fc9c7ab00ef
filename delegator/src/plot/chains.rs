//! The figures that compare the cold chains with one another, a panel per dimension and a line
//! per chain: rank plots and autocorrelation.

use ganger_core::mcmc::diagnostics::autocorrelation;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::ColdChains;
use super::figure::{
    chain_colour, chain_legend, panel as panel_chart, titled, DrawResult, Figure, LegendEntry,
    TITLE_HEIGHT,
};

/// Size of one dimension's panel, pixels.
const PANEL: (u32, u32) = (440, 280);
/// Lags of the autocorrelation panels, at most (ArviZ's default).
const MAX_LAG: usize = 100;
/// Rank bins, at most.
const RANK_BINS: usize = 20;
const BAND_COLOUR: RGBColor = RGBColor(230, 230, 230);

/// A panel per dimension, a line per chain, a reference line and the band around it that
/// chains which agree stay in.
pub(crate) struct ChainLines {
    name: &'static str,
    title: String,
    legend: Vec<LegendEntry>,
    x_desc: &'static str,
    y_desc: &'static str,
    panels: Vec<Panel>,
}

/// One dimension's lines.
struct Panel {
    dimension: String,
    x_range: (f64, f64),
    y_range: (f64, f64),
    /// The value every line would show for ideal chains, and the band about it that sampling
    /// noise alone keeps them in about 95 % of the time.
    reference: f64,
    band: (f64, f64),
    lines: Vec<Vec<(f64, f64)>>,
}

/// The shortest chain's draws after the burn-in: chains a row apart are compared on equal terms.
fn common_length(chains: &ColdChains, burn_in: usize) -> usize {
    chains
        .after(0, burn_in)
        .map(<[f64]>::len)
        .min()
        .unwrap_or(0)
}

impl ChainLines {
    /// Rank plots (Vehtari et al. 2021): the draws of every chain after the burn-in ranked
    /// together, and each chain's ranks binned. Chains that sample the same distribution
    /// spread their ranks evenly; a chain stuck high or low, or mixing slowly, does not.
    pub fn ranks(chains: &ColdChains, burn_in: usize, title: String) -> ChainLines {
        let n = common_length(chains, burn_in);
        let n_bins = (n / 10).clamp(1, RANK_BINS);
        let total = n * chains.chains.len();
        let panels = (0..chains.n_dims)
            .map(|dim| {
                let columns: Vec<&[f64]> = chains.after(dim, burn_in).map(|c| &c[..n]).collect();
                let ranks = ranks(&columns);
                let lines: Vec<Vec<(f64, f64)>> = ranks
                    .chunks(n.max(1))
                    .map(|chain_ranks| {
                        let mut counts = vec![0u64; n_bins];
                        for &rank in chain_ranks {
                            counts[(rank * n_bins / total.max(1)).min(n_bins - 1)] += 1;
                        }
                        steps(&counts, total as f64 / n_bins as f64)
                    })
                    .collect();
                // A chain's count in a bin is hypergeometric: its n draws among the `total`
                // ranked, of which the bin holds total/bins (one chain alone fills it exactly).
                let p = 1.0 / n_bins as f64;
                let finite_population = if total > 1 {
                    (total - n) as f64 / (total - 1) as f64
                } else {
                    0.0
                };
                let expected = n as f64 * p;
                let sd = (n as f64 * p * (1.0 - p) * finite_population).sqrt();
                let band = (expected - 1.96 * sd, expected + 1.96 * sd);
                let top = lines.iter().flatten().map(|p| p.1).fold(band.1, f64::max);
                Panel {
                    dimension: chains.names[dim].clone(),
                    x_range: (0.0, total as f64),
                    y_range: (0.0, top * 1.1),
                    reference: expected,
                    band,
                    lines,
                }
            })
            .collect();
        ChainLines {
            name: "rank",
            title,
            legend: chain_legend(chains),
            x_desc: "rank of the draw among every chain's",
            y_desc: "draws per bin",
            panels,
        }
    }

    /// Each chain's autocorrelation after the burn-in, to lag 100: how many steps apart two
    /// draws must be to tell you something new.
    pub fn autocorrelation(chains: &ColdChains, burn_in: usize, title: String) -> ChainLines {
        let n = common_length(chains, burn_in);
        let max_lag = MAX_LAG.min(n.saturating_sub(1));
        // White noise's autocorrelation at any lag has sd 1/√n.
        let noise = 1.96 / (n.max(1) as f64).sqrt();
        let panels = (0..chains.n_dims)
            .map(|dim| {
                let lines: Vec<Vec<(f64, f64)>> = chains
                    .after(dim, burn_in)
                    .map(|chain| {
                        autocorrelation(&chain[..n], max_lag)
                            .into_iter()
                            .enumerate()
                            .map(|(lag, r)| (lag as f64, r))
                            .collect()
                    })
                    .collect();
                let bottom = lines.iter().flatten().map(|p| p.1).fold(-noise, f64::min);
                Panel {
                    dimension: chains.names[dim].clone(),
                    x_range: (0.0, max_lag.max(1) as f64),
                    y_range: ((bottom - 0.05).max(-1.05), 1.05),
                    reference: 0.0,
                    band: (-noise, noise),
                    lines,
                }
            })
            .collect();
        ChainLines {
            name: "autocorrelation",
            title,
            legend: chain_legend(chains),
            x_desc: "lag (steps)",
            y_desc: "autocorrelation",
            panels,
        }
    }

    /// Columns and rows of the panel grid: about square.
    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let columns = (n as f64).sqrt().ceil() as usize;
        (columns, n.div_ceil(columns))
    }
}

/// The 0-based rank of every value among all of `columns`' (ties broken by position), in the
/// columns' order.
fn ranks(columns: &[&[f64]]) -> Vec<usize> {
    // Sorting (value, position) pairs keeps each comparison's data together: sorting positions
    // by the values they point at was twice as slow at a million draws.
    let mut pairs: Vec<(f64, usize)> = columns
        .iter()
        .flat_map(|column| column.iter().copied())
        .enumerate()
        .map(|(i, x)| (x, i))
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut ranks = vec![0; pairs.len()];
    for (rank, &(_, i)) in pairs.iter().enumerate() {
        ranks[i] = rank;
    }
    ranks
}

/// Bin counts as a step line over bins `width` wide starting at 0.
fn steps(counts: &[u64], width: f64) -> Vec<(f64, f64)> {
    counts
        .iter()
        .enumerate()
        .flat_map(|(k, &c)| {
            [
                (k as f64 * width, c as f64),
                ((k + 1) as f64 * width, c as f64),
            ]
        })
        .collect()
}

impl Figure for ChainLines {
    fn name(&self) -> &'static str {
        self.name
    }

    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        (
            PANEL.0 * columns as u32,
            TITLE_HEIGHT + PANEL.1 * rows as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = titled(root, &self.title, &self.legend)?;
        let (columns, rows) = self.grid();
        for (area, panel) in body.split_evenly((rows, columns)).iter().zip(&self.panels) {
            let (x0, x1) = panel.x_range;
            let (y0, y1) = panel.y_range;
            let mut chart = panel_chart(
                area,
                &panel.dimension,
                (x0..x1, y0..y1),
                (self.x_desc, self.y_desc),
            )?;
            let (b0, b1) = panel.band;
            chart.draw_series([Rectangle::new(
                [(x0, b0.max(y0)), (x1, b1.min(y1))],
                BAND_COLOUR.filled(),
            )])?;
            chart.draw_series([PathElement::new(
                [(x0, panel.reference), (x1, panel.reference)],
                BLACK.mix(0.6).stroke_width(1),
            )])?;
            for (i, line) in panel.lines.iter().enumerate() {
                chart.draw_series([PathElement::new(
                    line.clone(),
                    chain_colour(i).mix(0.8).stroke_width(2),
                )])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_order_every_chain_together() {
        let a = [0.5, -1.0, 3.0];
        let b = [2.0, 0.0];
        assert_eq!(ranks(&[&a, &b]), vec![2, 0, 4, 3, 1]);
    }

    #[test]
    fn a_chain_stuck_high_takes_the_top_ranks_and_agreeing_chains_share_them() {
        use super::super::data::ColdChain;
        // Chains 0 and 1 interleave; chain 2 sits above both.
        let chain = |index: usize, f: &dyn Fn(usize) -> f64| ColdChain {
            index,
            states: vec![(0..400).map(f).collect()],
        };
        let chains = ColdChains {
            n_dims: 1,
            names: vec!["x".into()],
            chains: vec![
                chain(0, &|t| (t * 2) as f64),
                chain(1, &|t| (t * 2 + 1) as f64),
                chain(2, &|t| 10_000.0 + t as f64),
            ],
        };
        let figure = ChainLines::ranks(&chains, 0, String::new());
        let panel = &figure.panels[0];
        assert_eq!(panel.lines.len(), 3);
        let counts =
            |line: &Vec<(f64, f64)>| -> Vec<f64> { line.iter().step_by(2).map(|p| p.1).collect() };
        // 1,200 ranks in 20 bins of 60: chain 2 fills the top third, the others share the rest.
        let stuck = counts(&panel.lines[2]);
        assert!(
            stuck[..13].iter().all(|&c| c == 0.0) && stuck[14..].iter().all(|&c| c == 60.0),
            "{stuck:?}"
        );
        let mixing = counts(&panel.lines[0]);
        assert!(mixing[..13].iter().all(|&c| c == 30.0), "{mixing:?}");
        assert_eq!(panel.reference, 20.0);
        // A chain's count in a bin is hypergeometric: 400 of 1,200 draws, a bin holding 60.
        let sd = (400.0_f64 * 0.05 * 0.95 * 800.0 / 1199.0).sqrt();
        assert!(
            (panel.band.1 - 20.0 - 1.96 * sd).abs() < 1e-9,
            "{:?}",
            panel.band
        );
        assert!(
            (20.0 - panel.band.0 - 1.96 * sd).abs() < 1e-9,
            "{:?}",
            panel.band
        );
    }
}
