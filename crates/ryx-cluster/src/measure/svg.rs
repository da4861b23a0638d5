//! A small line chart as standalone SVG (no dependencies), for `bench`.

use std::fmt::Write;

/// One line of the chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// One value per x position (gaps allowed).
    pub values: Vec<Option<f64>>,
}

/// A horizontal reference line.
pub struct Level {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Its value.
    pub value: f64,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A chart with `x_labels` evenly spaced along x, lines for `series` and
/// dashed horizontal `levels`; y from 0 to a round maximum.
pub fn line_chart(
    title: &str,
    x_title: &str,
    y_title: &str,
    x_labels: &[String],
    series: &[Series],
    levels: &[Level],
) -> String {
    let (w, h) = (760.0f64, 440.0f64);
    let (left, right, top, bottom) = (70.0, 210.0, 50.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max_v = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(levels.iter().map(|l| l.value))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = nice_ceiling(max_v.max(1e-9));
    let n = x_labels.len().max(1);
    let x_at = |i: usize| if n == 1 { left + pw / 2.0 } else { left + pw * i as f64 / (n - 1) as f64 };
    let y_at = |v: f64| top + ph * (1.0 - (v / y_max).clamp(0.0, 1.0));
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(o, r#"<text x="{}" y="28" font-size="15" font-weight="bold">{}</text>"#, left, esc(title));
    // Grid and y ticks.
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        let y = y_at(v);
        let _ = writeln!(
            o,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
    for (i, l) in x_labels.iter().enumerate() {
        let x = x_at(i);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 5.0,
            top + ph + 18.0,
            esc(l)
        );
    }
    let _ = writeln!(
        o,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        top + ph,
        top + ph,
        left + pw,
        top + ph
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 18.0,
        esc(x_title)
    );
    let _ = writeln!(
        o,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0,
        esc(y_title)
    );
    let mut legend_y = top + 10.0;
    let legend_x = left + pw + 20.0;
    for l in levels {
        let y = y_at(l.value);
        let _ = writeln!(
            o,
            r#"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2" stroke-dasharray="6 4"/>"#,
            left + pw,
            l.color
        );
        let _ = writeln!(
            o,
            r#"<line x1="{legend_x}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{}" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 24.0,
            l.color,
            legend_x + 30.0,
            legend_y + 4.0,
            esc(&l.name)
        );
        legend_y += 20.0;
    }
    for s in series {
        let mut path = String::new();
        let mut pen_up = true;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) if v.is_finite() => {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_up { "M" } else { "L" }, x_at(i), y_at(*v));
                    pen_up = false;
                }
                _ => pen_up = true,
            }
        }
        if !path.is_empty() {
            let _ =
                writeln!(o, r#"<path d="{}" fill="none" stroke="{}" stroke-width="2.5"/>"#, path.trim_end(), s.color);
        }
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let _ = writeln!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>{}: {}</title></circle>"#,
                    x_at(i),
                    y_at(v),
                    s.color,
                    esc(&s.name),
                    fmt_tick(v)
                );
            }
        }
        let _ = writeln!(
            o,
            r#"<line x1="{legend_x}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 24.0,
            s.color,
            legend_x + 30.0,
            legend_y + 4.0,
            esc(&s.name)
        );
        legend_y += 20.0;
    }
    o.push_str("</svg>\n");
    o
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg() {
        let s = line_chart(
            "MB/s <by> size",
            "nodes",
            "MB/s",
            &["2".into(), "5".into(), "10".into()],
            &[Series { name: "ryx".into(), color: "#1f77b4", values: vec![Some(100.0), None, Some(80.0)] }],
            &[Level { name: "exec".into(), color: "#2ca02c", value: 150.0 }],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("MB/s &lt;by&gt; size"), "text is escaped");
        assert_eq!(s.matches("<circle").count(), 2, "one dot per value, none for gaps");
        assert!(s.contains("stroke-dasharray"), "levels are dashed");
        assert_eq!(nice_ceiling(151.0), 200.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }
}
