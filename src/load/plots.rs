//! The two plots of a run, as SVG: offered vs completed REGISTERs per second, and latency
//! (p50, p99, max) per second from the intended send times.

use super::engine::Stats;
use plotters::prelude::*;
use std::path::Path;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One line: its name, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws `series` on a chart titled `title` into `path`.
fn chart(path: &Path, title: &str, y_label: &str, series: &[Series<'_>]) -> Result<(), String> {
    let x_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("seconds into the run")
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (name, colour, points) in series {
        let colour = *colour;
        c.draw_series(LineSeries::new(
            points.iter().copied(),
            colour.stroke_width(2),
        ))
        .map_err(err)?
        .label(*name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Writes throughput.svg and latency.svg into `dir`.
pub fn write(dir: &Path, profile: &str, stats: &Stats) -> Result<(), String> {
    let t = |i: usize| i as f64 + 0.5;
    let offered: Vec<(f64, f64)> = stats
        .timeline
        .iter()
        .enumerate()
        .map(|(i, s)| (t(i), s.offered as f64))
        .collect();
    let completed: Vec<(f64, f64)> = stats
        .timeline
        .iter()
        .enumerate()
        .map(|(i, s)| (t(i), s.completed as f64))
        .collect();
    chart(
        &dir.join("throughput.svg"),
        &format!("{profile}: REGISTERs per second"),
        "REGISTER/s",
        &[
            ("offered (sent)", RGBColor(31, 119, 180), offered),
            ("completed (answered)", RGBColor(44, 160, 44), completed),
        ],
    )?;
    let q = |f: &dyn Fn(&hdrhistogram::Histogram<u64>) -> u64| -> Vec<(f64, f64)> {
        stats
            .timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.latency.is_empty())
            .map(|(i, s)| (t(i), f(&s.latency) as f64 / 1000.0))
            .collect()
    };
    chart(
        &dir.join("latency.svg"),
        &format!("{profile}: latency from the intended send time"),
        "milliseconds",
        &[
            (
                "p50",
                RGBColor(31, 119, 180),
                q(&|h| h.value_at_quantile(0.5)),
            ),
            (
                "p99",
                RGBColor(255, 127, 14),
                q(&|h| h.value_at_quantile(0.99)),
            ),
            ("max", RGBColor(214, 39, 40), q(&|h| h.max())),
        ],
    )
}
