//! The `compare` chart: bar panels side by side (a median bar and a min–max whisker per bar),
//! SVG, drawn with plotters. It knows nothing of `compare`: [`Chart`] is its whole input.

use std::path::Path;

use plotters::prelude::*;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A titled grid of panels.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Above the panels.
    pub title: String,
    /// Drawn two per row, in order.
    pub panels: Vec<Panel>,
}

/// One figure, one bar per series.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The figure and its unit.
    pub title: String,
    /// The bars, left to right; the colours follow [`COLORS`] in order.
    pub bars: Vec<Bar>,
}

/// A median with its spread.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Under the bar.
    pub label: String,
    /// The bar's height.
    pub median: f64,
    /// The whisker's bottom.
    pub min: f64,
    /// The whisker's top.
    pub max: f64,
}

/// The bars' colours, in order (then again from the first).
const COLORS: [RGBColor; 2] = [BLUE, RED];

/// Writes `chart` to `path`.
///
/// # Errors
/// If the file cannot be written.
pub fn draw(chart: &Chart, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&chart.title, ("sans-serif", 22))?;
    let rows = chart.panels.len().div_ceil(2).max(1);
    let areas = root.split_evenly((rows, 2));
    for (area, panel) in areas.iter().zip(&chart.panels) {
        bars(area, panel)?;
    }
    root.present()?;
    Ok(())
}

fn bars(area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, panel: &Panel) -> DrawResult {
    let values = &panel.bars;
    let top = values.iter().map(|b| b.max).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d((0..values.len() as i32).into_segmented(), 0f64..top)?;
    let names: Vec<&str> = values.iter().map(|b| b.label.as_str()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(values.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .draw()?;
    for (i, (bar, color)) in values.iter().zip(COLORS.iter().cycle()).enumerate() {
        let i = i as i32;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), bar.median),
            ],
            color.mix(0.6).filled(),
        )))?;
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            SegmentValue::CenterOf(i),
            bar.min,
            bar.median,
            bar.max,
            BLACK.filled(),
            12,
        )))?;
    }
    Ok(())
}
