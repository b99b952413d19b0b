//! The transparency report as a small SVG bar chart (`custodia report --svg`).
//!
//! Hand-written rather than drawn with `plotters`: the chart is a few dozen rectangles and text
//! labels, and plotters (even with only its SVG backend) would add a font and layout stack and
//! several crates to a security tool's dependency tree for no gain. Banded counts (`1-9`) are
//! drawn to 9 with a lighter, dashed bar, so a reader never mistakes a band for an exact count.

use std::fmt::Write as _;

use custodia_custodian::audit::report::Report;

const WIDTH: u64 = 760;
const LABEL: u64 = 300;
const BAR_MAX: u64 = 380;
const ROW: u64 = 26;
const TOP: u64 = 56;

/// Escapes text for SVG content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A published count: (value to draw, whether it is a band).
fn value(count: &str) -> (u64, bool) {
    if count == "1-9" {
        (9, true)
    } else {
        (count.parse().unwrap_or(0), false)
    }
}

/// The chart of `report` for custodian `title`.
pub(crate) fn chart(report: &Report, title: &str) -> String {
    let rows = &report.rows;
    let max = rows
        .iter()
        .map(|r| value(&r.count.0).0)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = TOP + ROW * (rows.len() as u64).max(1) + 48;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"12\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n\
         <text x=\"12\" y=\"44\" fill=\"#555\">period {}, log size {} (counts 1-9 are banded)</text>\n",
        esc(&format!("Custodia transparency report: {title}")),
        esc(&report.period),
        report.log_size
    );
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"12\" y=\"{}\">no decisions in this period</text>",
            TOP + 18
        );
    }
    for (i, r) in (0u64..).zip(rows) {
        let y = TOP + i * ROW;
        let (v, banded) = value(&r.count.0);
        let len = (v * BAR_MAX / max).max(u64::from(v > 0) * 2);
        let label = format!(
            "{} {} {}{}",
            r.operation,
            r.caller_region,
            r.outcome,
            if r.with_approval { " (approval)" } else { "" }
        );
        let fill = match (r.outcome.as_str(), banded) {
            ("allow", false) => "fill=\"#2e7d32\"",
            ("allow", true) => "fill=\"#a5d6a7\" stroke=\"#2e7d32\" stroke-dasharray=\"4 2\"",
            (_, false) => "fill=\"#c62828\"",
            (_, true) => "fill=\"#ef9a9a\" stroke=\"#c62828\" stroke-dasharray=\"4 2\"",
        };
        let _ = write!(
            out,
            "<text x=\"12\" y=\"{ty}\">{label}</text>\n\
             <rect x=\"{LABEL}\" y=\"{y4}\" width=\"{len}\" height=\"{h}\" {fill}/>\n\
             <text x=\"{vx}\" y=\"{ty}\">{count}</text>\n",
            ty = y + 17,
            label = esc(&label),
            y4 = y + 4,
            h = ROW - 8,
            vx = LABEL + len + 6,
            count = esc(&r.count.0),
        );
    }
    let _ = write!(
        out,
        "<text x=\"12\" y=\"{}\" fill=\"#555\">(approval, mailbox) pairs released: {}; policy changes: {}</text>\n</svg>\n",
        height - 18,
        esc(&report.approval_mailbox_pairs.0),
        report.policy_changes.len()
    );
    out
}
