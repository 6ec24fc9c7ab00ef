//! The histogram figures: each dimension's posterior with its mean and 94 % highest-density
//! interval, and the pair plot (marginals on the diagonal, 2-D densities of each pair with
//! their contours below it).

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use ganger_core::mcmc::diagnostics::{hdi, mean};

use super::contour::{Grid, CONTOUR_MASSES};
use super::data::ColdChains;
use super::figure::{panel, tick_label, titled, DrawResult, Figure, FONT, TITLE_HEIGHT};
use super::reduce::{finite_range, Bins, Histogram, Histogram2d};

/// Size of one dimension's panel of the marginals figure, pixels.
const MARGINAL_PANEL: (u32, u32) = (400, 300);
/// Bars per marginal histogram, and cells per side of a 2-D density, at least and at most.
const HISTOGRAM_BINS: (usize, usize) = (10, 60);
const DENSITY_BINS: (usize, usize) = (10, 40);
const BAR_COLOUR: RGBColor = RGBColor(150, 190, 225);
/// The share of the draws the posterior panel's interval holds: ArviZ's default.
pub(crate) const HDI_PROB: f64 = 0.94;
/// A 2-D density runs from the first colour (few samples) to the second (the fullest cell).
const DENSITY_COLOURS: (RGBColor, RGBColor) = (RGBColor(236, 243, 250), RGBColor(70, 125, 185));

/// Each dimension's posterior, every cold chain pooled after the burn-in: a histogram, the
/// mean and the 94 % highest-density interval, as ArviZ's `plot_posterior` shows them.
pub(crate) struct Posterior {
    title: String,
    names: Vec<String>,
    histograms: Vec<Histogram>,
    /// Per dimension, the mean and the HDI of the pooled draws (`None` without finite draws).
    marks: Vec<Option<(f64, (f64, f64))>>,
}

impl Posterior {
    /// Bins every dimension's samples after `burn_in` and finds its mean and HDI.
    pub fn new(chains: &ColdChains, burn_in: usize, title: String) -> Posterior {
        let n_samples: usize = chains.after(0, burn_in).map(<[f64]>::len).sum();
        let n_bins = Bins::count_for(n_samples, HISTOGRAM_BINS.0, HISTOGRAM_BINS.1);
        let histograms = (0..chains.n_dims)
            .map(|dim| {
                let bins = Bins::new(finite_range(chains.after(dim, burn_in)), n_bins);
                Histogram::new(bins, chains.after(dim, burn_in))
            })
            .collect();
        let marks = (0..chains.n_dims)
            .map(|dim| {
                let pooled: Vec<f64> = chains
                    .after(dim, burn_in)
                    .flatten()
                    .copied()
                    .filter(|x| x.is_finite())
                    .collect();
                hdi(&pooled, HDI_PROB).map(|interval| (mean(&pooled), interval))
            })
            .collect();
        Posterior {
            title,
            names: chains.names.clone(),
            histograms,
            marks,
        }
    }

    /// Columns and rows of the panel grid: about square.
    fn grid(&self) -> (usize, usize) {
        let n = self.histograms.len().max(1);
        let columns = (n as f64).sqrt().ceil() as usize;
        (columns, n.div_ceil(columns))
    }
}

impl Figure for Posterior {
    fn name(&self) -> &'static str {
        "posterior"
    }

    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        (
            MARGINAL_PANEL.0 * columns as u32,
            TITLE_HEIGHT + MARGINAL_PANEL.1 * rows as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let legend = [
            ("mean".to_owned(), MEAN_COLOUR.to_rgba()),
            (
                format!("{:.0} % HDI", HDI_PROB * 100.0),
                HDI_COLOUR.to_rgba(),
            ),
        ];
        let body = titled(root, &self.title, &legend)?;
        let (columns, rows) = self.grid();
        for (dim, (area, histogram)) in body
            .split_evenly((rows, columns))
            .iter()
            .zip(&self.histograms)
            .enumerate()
        {
            let caption = match self.marks[dim] {
                Some((mean, _)) => format!("{}: mean {}", self.names[dim], mark_label(mean)),
                None => self.names[dim].clone(),
            };
            let bins = histogram.bins;
            let mut chart = panel(
                area,
                &caption,
                (bins.lo..bins.hi, 0.0..top(histogram)),
                (&self.names[dim], "density"),
            )?;
            chart.draw_series(bars(histogram))?;
            if let Some((mean, (lo, hi))) = self.marks[dim] {
                let height = top(histogram);
                chart.draw_series([PathElement::new(
                    [(mean, 0.0), (mean, height)],
                    MEAN_COLOUR.stroke_width(2),
                )])?;
                // The interval as a bar along the bottom, its ends labelled above it.
                let y = height * 0.04;
                chart.draw_series([PathElement::new(
                    [(lo, y), (hi, y)],
                    HDI_COLOUR.stroke_width(5),
                )])?;
                let style = (FONT, 12).into_font().color(&HDI_COLOUR);
                let ends = [
                    (lo, mark_label(lo), Pos::new(HPos::Left, VPos::Bottom)),
                    (hi, mark_label(hi), Pos::new(HPos::Right, VPos::Bottom)),
                ];
                chart.draw_series(ends.into_iter().map(|(x, label, pos)| {
                    Text::new(label, (x, height * 0.07), style.clone().pos(pos))
                }))?;
            }
        }
        Ok(())
    }
}

const HDI_COLOUR: RGBColor = RGBColor(0, 0, 0);
/// Okabe and Ito's vermillion.
const MEAN_COLOUR: RGBColor = RGBColor(213, 94, 0);
/// The pair plot's contour lines, innermost first.
const CONTOUR_COLOURS: [RGBColor; 2] = [RGBColor(0, 0, 0), RGBColor(90, 90, 90)];

/// A value marked on a panel: four significant digits.
fn mark_label(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if !(1e-3..1e5).contains(&x.abs()) {
        format!("{x:.3e}")
    } else {
        let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.decimals$}")
    }
}

/// Histograms on the diagonal, 2-D densities of each pair of dimensions below it.
pub(crate) struct Corner<'a> {
    title: String,
    marginals: &'a Posterior,
    /// `densities[i][j]` for row `i` > column `j`: x is dimension `j`, y is dimension `i`.
    densities: Vec<Vec<Histogram2d>>,
}

impl<'a> Corner<'a> {
    /// Bins every pair of dimensions after `burn_in` on the marginals' ranges.
    pub fn new(
        chains: &ColdChains,
        burn_in: usize,
        marginals: &'a Posterior,
        title: String,
    ) -> Corner<'a> {
        let n_samples: usize = chains.after(0, burn_in).map(<[f64]>::len).sum();
        // A cell holds a 2-D bin's share of the samples: fewer cells per side than bars.
        let n_bins = Bins::count_for(n_samples / 16, DENSITY_BINS.0, DENSITY_BINS.1);
        let bins = |dim: usize| {
            let marginal = marginals.histograms[dim].bins;
            Bins::new((marginal.lo, marginal.hi), n_bins)
        };
        let densities = (0..chains.n_dims)
            .map(|row| {
                (0..row)
                    .map(|column| {
                        let pairs = chains
                            .after(column, burn_in)
                            .zip(chains.after(row, burn_in));
                        Histogram2d::new(bins(column), bins(row), pairs)
                    })
                    .collect()
            })
            .collect();
        Corner {
            title,
            marginals,
            densities,
        }
    }

    /// Side of one cell, pixels: 250, smaller for many dimensions, never below 150.
    fn cell(&self) -> u32 {
        (2000 / self.densities.len().max(1) as u32).clamp(150, 250)
    }
}

impl Figure for Corner<'_> {
    fn name(&self) -> &'static str {
        "corner"
    }

    fn size(&self) -> (u32, u32) {
        let side = self.cell() * self.densities.len() as u32;
        (side, TITLE_HEIGHT + side)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let legend: Vec<_> = CONTOUR_MASSES
            .iter()
            .zip(CONTOUR_COLOURS)
            .zip(["1σ", "2σ"])
            .map(|((mass, colour), sigma)| {
                (format!("{:.0} % ({sigma})", mass * 100.0), colour.to_rgba())
            })
            .collect();
        let body = titled(root, &self.title, &legend)?;
        let names = &self.marginals.names;
        let n = self.densities.len();
        let cells = body.split_evenly((n, n));
        for row in 0..n {
            for column in 0..=row {
                let area = &cells[row * n + column];
                let x_bins = self.marginals.histograms[column].bins;
                let mut builder = ChartBuilder::on(area);
                builder
                    .margin(4)
                    .x_label_area_size(if row == n - 1 { 45 } else { 0 })
                    .y_label_area_size(if column == 0 { 65 } else { 0 });
                if row == column {
                    let histogram = &self.marginals.histograms[column];
                    let mut chart =
                        builder.build_cartesian_2d(x_bins.lo..x_bins.hi, 0.0..top(histogram))?;
                    label_cell(&mut chart, (row, column), names, false)?;
                    chart.draw_series(bars(histogram))?;
                } else {
                    let density = &self.densities[row][column];
                    let mut chart = builder
                        .build_cartesian_2d(x_bins.lo..x_bins.hi, density.y.lo..density.y.hi)?;
                    label_cell(&mut chart, (row, column), names, true)?;
                    chart.draw_series(density_cells(density))?;
                    let grid = Grid::smoothed(density);
                    for (mass, colour) in CONTOUR_MASSES.iter().zip(CONTOUR_COLOURS) {
                        let Some(level) = grid.level_enclosing(*mass) else {
                            continue;
                        };
                        chart.draw_series(
                            grid.contour(level)
                                .into_iter()
                                .map(|segment| PathElement::new(segment, colour.stroke_width(2))),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Axes of one corner cell: tick labels and names only along the bottom row and left column.
fn label_cell<DB: DrawingBackend>(
    chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    (row, column): (usize, usize),
    names: &[String],
    y_is_dimension: bool,
) -> DrawResult<DB> {
    let n = names.len();
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14));
    if row == n - 1 {
        mesh.x_desc(names[column].as_str());
    } else {
        mesh.x_labels(0);
    }
    if column == 0 && y_is_dimension {
        mesh.y_desc(names[row].as_str());
    } else {
        mesh.y_labels(0);
    }
    mesh.draw()
}

/// The top of a histogram's y axis: a little above its tallest bar.
fn top(histogram: &Histogram) -> f64 {
    let tallest = histogram.densities().into_iter().fold(0.0, f64::max);
    if tallest > 0.0 {
        tallest * 1.08
    } else {
        1.0
    }
}

/// A histogram's bars, as density.
fn bars(histogram: &Histogram) -> impl Iterator<Item = Rectangle<(f64, f64)>> + '_ {
    histogram
        .densities()
        .into_iter()
        .enumerate()
        .filter(|&(_, density)| density > 0.0)
        .map(|(i, density)| {
            let edges = histogram.bins.edges(i);
            Rectangle::new(
                [(edges.start, 0.0), (edges.end, density)],
                BAR_COLOUR.filled(),
            )
        })
}

/// A 2-D density's non-empty cells, shaded by the square root of their count so that the tails
/// show next to the mode.
fn density_cells(density: &Histogram2d) -> impl Iterator<Item = Rectangle<(f64, f64)>> + '_ {
    let max = density.max_count().max(1) as f64;
    density.cells().map(move |(x, y, count)| {
        let t = (count as f64 / max).sqrt();
        let (from, to) = DENSITY_COLOURS;
        let channel = |a: u8, b: u8| (a as f64 + t * (b as f64 - a as f64)).round() as u8;
        let colour = RGBColor(
            channel(from.0, to.0),
            channel(from.1, to.1),
            channel(from.2, to.2),
        );
        Rectangle::new([(x.start, y.start), (x.end, y.end)], colour.filled())
    })
}
