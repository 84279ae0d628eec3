//! PNG charts with plotters, drawn with a bundled font (DejaVu Sans Mono, its licence beside
//! it in `assets/fonts/`) so that a machine without fonts still labels its axes.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::CliError;

pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

/// Registers the bundled font under the family name every chart uses.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid font; the test of the plots would catch it otherwise.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

pub fn plot_err(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Output { path: path.to_path_buf(), reason: format!("drawing the chart failed: {e}") }
}

/// One point of a latency-against-size chart.
pub struct Point {
    pub ms: f64,
    /// Millions of parameters, or GFLOP: what the chart's y axis says.
    pub y: f64,
}

/// Parameters against latency: the predicted Pareto front as a line, and the subnets that
/// were run as points at their measured latency, the chosen one ringed.
pub fn pareto_chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    front: &[Point],
    measured: &[Point],
    chosen: Option<&Point>,
    budget_ms: Option<f64>,
) -> Result<(), String> {
    register_font();
    let all = front.iter().chain(measured).chain(chosen);
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, 0f64, 0f64);
    for p in all {
        x0 = x0.min(p.ms);
        x1 = x1.max(p.ms);
        y1 = y1.max(p.y);
    }
    if let Some(b) = budget_ms {
        x0 = x0.min(b);
        x1 = x1.max(b);
    }
    if !x0.is_finite() {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    let pad = ((x1 - x0) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x0 - pad).max(0.0)..x1 + pad, 0.0..y1 * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("latency, ms")
        .y_desc(y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    if let Some(b) = budget_ms {
        chart
            .draw_series(LineSeries::new([(b, 0.0), (b, y1 * 1.1)], RED.mix(0.6).stroke_width(1)))
            .map_err(|e| e.to_string())?
            .label("budget")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    }
    if !front.is_empty() {
        chart
            .draw_series(LineSeries::new(front.iter().map(|p| (p.ms, p.y)), BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("predicted Pareto front")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(front.iter().map(|p| Circle::new((p.ms, p.y), 2, BLUE.filled())))
            .map_err(|e| e.to_string())?;
    }
    if !measured.is_empty() {
        chart
            .draw_series(measured.iter().map(|p| TriangleMarker::new((p.ms, p.y), 5, GREEN.mix(0.9).filled())))
            .map_err(|e| e.to_string())?
            .label("run: measured latency")
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 5, GREEN.filled()));
    }
    if let Some(c) = chosen {
        chart
            .draw_series([Circle::new((c.ms, c.y), 8, BLACK.stroke_width(2))])
            .map_err(|e| e.to_string())?
            .label("chosen subnet")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// An RGB canvas plotters draws into, written out as PNG through [`write_atomic`].
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Canvas { width, height, rgb: vec![255; (width * height * 3) as usize] }
    }

    /// The canvas as a plotters drawing area (white).
    pub fn area(&mut self) -> DrawingArea<BitMapBackend<'_>, plotters::coord::Shift> {
        BitMapBackend::with_buffer(&mut self.rgb, (self.width, self.height)).into_drawing_area()
    }

    pub fn png(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&self.rgb).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Writes the PNG to `path` (refusing to replace a file unless `force`).
    pub fn save(&self, path: &Path, force: bool) -> Result<(), CliError> {
        let bytes = self.png().map_err(|e| plot_err(path, e))?;
        Ok(crate::output::write_atomic(path, force, |f| std::io::Write::write_all(f, &bytes))?)
    }
}
