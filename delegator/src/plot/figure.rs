//! What every figure shares: the [`Figure`] trait, the embedded font, the title strip, tick
//! labels, and writing a figure as PNG and SVG.
//!
//! Each figure reduces the samples once when it is built and then draws the same reduced data
//! on either backend, so the PNG and the SVG always agree.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Height of the title strip at the top of every figure, pixels.
pub(crate) const TITLE_HEIGHT: u32 = 40;
/// The font family every text uses (the embedded font is registered under it).
pub(crate) const FONT: &str = "sans-serif";

/// What drawing on backend `DB` returns.
pub(crate) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters backend.
pub(crate) trait Figure {
    /// The file name, without extension.
    fn name(&self) -> &'static str;
    /// Width and height, pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root`, which is `size()` large.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Registers the embedded font under the family name the figures use. Call once before drawing:
/// without it text cannot be measured or drawn (no system fonts are looked up).
pub(crate) fn register_font() -> anyhow::Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow::anyhow!("the embedded font does not load"))
}

/// Writes `figure` into `dir` as NAME.png and NAME.svg; returns their paths.
pub(crate) fn write_figure(figure: &impl Figure, dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let png = dir.join(format!("{}.png", figure.name()));
    let svg = dir.join(format!("{}.svg", figure.name()));
    std::fs::write(&png, render_png(figure)?)
        .with_context(|| format!("cannot write {}", png.display()))?;
    std::fs::write(&svg, render_svg(figure)?)
        .with_context(|| format!("cannot write {}", svg.display()))?;
    Ok([png, svg])
}

fn render_png(figure: &impl Figure) -> anyhow::Result<Vec<u8>> {
    let (width, height) = figure.size();
    let mut rgb = vec![0; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .with_context(|| format!("cannot draw {}.png", figure.name()))?;
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(png)
}

fn render_svg(figure: &impl Figure) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .with_context(|| format!("cannot draw {}.svg", figure.name()))?;
    }
    Ok(svg)
}

/// One entry of a figure's legend: a label and the colour of its line or patch.
pub(crate) type LegendEntry = (String, RGBAColor);

/// Fills `root` white, writes `title` in a strip at the top with `legend` at its right end, and
/// returns the area below it. The legend lives in the strip so that it never covers data.
pub(crate) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(TITLE_HEIGHT);
    let width = top.dim_in_pixel().0 as i32;
    // The legend, right-aligned: a swatch and its label per entry.
    let label_style = (FONT, 13.0).into_text_style(&top);
    let mut x = width - 12;
    for (label, colour) in legend.iter().rev() {
        let text_width = top.estimate_text_size(label, &label_style)?.0 as i32;
        x -= text_width;
        top.draw(&Text::new(label.clone(), (x, 14), label_style.clone()))?;
        x -= 26;
        top.draw(&Rectangle::new([(x, 16), (x + 20, 24)], colour.filled()))?;
        x -= 14;
    }
    // Shrink the title until it fits beside the legend: a long folder name over a narrow
    // figure would be cut off.
    let room = (x - 12).max(0) as u32;
    let mut size = 18.0;
    while size > 9.0
        && top
            .estimate_text_size(title, &(FONT, size).into_text_style(&top))?
            .0
            > room
    {
        size -= 1.0;
    }
    top.draw(&Text::new(title.to_owned(), (12, 12), (FONT, size)))?;
    Ok(body)
}

/// A captioned panel of a figure's grid with its axes drawn: five round ticks a side, the
/// vertical grid off, and `x_desc` and `y_desc` naming the axes.
pub(crate) fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(0)
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// A chart on plain `f64` axes.
pub(crate) type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A step count on an axis: a whole number with its thousands separated (250,000).
pub(crate) fn step_label(x: &f64) -> String {
    crate::shell::thousands(x.round().max(0.0) as u64)
}

/// Okabe and Ito's colours (2008), told apart by readers with any common colour blindness;
/// black, their eighth, is left for text.
pub(crate) const OKABE_ITO: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
];

/// A tick label with as few digits as tell the ticks apart.
pub(crate) fn tick_label(x: &f64) -> String {
    let magnitude = x.abs();
    if magnitude != 0.0 && !(1e-3..1e5).contains(&magnitude) {
        format!("{x:.1e}")
    } else {
        // Trim the zeros that a fixed precision leaves behind.
        let text = format!("{x:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" {
            "0".into()
        } else {
            text.into()
        }
    }
}

/// The colour of the `i`-th cold chain: Okabe and Ito's, in order.
pub(crate) fn chain_colour(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// A legend entry per cold chain, in their colours.
pub(crate) fn chain_legend(chains: &super::data::ColdChains) -> Vec<LegendEntry> {
    chains
        .chains
        .iter()
        .enumerate()
        .map(|(i, chain)| (format!("chain {}", chain.index), chain_colour(i).to_rgba()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tick_label;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(&0.0), "0");
        assert_eq!(tick_label(&-0.0), "0");
        assert_eq!(tick_label(&2.0), "2");
        assert_eq!(tick_label(&-0.25), "-0.25");
        assert_eq!(tick_label(&0.2000000000000001), "0.2");
        assert_eq!(tick_label(&12345.5), "12345.5");
        assert_eq!(tick_label(&250000.0), "2.5e5");
        assert_eq!(tick_label(&0.00012), "1.2e-4");
    }
}
