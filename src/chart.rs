//! The `compare` chart: the two models side by side (median bar, min–max whisker over the
//! rounds) for throughput, CPU per frame, time to the first frame and time to the end of the
//! data. SVG, drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::compare::{CompareReport, Spread};

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Writes the chart of `report` to `path`.
///
/// # Errors
/// If the file cannot be written.
pub fn draw(report: &CompareReport, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "partition model vs group model: {} frames, {} partitions",
            report.frames, report.partitions
        ),
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((2, 2));
    let figures: [(&str, Spread, Spread); 4] = [
        (
            "frames/s",
            report.partition.frames_per_s,
            report.group.frames_per_s,
        ),
        (
            "CPU µs per frame",
            report.partition.cpu_us_per_frame,
            report.group.cpu_us_per_frame,
        ),
        (
            "ms to first frame",
            report.partition.first_frame_ms,
            report.group.first_frame_ms,
        ),
        (
            "ms to end of data",
            report.partition.end_ms,
            report.group.end_ms,
        ),
    ];
    for (panel, (title, partition, group)) in panels.iter().zip(figures) {
        bars(
            panel,
            title,
            &[("partition", partition, BLUE), ("group", group, RED)],
        )?;
    }
    root.present()?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    values: &[(&str, Spread, RGBColor)],
) -> DrawResult {
    let top = values
        .iter()
        .map(|(_, s, _)| s.max)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d((0..values.len() as i32).into_segmented(), 0f64..top)?;
    let names: Vec<&str> = values.iter().map(|(n, _, _)| *n).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(values.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .draw()?;
    for (i, (_, spread, color)) in values.iter().enumerate() {
        let i = i as i32;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), spread.median),
            ],
            color.mix(0.6).filled(),
        )))?;
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            SegmentValue::CenterOf(i),
            spread.min,
            spread.median,
            spread.max,
            BLACK.filled(),
            12,
        )))?;
    }
    Ok(())
}
