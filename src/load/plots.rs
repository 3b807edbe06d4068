//! The plots of a run, as SVG: REGISTERs per second (offered, completed, 503s, transport
//! failures), latency (p50, p99, max) per second from the intended send times, and devices
//! holding a binding over time (a storm's recovery). Titles name the profile, the target and
//! the commit; axes read in engineering notation (180k, 1.2M).

use super::engine::Stats;
use super::summary::{Summary, TimelineRow};
use plotters::prelude::*;
use std::path::Path;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One line: its name, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// `v` in engineering notation, as a person writes it on an axis: 0, 950, 1.5k, 180k, 1.2M.
pub fn eng(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled.abs() >= 100.0 || (scaled.fract() == 0.0 && suffix.is_empty()) {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    // 1.50k -> 1.5k, 2.00M -> 2M.
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

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
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("seconds into the run")
        .y_desc(y_label)
        .x_label_formatter(&|v| eng(*v))
        .y_label_formatter(&|v| eng(*v))
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

/// Writes throughput.svg, latency.svg and registered.svg into `dir`.
pub fn write(dir: &Path, summary: &Summary, stats: &Stats) -> Result<(), String> {
    let t = |i: usize| i as f64 + 0.5;
    let per_second = |f: &dyn Fn(&TimelineRow) -> u64| -> Vec<(f64, f64)> {
        summary
            .timeline
            .iter()
            .enumerate()
            .map(|(i, r)| (t(i), f(r) as f64))
            .collect()
    };
    let target = if summary.target.is_empty() {
        String::new()
    } else {
        format!(" -> {}", summary.target)
    };
    let title = |what: &str| {
        format!(
            "{}{target}, commit {}: {what}",
            summary.profile, summary.machine.commit
        )
    };
    chart(
        &dir.join("throughput.svg"),
        &title("REGISTERs per second"),
        "REGISTER/s",
        &[
            (
                "offered (sent)",
                RGBColor(31, 119, 180),
                per_second(&|r| r.offered),
            ),
            (
                "completed (answered)",
                RGBColor(44, 160, 44),
                per_second(&|r| r.completed),
            ),
            (
                "503 (rejected)",
                RGBColor(255, 127, 14),
                per_second(&|r| r.status_503),
            ),
            (
                "failures (transport, timeouts)",
                RGBColor(214, 39, 40),
                per_second(&|r| r.failures),
            ),
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
        &title("latency from the intended send time"),
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
    )?;
    // Seconds end at t + 1: the count is at the end of each.
    let registered: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(
            summary
                .timeline
                .iter()
                .enumerate()
                .map(|(i, r)| (i as f64 + 1.0, r.registered as f64)),
        )
        .collect();
    chart(
        &dir.join("registered.svg"),
        &title("devices holding a binding"),
        "devices",
        &[("registered", RGBColor(44, 160, 44), registered)],
    )
}

#[cfg(test)]
mod tests {
    use super::eng;

    #[test]
    fn axis_labels_in_engineering_notation() {
        assert_eq!(eng(0.0), "0");
        assert_eq!(eng(5.0), "5");
        assert_eq!(eng(2.5), "2.5");
        assert_eq!(eng(950.0), "950");
        assert_eq!(eng(1_500.0), "1.5k");
        assert_eq!(eng(20_000.0), "20k");
        assert_eq!(eng(180_000.0), "180k");
        assert_eq!(eng(1_200_000.0), "1.2M");
        assert_eq!(eng(1_000_000.0), "1M");
        assert_eq!(eng(12_345.0), "12.3k");
    }
}
