//! Plots as inline SVG, drawn on the server (no script, no external library). Labels are
//! escaped like every other string.

use std::fmt::Write;

use crate::html::esc;

/// One bar: its label, its value, and optional secondary values drawn inside it (for
/// attempts / self-check yes / kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label left of the bar.
    pub label: String,
    /// Values, the first the longest (each drawn over the previous).
    pub values: Vec<f64>,
}

/// Horizontal bars, one row per item, with the values written at the end of each row.
pub fn hbars(id: &str, title: &str, bars: &[Bar], legend: &[&str]) -> String {
    let row = 22.0;
    let label_w = 230.0;
    let bar_w = 420.0;
    let h = 30.0 + row * bars.len().max(1) as f64 + if legend.len() > 1 { 20.0 } else { 0.0 };
    let max = bars
        .iter()
        .flat_map(|b| b.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mut o = String::new();
    let _ = write!(
        o,
        "<figure class=\"plot\" id=\"{}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 760 {h}\" role=\"img\" aria-label=\"{}\">",
        esc(id),
        esc(title),
        esc(title)
    );
    if bars.is_empty() {
        o.push_str("<text x=\"10\" y=\"20\" class=\"muted\">nothing recorded yet</text>");
    }
    for (i, b) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(&truncate(&b.label, 34))
        );
        for (k, v) in b.values.iter().enumerate() {
            let w = bar_w * v / max;
            let _ = write!(
                o,
                "<rect class=\"s{k}\" x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"16\"><title>{}: {}</title></rect>",
                esc(&b.label),
                fmt_value(*v)
            );
        }
        let text: Vec<String> = b.values.iter().map(|v| fmt_value(*v)).collect();
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" class=\"val\">{}</text>",
            label_w + bar_w + 6.0,
            y + 13.0,
            esc(&text.join(" / "))
        );
    }
    if legend.len() > 1 {
        let y = h - 8.0;
        for (k, name) in legend.iter().enumerate() {
            let x = label_w + 130.0 * k as f64;
            let _ = write!(
                o,
                "<rect class=\"s{k}\" x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\"></rect>\
                 <text x=\"{}\" y=\"{y}\" class=\"lbl\">{}</text>",
                y - 9.0,
                x + 14.0,
                esc(name)
            );
        }
    }
    o.push_str("</svg></figure>");
    o
}

/// The histogram of r in ten buckets, with the threshold drawn as a vertical line.
pub fn histogram(buckets: &[u64], threshold: Option<f64>, what: &str) -> String {
    let (w, h, left, bottom) = (760.0, 220.0, 40.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - 20.0;
    let max = buckets.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let mut o = String::new();
    let _ = write!(
        o,
        "<figure class=\"plot\" id=\"plot-recall\"><figcaption>{} r over {} verified pairs{}</figcaption>\
         <svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"histogram of r\">",
        esc(what),
        buckets.iter().sum::<u64>(),
        threshold
            .map(|t| format!(", threshold {t}"))
            .unwrap_or_default()
    );
    for (i, c) in buckets.iter().enumerate() {
        let bw = plot_w / n;
        let x = left + bw * i as f64;
        let bh = plot_h * *c as f64 / max;
        let lo = i as f64 / n;
        let above = threshold.is_some_and(|t| lo >= t);
        let _ = write!(
            o,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{lo:.1}–{:.1}: {c}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"val\">{c}</text>\
             <text x=\"{x:.1}\" y=\"{:.1}\" class=\"lbl\">{lo:.1}</text>",
            if above { "s2" } else { "s0" },
            x + 2.0,
            20.0 + plot_h - bh,
            bw - 4.0,
            lo + 1.0 / n,
            x + bw / 2.0,
            16.0 + plot_h - bh,
            h - 10.0
        );
    }
    if let Some(t) = threshold {
        let x = left + plot_w * t.clamp(0.0, 1.0);
        let _ = write!(
            o,
            "<line class=\"threshold\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"10\" y2=\"{:.1}\"></line>\
             <text x=\"{:.1}\" y=\"12\" class=\"lbl\">threshold {t}</text>",
            20.0 + plot_h,
            x + 4.0
        );
    }
    o.push_str("</svg></figure>");
    o
}

/// Jobs finished over time: the cumulative count against wall-clock time.
pub fn throughput(times_ms: &[i64]) -> String {
    let (w, h, left, bottom) = (760.0, 200.0, 50.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - 20.0;
    let mut o = String::new();
    let (Some(&first), Some(&last)) = (times_ms.first(), times_ms.last()) else {
        return "<figure class=\"plot\" id=\"plot-throughput\"><figcaption>Throughput</figcaption><p class=\"muted\">no job finished yet</p></figure>".to_string();
    };
    let span = (last - first).max(1) as f64;
    let n = times_ms.len() as f64;
    let hours = span / 3_600_000.0;
    let _ = write!(
        o,
        "<figure class=\"plot\" id=\"plot-throughput\"><figcaption>Throughput: {} jobs finished in {}{}</figcaption>\
         <svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"jobs finished over time\"><polyline class=\"line\" points=\"",
        times_ms.len(),
        duration_text(span / 1000.0),
        if hours > 0.0 {
            format!(" ({:.0} per hour)", n / hours)
        } else {
            String::new()
        }
    );
    // At most ~400 points: a long run's curve keeps its shape.
    let step = (times_ms.len() / 400).max(1);
    for (i, t) in times_ms.iter().enumerate().step_by(step) {
        let x = left + plot_w * (t - first) as f64 / span;
        let y = 20.0 + plot_h - plot_h * (i + 1) as f64 / n;
        let _ = write!(o, "{x:.1},{y:.1} ");
    }
    let _ = write!(
        o,
        "{:.1},20\"></polyline><text x=\"4\" y=\"24\" class=\"lbl\">{}</text><text x=\"4\" y=\"{:.1}\" class=\"lbl\">0</text>\
         <text x=\"{left}\" y=\"{:.1}\" class=\"lbl\">start</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"lbl\">+{}</text></svg></figure>",
        left + plot_w,
        times_ms.len(),
        20.0 + plot_h,
        h - 8.0,
        left + plot_w,
        h - 8.0,
        duration_text(span / 1000.0)
    );
    o
}

fn duration_text(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn fmt_value(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// At most `n` characters, with an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
