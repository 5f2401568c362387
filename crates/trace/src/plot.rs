//! An SVG chart of a trace: memory (PSS, else RSS) and CPU over time, one line per process.
//!
//! Written by hand: two panels of polylines with axes and a legend need no more, and plotting
//! crates bring font rasterisation and image codecs this needs none of.

use std::fmt::Write as _;

use crate::report::{human_bytes, Report};

const W: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart as an SVG document.
pub fn svg(r: &Report) -> String {
    let mut out = String::new();
    let h = TOP + 2.0 * PANEL_H + GAP + 40.0;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title: String = r.command.chars().take(90).collect();
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14">osml trace: {}</text>"#,
        esc(&title)
    );
    let t_max = r.duration_s.max(1e-3);
    let mem_max = r
        .timeline
        .values()
        .flatten()
        .map(|p| p.pss_bytes.unwrap_or(p.rss_bytes))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let cpu_max = r
        .timeline
        .values()
        .flatten()
        .map(|p| p.cpu_percent)
        .fold(100.0, f64::max);
    let plot_w = W - LEFT - RIGHT;
    let panels = [
        ("memory (PSS)", TOP, mem_max, human_bytes(mem_max)),
        (
            "CPU %",
            TOP + PANEL_H + GAP,
            cpu_max,
            format!("{cpu_max:.0}%"),
        ),
    ];
    for (label, y0, _, top_label) in &panels {
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y0 + 12.0,
            esc(top_label)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
            LEFT - 6.0,
            y0 + PANEL_H
        );
        let _ = writeln!(out, r#"<text x="{LEFT}" y="{}">{label}</text>"#, y0 - 6.0);
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{t_max:.1} s</text>"#,
        LEFT + plot_w,
        TOP + 2.0 * PANEL_H + GAP + 16.0
    );
    let top = (panels[0].1, panels[1].1);
    for (i, (pid, points)) in r.timeline.iter().enumerate() {
        draw_process(&mut out, r, i, *pid, points, (t_max, mem_max, cpu_max), top);
    }
    out.push_str("</svg>\n");
    out
}

/// One process's two polylines and its legend entry.
fn draw_process(
    out: &mut String,
    r: &Report,
    i: usize,
    pid: i32,
    points: &[crate::report::Point],
    (t_max, mem_max, cpu_max): (f64, f64, f64),
    (mem_top, cpu_top): (f64, f64),
) {
    let plot_w = W - LEFT - RIGHT;
    let color = COLORS[i % COLORS.len()];
    let x = |t: f64| LEFT + plot_w * (t / t_max).clamp(0.0, 1.0);
    let line = |y0: f64, max: f64, v: &dyn Fn(&crate::report::Point) -> f64| {
        points
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    x(p.t),
                    y0 + PANEL_H - PANEL_H * (v(p) / max).clamp(0.0, 1.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mem = line(mem_top, mem_max, &|p| {
        p.pss_bytes.unwrap_or(p.rss_bytes) as f64
    });
    let cpu = line(cpu_top, cpu_max, &|p| p.cpu_percent);
    for pts in [mem, cpu] {
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>"#
        );
    }
    let cmd: String = r
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .map_or(String::new(), |p| p.cmd.chars().take(24).collect());
    let ly = TOP + 14.0 * i as f64;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" fill="{color}">{pid} {}</text>"#,
        W - RIGHT + 10.0,
        ly + 10.0,
        esc(&cmd)
    );
}
