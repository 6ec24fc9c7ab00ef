//! The trace figure: a row per dimension, each cold chain's trace on the left with its burn-in
//! faded, and each chain's density beside it on the same axis.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::ColdChains;
use super::figure::{
    chain_colour, chain_legend, step_label, tick_label, titled, DrawResult, Figure, LegendEntry,
    FONT, TITLE_HEIGHT,
};
use super::reduce::{clip, finite_range, pad, thin, Bins, Histogram};

/// Points kept per trace line: about one per pixel of the trace panel.
const MAX_TRACE_POINTS: usize = 1000;
/// Width of the figure, of the density panel beside each trace, and height of a row, pixels.
const TRACE_WIDTH: u32 = 1300;
const DENSITY_WIDTH: u32 = 240;
const TRACE_PANEL_HEIGHT: u32 = 220;
const BURN_IN_COLOUR: RGBColor = RGBColor(238, 238, 238);
/// Opacity of a chain's line after the burn-in, and during it.
const LINE_OPACITY: f64 = 0.75;
const BURN_IN_OPACITY: f64 = 0.25;

/// A row per dimension: traces and densities.
pub(crate) struct Traces {
    title: String,
    legend: Vec<LegendEntry>,
    n_steps: usize,
    burn_in: usize,
    rows: Vec<TraceRow>,
}

/// A line cut into the pieces that lie inside a panel.
type Pieces = Vec<Vec<(f64, f64)>>;

/// One dimension's traces and densities.
struct TraceRow {
    name: String,
    /// The plotted range of values: that of the draws after the burn-in, so that a start far
    /// out cannot squash them into a line.
    range: (f64, f64),
    /// The whole range, burn-in included, when it reaches beyond `range`.
    off_scale: Option<(f64, f64)>,
    /// Per chain: its thinned line, cut into the pieces inside `range`, as (burn-in, after).
    lines: Vec<(Pieces, Pieces)>,
    /// Per chain: its draws after the burn-in, binned over `range`.
    densities: Vec<Histogram>,
}

impl Traces {
    /// Thins every cold chain's trace and bins its draws after the burn-in.
    pub fn new(chains: &ColdChains, burn_in: usize, title: String) -> Traces {
        let n_after = chains
            .after(0, burn_in)
            .map(<[f64]>::len)
            .max()
            .unwrap_or(0);
        let n_bins = Bins::count_for(n_after, 10, 50);
        let mut stride = 1;
        let rows = (0..chains.n_dims)
            .map(|dim| {
                let range = pad(finite_range(chains.after(dim, burn_in)), 0.08);
                let whole = finite_range(chains.after(dim, 0));
                let off_scale = (whole.0 < range.0 || whole.1 > range.1).then_some(whole);
                let lines = chains
                    .chains
                    .iter()
                    .map(|chain| {
                        let (s, points) = thin(&chain.states[dim], MAX_TRACE_POINTS);
                        stride = s;
                        // The point at the burn-in's end belongs to both parts, joining them.
                        let split = points.partition_point(|&(t, _)| t < burn_in);
                        let as_xy = |p: &[(usize, f64)]| -> Vec<(f64, f64)> {
                            p.iter().map(|&(t, x)| (t as f64, x)).collect()
                        };
                        let during = as_xy(&points[..(split + 1).min(points.len())]);
                        let after = as_xy(&points[split..]);
                        (clip(&during, range), clip(&after, range))
                    })
                    .collect();
                let densities = chains
                    .after(dim, burn_in)
                    .map(|draws| Histogram::new(Bins::new(range, n_bins), [draws]))
                    .collect();
                TraceRow {
                    name: chains.names[dim].clone(),
                    range,
                    off_scale,
                    lines,
                    densities,
                }
            })
            .collect();
        let mut legend = chain_legend(chains);
        if burn_in > 0 {
            legend.insert(0, ("burn-in".to_owned(), BURN_IN_COLOUR.to_rgba()));
        }
        let thinning = if stride > 1 {
            format!(", 1 step in {} drawn", step_label(&(stride as f64)))
        } else {
            String::new()
        };
        Traces {
            title: format!("{title}{thinning}"),
            legend,
            n_steps: chains.max_steps(),
            burn_in,
            rows,
        }
    }
}

impl Figure for Traces {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn size(&self) -> (u32, u32) {
        let n = self.rows.len() as u32;
        (TRACE_WIDTH, TITLE_HEIGHT + TRACE_PANEL_HEIGHT * n)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = titled(root, &self.title, &self.legend)?;
        let areas = body.split_evenly((self.rows.len(), 1));
        for (area, row) in areas.iter().zip(&self.rows) {
            let (trace, density) = area.split_horizontally(TRACE_WIDTH - DENSITY_WIDTH);
            self.draw_trace(&trace, row)?;
            draw_density(&density, row)?;
        }
        Ok(())
    }
}

impl Traces {
    fn draw_trace<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        row: &TraceRow,
    ) -> DrawResult<DB> {
        let (lo, hi) = row.range;
        let last_step = self.n_steps.saturating_sub(1).max(1) as f64;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .margin_right(4)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..last_step, lo..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_max_light_lines(0)
            .x_labels(10)
            .y_labels(5)
            .x_label_formatter(&step_label)
            .y_label_formatter(&tick_label)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .x_desc("step")
            .y_desc(row.name.as_str())
            .draw()?;
        if self.burn_in > 0 {
            let shade = Rectangle::new(
                [(0.0, lo), (self.burn_in as f64, hi)],
                // Translucent, so that the grid lines show through.
                BURN_IN_COLOUR.mix(0.6).filled(),
            );
            chart.draw_series([shade])?;
        }
        for (i, (during, after)) in row.lines.iter().enumerate() {
            let colour = chain_colour(i);
            for (pieces, opacity) in [(during, BURN_IN_OPACITY), (after, LINE_OPACITY)] {
                chart.draw_series(pieces.iter().map(|piece| {
                    PathElement::new(piece.clone(), colour.mix(opacity).stroke_width(1))
                }))?;
            }
        }
        if let Some((from, to)) = row.off_scale {
            let note = format!(
                "burn-in off scale: it spans {} to {}",
                tick_label(&from),
                tick_label(&to)
            );
            let (x, _) = chart.plotting_area().get_base_pixel();
            area.draw(&Text::new(
                note,
                (x + 6, 10),
                (FONT, 12).into_font().color(&BLACK.mix(0.6)),
            ))?;
        }
        Ok(())
    }
}

/// Each chain's density after the burn-in as a step line, on the trace's value axis.
fn draw_density<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    row: &TraceRow,
) -> DrawResult<DB> {
    let (lo, hi) = row.range;
    let tallest = row
        .densities
        .iter()
        .flat_map(Histogram::densities)
        .fold(0.0, f64::max);
    let right = if tallest > 0.0 { tallest * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_left(2)
        .margin_right(16)
        .x_label_area_size(40)
        .build_cartesian_2d(0.0..right, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(3)
        .y_labels(0)
        .x_label_formatter(&tick_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 15))
        .x_desc("density")
        .draw()?;
    for (i, histogram) in row.densities.iter().enumerate() {
        let colour = chain_colour(i);
        let mut outline = Vec::with_capacity(2 * histogram.bins.n + 2);
        outline.push((0.0, histogram.bins.lo));
        for (k, density) in histogram.densities().into_iter().enumerate() {
            let edges = histogram.bins.edges(k);
            outline.push((density, edges.start));
            outline.push((density, edges.end));
        }
        outline.push((0.0, histogram.bins.hi));
        chart.draw_series([PathElement::new(
            outline,
            colour.mix(LINE_OPACITY).stroke_width(2),
        )])?;
    }
    Ok(())
}
