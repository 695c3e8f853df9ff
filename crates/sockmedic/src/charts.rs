//! The SVG charts of `sockmedic report`, drawn with plotters' SVG backend (text is
//! left to the browser: no font is read or rasterised), and the findings' timeline,
//! drawn by hand.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A limit drawn next to values is left out when it is this many times above their
/// peak: the values would be a flat line at the bottom. The caption then says so.
const OFF_SCALE: f64 = 4.0;
/// Width and height of a chart, in SVG pixels (it scales with the page).
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 300;

/// Colours for values, in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A line: points `(unix seconds, value)` in segments (a gap in the recording
/// breaks the line).
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// A limit: dashed, and left out when far above the values.
    pub limit: bool,
    pub segments: Vec<Vec<(f64, f64)>>,
}

impl Series {
    pub fn value(
        label: impl Into<String>,
        color: RGBColor,
        segments: Vec<Vec<(f64, f64)>>,
    ) -> Series {
        Series {
            label: label.into(),
            color,
            limit: false,
            segments,
        }
    }

    pub fn limit(
        label: impl Into<String>,
        color: RGBColor,
        segments: Vec<Vec<(f64, f64)>>,
    ) -> Series {
        Series {
            limit: true,
            ..Series::value(label, color, segments)
        }
    }

    pub fn peak(&self) -> Option<f64> {
        self.segments
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.is_empty())
    }
}

/// How the y axis is labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
    PerSecond,
}

/// A chart to draw.
pub struct Chart {
    pub series: Vec<Series>,
    pub unit: Unit,
    /// `(from, to)` in unix seconds.
    pub x: (f64, f64),
    /// A vertical marker (the worst moment), unix seconds.
    pub marker: Option<f64>,
}

/// The SVG, and the limits left off the scale (label, peak).
pub struct Drawn {
    pub svg: String,
    pub off_scale: Vec<(String, f64)>,
}

pub fn draw(chart: &Chart) -> Result<Drawn> {
    let values_peak = chart
        .series
        .iter()
        .filter(|s| !s.limit)
        .filter_map(Series::peak)
        .fold(0.0f64, f64::max);
    let mut off_scale = Vec::new();
    let mut shown: Vec<&Series> = Vec::new();
    for s in chart.series.iter().filter(|s| !s.is_empty()) {
        match (s.limit, s.peak()) {
            (true, Some(p)) if p > OFF_SCALE * values_peak.max(1.0) => {
                off_scale.push((s.label.clone(), p));
            }
            _ => shown.push(s),
        }
    }
    let peak = shown.iter().filter_map(|s| s.peak()).fold(0.0f64, f64::max);
    let y_max = match chart.unit {
        Unit::Percent => (peak * 1.15).clamp(1.0, 100.0),
        // Whole numbers on the axis even when the values are small.
        Unit::Count => (peak * 1.15).max(5.0),
        Unit::PerSecond => (peak * 1.15).max(1.0),
    };
    let (x0, mut x1) = chart.x;
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let span = x1 - x0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut c = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0f64..y_max)
            .map_err(plot_err)?;
        let xfmt = |x: &f64| time_label(*x, span);
        let yfmt = |y: &f64| number_label(*y, chart.unit);
        c.configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(220, 220, 220))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        for s in &shown {
            let style = ShapeStyle::from(&s.color).stroke_width(if s.limit { 1 } else { 2 });
            let mut first = true;
            for seg in s.segments.iter().filter(|g| !g.is_empty()) {
                // A single point is drawn as a short flat line, so it shows.
                let pts: Vec<(f64, f64)> = if seg.len() == 1 {
                    vec![seg[0], (seg[0].0 + span / 400.0, seg[0].1)]
                } else {
                    seg.clone()
                };
                let anno = if s.limit {
                    c.draw_series(DashedLineSeries::new(pts, 6, 4, style))
                        .map_err(plot_err)?
                } else {
                    c.draw_series(LineSeries::new(pts, style))
                        .map_err(plot_err)?
                };
                if first {
                    let color = s.color;
                    let dashed = s.limit;
                    anno.label(s.label.clone()).legend(move |(x, y)| {
                        if dashed {
                            PathElement::new(
                                vec![(x, y), (x + 8, y), (x + 12, y), (x + 20, y)],
                                color,
                            )
                        } else {
                            PathElement::new(
                                vec![(x, y), (x + 20, y)],
                                ShapeStyle::from(&color).stroke_width(2),
                            )
                        }
                    });
                    first = false;
                }
            }
        }
        if let Some(m) = chart.marker.filter(|m| *m >= x0 && *m <= x1) {
            let red = RGBColor(200, 0, 0);
            c.draw_series(DashedLineSeries::new(
                vec![(m, 0.0), (m, y_max)],
                3,
                3,
                ShapeStyle::from(&red).stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("worst moment")
            .legend(move |(x, y)| PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], red));
        }
        if !shown.is_empty() {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 15))
                .draw()
                .map_err(plot_err)?;
        } else {
            let style = TextStyle::from(("sans-serif", 18).into_font())
                .color(&RGBColor(120, 120, 120))
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw_text(
                "no data in this period",
                &style,
                (WIDTH as i32 / 2, HEIGHT as i32 / 2),
            )
            .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Drawn {
        svg: accessible(svg),
        off_scale,
    })
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// plotters' SVG: made to scale with the page (a viewBox, width 100%) and marked as
/// an image.
fn accessible(svg: String) -> String {
    let open = format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" ");
    svg.replacen(
        &open,
        "<svg width=\"100%\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" ",
        1,
    )
}

/// Whether an SVG text element holds `text` (plotters puts it on a line of its own).
#[cfg(test)]
pub fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<"))
}

/// An axis label for a time (unix seconds): the time of day, with the date when
/// the chart spans more than a day.
pub fn time_label(x: f64, span: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(x.max(0.0));
    let s = humantime::format_rfc3339_seconds(t).to_string(); // 2026-11-22T09:40:01Z
    if span > 86_400.0 {
        format!("{} {}", &s[5..10], &s[11..16])
    } else if span > 600.0 {
        s[11..16].to_string()
    } else {
        s[11..19].to_string()
    }
}

/// `12`, `1.5k`, `2.3M`; `12%`; `0.5/s`.
pub fn number_label(y: f64, unit: Unit) -> String {
    let n = if y.abs() >= 1e6 {
        format!("{:.1}M", y / 1e6)
    } else if y.abs() >= 1e4 {
        format!("{:.0}k", y / 1e3)
    } else if y.abs() >= 1e3 {
        format!("{:.1}k", y / 1e3)
    } else if y.fract() == 0.0 || y.abs() >= 100.0 {
        format!("{y:.0}")
    } else if y.abs() >= 1.0 {
        format!("{y:.1}")
    } else {
        format!("{y:.2}")
    };
    match unit {
        Unit::Count => n,
        Unit::Percent => format!("{n}%"),
        Unit::PerSecond => format!("{n}/s"),
    }
}

/// One bar of the findings' timeline.
pub struct Bar {
    pub severity: &'static str,
    pub from: f64,
    pub to: f64,
    pub tooltip: String,
}

/// The findings' timeline: one row per code and subject, a bar per episode,
/// coloured by its worst severity.
pub fn timeline(rows: &[(String, Vec<Bar>)], x: (f64, f64), marker: Option<f64>) -> String {
    const LABEL_W: f64 = 330.0;
    const ROW_H: f64 = 20.0;
    const TOP: f64 = 24.0;
    let width = WIDTH as f64;
    let height = TOP + ROW_H * rows.len().max(1) as f64 + 8.0;
    let (x0, x1) = (x.0, if x.1 > x.0 { x.1 } else { x.0 + 1.0 });
    let plot_w = width - LABEL_W - 12.0;
    let px = |t: f64| LABEL_W + (t.clamp(x0, x1) - x0) / (x1 - x0) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" class=\"timeline\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    s.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
    ));
    // Time ticks.
    for i in 0..=6 {
        let t = x0 + (x1 - x0) * i as f64 / 6.0;
        let xp = px(t);
        let anchor = match i {
            0 => "start",
            6 => "end",
            _ => "middle",
        };
        s.push_str(&format!(
            "<line x1=\"{xp:.1}\" y1=\"{TOP}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#e6e6e6\"/><text x=\"{xp:.1}\" y=\"14\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
            height - 8.0,
            esc(&time_label(t, x1 - x0))
        ));
    }
    if rows.is_empty() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\">no finding in this period</text>",
            width / 2.0,
            TOP + 14.0
        ));
    }
    for (i, (label, bars)) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        if i % 2 == 1 {
            s.push_str(&format!(
                "<rect x=\"0\" y=\"{y:.1}\" width=\"{width}\" height=\"{ROW_H}\" fill=\"#f7f7f7\"/>"
            ));
        }
        let short: String = if label.chars().count() > 52 {
            label.chars().take(51).chain(['…']).collect()
        } else {
            label.clone()
        };
        s.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\" fill=\"#222\"><title>{}</title>{}</text>",
            y + 14.0,
            esc(label),
            esc(&short)
        ));
        for b in bars {
            let (a, z) = (px(b.from), px(b.to));
            let w = (z - a).max(2.0);
            s.push_str(&format!(
                "<rect class=\"bar {}\" x=\"{a:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" rx=\"2\"><title>{}</title></rect>",
                b.severity,
                y + 3.0,
                ROW_H - 6.0,
                severity_color(b.severity),
                esc(&b.tooltip)
            ));
        }
    }
    if let Some(m) = marker.filter(|m| *m >= x0 && *m <= x1) {
        let xp = px(m);
        s.push_str(&format!(
            "<line x1=\"{xp:.1}\" y1=\"{TOP}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#c00000\" stroke-dasharray=\"3 3\"><title>worst moment</title></line>",
            height - 8.0
        ));
    }
    s.push_str("</svg>");
    s
}

pub fn severity_color(s: &str) -> &'static str {
    match s {
        "critical" => "#d62728",
        "warning" => "#ff9f0e",
        _ => "#1f77b4",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_its_series_and_leaves_far_limits_off() {
        let d = draw(&Chart {
            series: vec![
                Series::value(
                    "orphans",
                    color(0),
                    vec![vec![(1000.0, 3.0), (1001.0, 5.0)], vec![(1010.0, 4.0)]],
                ),
                Series::limit(
                    "tcp_max_orphans",
                    color(1),
                    vec![vec![(1000.0, 65536.0), (1010.0, 65536.0)]],
                ),
                Series::limit("near", color(2), vec![vec![(1000.0, 8.0), (1010.0, 8.0)]]),
            ],
            unit: Unit::Count,
            x: (1000.0, 1010.0),
            marker: Some(1001.0),
        })
        .unwrap();
        assert!(d.svg.starts_with("<svg width=\"100%\""), "{}", &d.svg[..80]);
        assert_eq!(d.svg.matches("viewBox").count(), 1);
        assert!(has_text(&d.svg, "orphans"));
        assert!(has_text(&d.svg, "near"));
        assert!(has_text(&d.svg, "worst moment"));
        assert!(!has_text(&d.svg, "tcp_max_orphans"));
        assert_eq!(d.off_scale, vec![("tcp_max_orphans".to_string(), 65536.0)]);
    }

    #[test]
    fn labels() {
        assert_eq!(number_label(12.0, Unit::Count), "12");
        assert_eq!(number_label(1500.0, Unit::Count), "1.5k");
        assert_eq!(number_label(65536.0, Unit::Count), "66k");
        assert_eq!(number_label(0.25, Unit::PerSecond), "0.25/s");
        assert_eq!(number_label(50.0, Unit::Percent), "50%");
        assert_eq!(time_label(1_795_000_000.0, 60.0), "11:06:40");
        assert_eq!(time_label(1_795_000_000.0, 200_000.0), "11-18 11:06");
    }

    #[test]
    fn timeline_rows_and_bars() {
        let svg = timeline(
            &[(
                "teardown-stall netns=a <x>".into(),
                vec![Bar {
                    severity: "critical",
                    from: 10.0,
                    to: 20.0,
                    tooltip: "t".into(),
                }],
            )],
            (0.0, 100.0),
            Some(15.0),
        );
        assert!(svg.contains("class=\"bar critical\""));
        assert!(svg.contains("teardown-stall netns=a &lt;x&gt;"));
    }
}
