//! Line charts as inline SVG, drawn on the server: they show without JavaScript and move when
//! the page's live part is redrawn.

use std::time::SystemTime;

use maud::{Markup, html};

/// One line: its label, CSS class and values (`None`: a gap).
pub(crate) struct Line<'a> {
    pub(crate) label: &'a str,
    pub(crate) class: &'a str,
    pub(crate) values: Vec<(SystemTime, Option<f64>)>,
}

const W: f64 = 300.0;
const H: f64 = 80.0;

/// A chart of `lines` over `window` seconds up to now, the y axis from 0 to the largest value.
pub(crate) fn chart(title: &str, unit: &str, lines: &[Line<'_>], window: f64) -> Markup {
    let now = SystemTime::now();
    // From the oldest point (at least a minute back) to now, at most the window.
    let oldest = lines
        .iter()
        .flat_map(|l| l.values.iter().map(|(t, _)| *t))
        .min()
        .map_or(0.0, |t| {
            now.duration_since(t).unwrap_or_default().as_secs_f64()
        });
    let window = oldest.max(60.0).min(window.max(60.0));
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().filter_map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let x = |t: SystemTime| {
        let ago = now.duration_since(t).unwrap_or_default().as_secs_f64();
        (W * (1.0 - ago / window)).clamp(0.0, W)
    };
    let y = |v: f64| H - (v / top) * H;
    let latest: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let v = l.values.iter().rev().find_map(|(_, v)| *v)?;
            Some(format!("{} {}", l.label, super::pages::number(v, unit)))
        })
        .collect();
    let summary = format!(
        "{title}: {}",
        if latest.is_empty() {
            "no data yet".to_owned()
        } else {
            latest.join(", ")
        }
    );
    html! {
        figure.chart {
            figcaption { (title) " " span.latest { (latest.join(" · ")) } }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(summary) preserveAspectRatio="none" {
                line.axis x1="0" y1=(H) x2=(W) y2=(H) {}
                @for l in lines {
                    @let points = points(&l.values, &x, &y);
                    @if !points.is_empty() {
                        polyline class=(l.class) data-label=(l.label) points=(points) {}
                    }
                }
            }
            div.scale { span { "0" } span { "max " (super::pages::number(max, unit)) } }
        }
    }
}

fn points(
    values: &[(SystemTime, Option<f64>)],
    x: &impl Fn(SystemTime) -> f64,
    y: &impl Fn(f64) -> f64,
) -> String {
    let mut out = String::new();
    for (t, v) in values {
        if let Some(v) = v {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{:.1},{:.1}", x(*t), y(*v)));
        }
    }
    out
}
