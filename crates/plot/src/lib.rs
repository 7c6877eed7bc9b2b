//! # sae-geometry-plot
//!
//! The static figures of sae-geometry's analyses (the feature-splitting map, its clusters, the
//! patch-scoping curves, the autointerp populations): PNGs a person can read, each with a title,
//! labelled axes with ticks, and a legend. A [`Figure`] is data — panels stacked top to bottom,
//! each a set of [`Layer`]s (points, lines, bars, vertical markers) — and [`write_png`] draws it
//! with [plotters](https://docs.rs/plotters)' bitmap backend and DejaVu Sans, embedded in the
//! binary, so drawing needs no system fonts and works offline. The interactive HTML versions
//! (with hover) are written by the analyses themselves.
//!
//! ```no_run
//! use sae_geometry_plot::{Axis, Color, Figure, Layer, Panel, write_png};
//! # fn main() -> Result<(), sae_geometry_plot::PlotError> {
//! let panel = Panel::new(Axis::new("scale"), Axis::new("score")).with_layer(Layer::line(
//!     "score m(s)",
//!     Color::rgb(0, 0, 0),
//!     vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.8)],
//! ));
//! write_png(&Figure::new("Patch scoping", vec![panel]), "curves.png".as_ref())?;
//! # Ok(()) }
//! ```

mod error;
mod figure;
mod render;

pub use error::PlotError;
pub use figure::{Axis, Bar, Color, Figure, Layer, Panel, Stroke};
pub use render::{render_png, write_png};
