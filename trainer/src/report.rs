//! Run summaries to judge a run at a glance: `metrics.csv` with one row per epoch, a loss-curve SVG and every
//! epoch's sample grid stitched into one PNG.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use shared::grid::GrayImage;

use crate::{atomic, png};

const METRICS: &str = "metrics.csv";

/// Appends one epoch's mean losses and test metrics to `metrics.csv`, writing the header first
/// when the file is new.
pub fn append_epoch(out: &Path, epoch: u32, losses: &[(String, f32)], metrics: &[(String, f64)]) -> Result<()> {
    let path = out.join(METRICS);
    let mut text = if path.is_file() {
        fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?
    } else {
        String::new()
    };
    // A resumed run may repeat an epoch that was cut short; keep only earlier epochs.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        let names: Vec<&str> = losses.iter().map(|(n, _)| n.as_str()).chain(metrics.iter().map(|(n, _)| n.as_str())).collect();
        lines.push(format!("epoch,{}", names.join(",")));
    }
    lines.retain(|line| line.split(',').next().and_then(|e| e.parse::<u32>().ok()).is_none_or(|e| e < epoch));
    let values: Vec<String> = losses
        .iter()
        .map(|(_, v)| v.to_string())
        .chain(metrics.iter().map(|(_, v)| v.to_string()))
        .collect();
    lines.push(format!("{epoch},{}", values.join(",")));

    text.clear();
    for line in lines {
        let _ = writeln!(text, "{line}");
    }
    atomic::write(&path, text.as_bytes())
}

/// Writes `losses.svg` (every column of `metrics.csv` over the epochs, one panel each) and
/// `samples.png` (the sample grids of all epochs side by side, in rows of up to five).
pub fn finish(out: &Path) -> Result<()> {
    let path = out.join(METRICS);
    let text = fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    atomic::write(&out.join("losses.svg"), loss_plot(&text).as_bytes())?;

    let mut grids = Vec::new();
    let mut epoch = 1;
    loop {
        let file = out.join("samples").join(format!("epoch-{epoch:03}.png"));
        if !file.is_file() {
            break;
        }
        grids.push(png::read(&file)?);
        epoch += 1;
    }
    if !grids.is_empty() {
        png::write(&out.join("samples.png"), &stitch(&grids, 5, 6))?;
    }
    Ok(())
}

/// Renders the columns of a metrics CSV as an SVG of small line charts, one per column, with
/// the epoch on the x axis.
pub fn loss_plot(csv: &str) -> String {
    let mut lines = csv.lines();
    let names: Vec<&str> = lines.next().unwrap_or_default().split(',').skip(1).collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|line| line.split(',').map(|v| v.parse::<f64>().unwrap_or(f64::NAN)).collect())
        .filter(|row: &Vec<f64>| row.len() == names.len() + 1)
        .collect();

    let (panel_width, panel_height, margin) = (320.0, 180.0, 40.0);
    let columns = 2usize;
    let panel_rows = names.len().div_ceil(columns).max(1);
    let width = columns as f64 * (panel_width + margin) + margin;
    let height = panel_rows as f64 * (panel_height + margin) + margin;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);

    for (index, name) in names.iter().enumerate() {
        let left = margin + (index % columns) as f64 * (panel_width + margin);
        let top = margin + (index / columns) as f64 * (panel_height + margin);
        let points: Vec<(f64, f64)> = rows.iter().map(|r| (r[0], r[index + 1])).filter(|(_, y)| y.is_finite()).collect();
        let _ = writeln!(svg, r#"<text x="{left}" y="{}" font-weight="bold">{name}</text>"#, top - 8.0);
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{panel_width}" height="{panel_height}" fill="none" stroke="#999"/>"##
        );
        if points.is_empty() {
            continue;
        }

        let (x_min, x_max) = bounds(points.iter().map(|p| p.0));
        let (y_min, y_max) = bounds(points.iter().map(|p| p.1));
        let x = |v: f64| left + (v - x_min) / (x_max - x_min) * panel_width;
        let y = |v: f64| top + panel_height - (v - y_min) / (y_max - y_min) * panel_height;
        let path: Vec<String> = points.iter().map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py))).collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>"##,
            path.join(" ")
        );
        for &(px, py) in &points {
            let _ = writeln!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#1f77b4"/>"##, x(px), y(py));
        }
        let _ = writeln!(svg, r#"<text x="{}" y="{}">{y_max:.4}</text>"#, left + 4.0, top + 12.0);
        let _ = writeln!(svg, r#"<text x="{}" y="{}">{y_min:.4}</text>"#, left + 4.0, top + panel_height - 4.0);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">epoch {x_max}</text>"#,
            left + panel_width,
            top + panel_height + 14.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Returns the minimum and maximum of `values`, widened where they are equal so a flat series
/// still draws.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if max - min < 1e-12 { (min - 0.5, max + 0.5) } else { (min, max) }
}

/// Places `grids` side by side, `columns` per row, with `gap` gray pixels between them.
pub fn stitch(grids: &[GrayImage], columns: usize, gap: usize) -> GrayImage {
    let cell_width = grids.iter().map(|g| g.width).max().unwrap_or(0);
    let cell_height = grids.iter().map(|g| g.height).max().unwrap_or(0);
    let columns = columns.clamp(1, grids.len().max(1));
    let rows = grids.len().div_ceil(columns).max(1);
    let width = columns * (cell_width + gap) - gap;
    let height = rows * (cell_height + gap) - gap;
    let mut pixels = vec![96u8; width * height];

    for (index, grid) in grids.iter().enumerate() {
        let left = (index % columns) * (cell_width + gap);
        let top = (index / columns) * (cell_height + gap);
        for y in 0..grid.height {
            let start = (top + y) * width + left;
            pixels[start..start + grid.width].copy_from_slice(&grid.pixels[y * grid.width..(y + 1) * grid.width]);
        }
    }
    GrayImage { width, height, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_rows_replace_repeated_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let losses = |v: f32| vec![("mse".to_string(), v)];
        append_epoch(dir.path(), 1, &losses(0.5), &[]).unwrap();
        append_epoch(dir.path(), 2, &losses(0.4), &[]).unwrap();
        append_epoch(dir.path(), 2, &losses(0.3), &[]).unwrap();

        let text = fs::read_to_string(dir.path().join(METRICS)).unwrap();

        assert_eq!(text, "epoch,mse\n1,0.5\n2,0.3\n");
    }

    #[test]
    fn loss_plot_has_one_panel_per_column() {
        let svg = loss_plot("epoch,mse,test_mse\n1,0.5,0.6\n2,0.25,0.3\n");

        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">mse<"));
        assert!(svg.contains(">test_mse<"));
    }

    #[test]
    fn stitch_places_grids_in_rows() {
        let grid = |level: u8| GrayImage { width: 2, height: 1, pixels: vec![level; 2] };

        let sheet = stitch(&[grid(10), grid(20), grid(30)], 2, 1);

        assert_eq!((sheet.width, sheet.height), (5, 3));
        assert_eq!(sheet.pixels[0], 10);
        assert_eq!(sheet.pixels[3], 20);
        assert_eq!(sheet.pixels[2], 96);
        assert_eq!(sheet.pixels[10], 30);
    }
}
