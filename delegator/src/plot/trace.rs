//! The trace figure: one panel per dimension, one line per cold chain, the burn-in shaded.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::ColdChains;
use super::figure::{
    step_label, tick_label, titled, DrawResult, Figure, FONT, OKABE_ITO, TITLE_HEIGHT,
};
use super::reduce::{decimate, finite_range, pad};

/// Points kept per trace line: enough for a 1200-pixel-wide panel to show every wiggle.
const MAX_TRACE_POINTS: usize = 2400;
/// Width of the figure, and height of one dimension's panel, pixels.
const TRACE_WIDTH: u32 = 1200;
const TRACE_PANEL_HEIGHT: u32 = 240;
const BURN_IN_COLOUR: RGBColor = RGBColor(232, 232, 232);

/// One line per cold chain and one panel per dimension, the burn-in shaded.
pub(crate) struct Traces {
    title: String,
    n_steps: usize,
    burn_in: usize,
    /// One per dimension.
    panels: Vec<TracePanel>,
}

/// One dimension's traces.
struct TracePanel {
    /// The plotted range of values.
    range: (f64, f64),
    /// Each cold chain's index and its decimated `(step, value)` line.
    lines: Vec<(usize, Vec<(usize, f64)>)>,
}

impl Traces {
    /// Decimates every cold chain's trace.
    pub fn new(chains: &ColdChains, burn_in: usize, title: String) -> Traces {
        let panels = (0..chains.n_dims)
            .map(|dim| {
                let lines = chains
                    .chains
                    .iter()
                    .map(|chain| (chain.index, decimate(&chain.states[dim], MAX_TRACE_POINTS)))
                    .collect();
                TracePanel {
                    range: pad(finite_range(chains.after(dim, 0)), 0.05),
                    lines,
                }
            })
            .collect();
        Traces {
            title,
            n_steps: chains.max_steps(),
            burn_in,
            panels,
        }
    }
}

impl Figure for Traces {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn size(&self) -> (u32, u32) {
        let n = self.panels.len() as u32;
        (TRACE_WIDTH, TITLE_HEIGHT + TRACE_PANEL_HEIGHT * n)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = titled(root, &self.title)?;
        let areas = body.split_evenly((self.panels.len(), 1));
        let last_step = self.n_steps.saturating_sub(1).max(1) as f64;
        for (dim, (area, panel)) in areas.iter().zip(&self.panels).enumerate() {
            let (lo, hi) = panel.range;
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .margin_right(20)
                .x_label_area_size(40)
                .y_label_area_size(65)
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
                .y_desc(format!("x{dim}"))
                .draw()?;
            if self.burn_in > 0 {
                let shade = Rectangle::new(
                    [(0.0, lo), (self.burn_in as f64, hi)],
                    BURN_IN_COLOUR.filled(),
                );
                let series = chart.draw_series([shade])?;
                if dim == 0 {
                    series.label("burn-in").legend(|(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 20, y + 5)], BURN_IN_COLOUR.filled())
                    });
                }
            }
            for (i, (chain, points)) in panel.lines.iter().enumerate() {
                let colour = chain_colour(i);
                // Translucent, so that a later chain does not hide an earlier one.
                let line = LineSeries::new(
                    points.iter().map(|&(t, x)| (t as f64, x)),
                    colour.mix(0.7).stroke_width(1),
                );
                let series = chart.draw_series(line)?;
                if dim == 0 {
                    series
                        .label(format!("chain {chain}"))
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
                }
            }
            if dim == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .label_font((FONT, 13))
                    .draw()?;
            }
        }
        Ok(())
    }
}

/// The colour of the `i`-th cold chain.
fn chain_colour(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}
