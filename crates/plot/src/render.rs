//! Drawing a [`Figure`] with plotters into an RGB buffer, encoding it as PNG, writing it
//! atomically.

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{Color as _, FontStyle, RGBAColor, register_font};

use crate::error::PlotError;
use crate::figure::{Color, Figure, Layer, Panel, Stroke};

/// DejaVu Sans (Bitstream Vera licence, `fonts/LICENSE-DejaVu.txt`): every word of every figure.
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters once per process.
fn font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded DejaVu Sans did not parse".to_string())
        })
        .clone()
        .map_err(|message| PlotError::Draw {
            title: String::new(),
            message,
        })
}

fn rgba(c: Color) -> RGBAColor {
    RGBAColor(c.r, c.g, c.b, c.alpha)
}

fn draw_err<E: Display>(title: &str) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        title: title.to_string(),
        message: e.to_string(),
    }
}

fn invalid(fig: &Figure, message: impl Into<String>) -> PlotError {
    PlotError::InvalidFigure {
        title: fig.title.clone(),
        message: message.into(),
    }
}

/// The range shown on one axis: fixed, or the data's padded by 3 % (a point range widened).
fn range(fixed: Option<(f64, f64)>, data: &[f64]) -> Range<f64> {
    if let Some((lo, hi)) = fixed {
        return lo..hi;
    }
    let lo = data.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(1.0) {
        let d = (lo.abs() * 0.05).max(0.5);
        return lo - d..hi + d;
    }
    lo - 0.03 * span..hi + 0.03 * span
}

/// Checks what plotters would otherwise draw wrongly or panic on.
fn validate(fig: &Figure) -> Result<(), PlotError> {
    if fig.panels.is_empty() {
        return Err(invalid(fig, "no panels"));
    }
    if fig.width < 200 || fig.height < 150 * fig.panels.len() as u32 {
        return Err(invalid(
            fig,
            format!(
                "{}×{} pixels is too small for {} panel(s) (at least 200 wide and 150 per panel)",
                fig.width,
                fig.height,
                fig.panels.len()
            ),
        ));
    }
    for (i, p) in fig.panels.iter().enumerate() {
        for (axis, r) in [("x", p.x.range), ("y", p.y.range)] {
            if let Some((lo, hi)) = r
                && !(lo.is_finite() && hi.is_finite() && lo < hi)
            {
                return Err(invalid(
                    fig,
                    format!("panel {i}: {axis} range {lo}..{hi} is not an increasing finite range"),
                ));
            }
        }
        for (j, l) in p.layers.iter().enumerate() {
            let (xs, ys) = l.coordinates();
            if let Some(v) = xs.iter().chain(&ys).find(|v| !v.is_finite()) {
                return Err(invalid(
                    fig,
                    format!("panel {i}, layer {j}: non-finite coordinate {v}"),
                ));
            }
        }
    }
    Ok(())
}

fn draw_panel(
    panel: &Panel,
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
) -> Result<(), PlotError> {
    let err = draw_err(title);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for l in &panel.layers {
        let (x, y) = l.coordinates();
        xs.extend(x);
        ys.extend(y);
    }
    let xr = range(panel.x.range, &xs);
    let yr = range(panel.y.range, &ys);
    let (y_lo, y_hi) = (yr.start, yr.end);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72);
    if let Some(t) = &panel.title {
        builder.caption(t, (FAMILY, 18));
    }
    let mut chart = builder.build_cartesian_2d(xr, yr).map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(panel.x.label.as_str())
        .y_desc(panel.y.label.as_str())
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .x_labels(10)
        .y_labels(8)
        .draw()
        .map_err(&err)?;
    let mut legend = false;
    for layer in &panel.layers {
        let label = layer.label().map(str::to_string);
        legend |= label.is_some();
        match layer {
            Layer::Points {
                color,
                radius,
                points,
                ..
            } => {
                let style = rgba(*color).filled();
                let r = *radius;
                let anno = chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, r, style)))
                    .map_err(&err)?;
                if let Some(l) = label {
                    let legend_style = rgba(Color {
                        alpha: 1.0,
                        ..*color
                    })
                    .filled();
                    anno.label(l)
                        .legend(move |(x, y)| Circle::new((x + 10, y), 5, legend_style));
                }
            }
            Layer::Line {
                color,
                stroke,
                markers,
                points,
                ..
            } => {
                let style = rgba(*color).stroke_width(2);
                let anno = match stroke {
                    Stroke::Dashed => chart
                        .draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, style))
                        .map_err(&err)?,
                    Stroke::Solid => chart
                        .draw_series(LineSeries::new(points.iter().copied(), style))
                        .map_err(&err)?,
                };
                if let Some(l) = label {
                    anno.label(l)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
                if *markers {
                    let fill = rgba(*color).filled();
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, fill)))
                        .map_err(&err)?;
                }
            }
            Layer::Bars { color, bars, .. } => {
                let style = rgba(*color).filled();
                let anno = chart
                    .draw_series(
                        bars.iter()
                            .map(|b| Rectangle::new([(b.x0, 0.0), (b.x1, b.height)], style)),
                    )
                    .map_err(&err)?;
                if let Some(l) = label {
                    anno.label(l).legend(move |(x, y)| {
                        Rectangle::new([(x + 4, y - 5), (x + 16, y + 5)], style)
                    });
                }
            }
            Layer::VLine {
                color, stroke, x, ..
            } => {
                let style = rgba(*color).stroke_width(2);
                let pts = [(*x, y_lo), (*x, y_hi)];
                let anno = match stroke {
                    Stroke::Dashed => chart
                        .draw_series(DashedLineSeries::new(pts, 8, 5, style))
                        .map_err(&err)?,
                    Stroke::Solid => chart
                        .draw_series(LineSeries::new(pts, style))
                        .map_err(&err)?,
                };
                if let Some(l) = label {
                    let dashed = *stroke == Stroke::Dashed;
                    anno.label(l).legend(move |(x, y)| {
                        let end = if dashed { x + 8 } else { x + 20 };
                        PathElement::new(vec![(x, y), (end, y)], style)
                    });
                }
            }
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .label_font((FAMILY, 14))
            .draw()
            .map_err(&err)?;
    }
    Ok(())
}

/// Draws `fig` and returns the PNG file's bytes.
///
/// # Errors
/// [`PlotError::InvalidFigure`] for a figure without panels, too small, or with a non-finite
/// coordinate or an empty range; [`PlotError::Draw`] / [`PlotError::Encode`] from plotters or
/// the encoder.
pub fn render_png(fig: &Figure) -> Result<Vec<u8>, PlotError> {
    validate(fig)?;
    font()?;
    let (w, h) = (fig.width, fig.height);
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let err = draw_err(&fig.title);
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let root = root.titled(&fig.title, (FAMILY, 26)).map_err(&err)?;
        let areas = root.split_evenly((fig.panels.len(), 1));
        for (panel, area) in fig.panels.iter().zip(&areas) {
            draw_panel(panel, area, &fig.title)?;
        }
        root.present().map_err(&err)?;
    }
    let mut bytes = Vec::new();
    let enc_err = |e: png::EncodingError| PlotError::Encode {
        path: Default::default(),
        message: e.to_string(),
    };
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(enc_err)?;
        wr.write_image_data(&rgb).map_err(enc_err)?;
        wr.finish().map_err(enc_err)?;
    }
    Ok(bytes)
}

/// Draws `fig` into the PNG file `path` (written atomically: complete or absent).
///
/// # Errors
/// As [`render_png`], with the path named in [`PlotError::Encode`], and
/// [`PlotError::Write`] when the file cannot be written.
pub fn write_png(fig: &Figure, path: &Path) -> Result<(), PlotError> {
    let bytes = render_png(fig).map_err(|e| match e {
        PlotError::Encode { message, .. } => PlotError::Encode {
            path: path.to_path_buf(),
            message,
        },
        other => other,
    })?;
    sae_core::atomic::write(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figure::{Axis, Bar};

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn dark_pixels(rgb: &[u8], rows: Range<usize>, width: usize) -> usize {
        rows.flat_map(|y| (0..width).map(move |x| (y * width + x) * 3))
            .filter(|&o| rgb[o] < 100 && rgb[o + 1] < 100 && rgb[o + 2] < 100)
            .count()
    }

    fn figure(title: &str) -> Figure {
        let panel = Panel::new(Axis::new("scale"), Axis::new("value"))
            .with_layer(Layer::line(
                "score",
                Color::cycle(0),
                vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
            ))
            .with_layer(Layer::bars(
                "counts",
                Color::cycle(1),
                vec![Bar {
                    x0: 0.2,
                    x1: 0.6,
                    height: 1.5,
                }],
            ))
            .with_layer(Layer::vline("chosen", Color::GREY, Stroke::Dashed, 1.0));
        Figure::new(title, vec![panel]).with_size(600, 400)
    }

    #[test]
    fn draws_text_title_and_axes() {
        let (w, h, rgb) = decode(&render_png(&figure("A title")).unwrap());
        assert_eq!((w, h), (600, 400));
        // The title band holds dark glyph pixels; an untitled figure's does not.
        let titled = dark_pixels(&rgb, 0..30, 600);
        let (_, _, blank) = decode(&render_png(&figure("")).unwrap());
        assert!(titled > 100, "{titled} dark pixels in the title band");
        assert!(dark_pixels(&blank, 0..30, 600) < titled / 10);
        // The axis labels: the bottom band carries tick labels and "scale".
        assert!(dark_pixels(&rgb, 340..400, 600) > 200);
    }

    #[test]
    fn bad_figures_are_typed_errors() {
        let mut f = figure("t");
        f.panels[0]
            .layers
            .push(Layer::points("", Color::BLACK, 2, vec![(f64::NAN, 0.0)]));
        assert!(matches!(
            render_png(&f),
            Err(PlotError::InvalidFigure { message, .. }) if message.contains("non-finite")
        ));
        let f = Figure::new("none", vec![]);
        assert!(matches!(
            render_png(&f),
            Err(PlotError::InvalidFigure { .. })
        ));
        let mut f = figure("t");
        f.panels[0].y.range = Some((1.0, 1.0));
        assert!(matches!(
            render_png(&f),
            Err(PlotError::InvalidFigure { .. })
        ));
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.png");
        write_png(&figure("t"), &p).unwrap();
        let (w, _, _) = decode(&std::fs::read(&p).unwrap());
        assert_eq!(w, 600);
    }
}
