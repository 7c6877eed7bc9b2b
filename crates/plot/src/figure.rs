//! A figure as data: panels of layers, with the words a reader needs (title, axis labels, legend
//! entries).

/// An sRGB colour with an opacity in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Opacity: 1 opaque, 0 invisible.
    pub alpha: f64,
}

impl Color {
    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self {
            r,
            g,
            b,
            alpha: 1.0,
        }
    }

    /// A colour with opacity `alpha`.
    pub const fn rgba(r: u8, g: u8, b: u8, alpha: f64) -> Self {
        Self { r, g, b, alpha }
    }

    /// Black.
    pub const BLACK: Self = Self::rgb(0, 0, 0);
    /// The grey of "other" things (noise points, the narrowest SAE).
    pub const GREY: Self = Self::rgb(170, 170, 170);

    /// The colour of series `i` in matplotlib's default cycle ("tab10").
    pub const fn cycle(i: usize) -> Self {
        const TAB10: [(u8, u8, u8); 10] = [
            (31, 119, 180),
            (255, 127, 14),
            (44, 160, 44),
            (214, 39, 40),
            (148, 103, 189),
            (140, 86, 75),
            (227, 119, 194),
            (127, 127, 127),
            (188, 189, 34),
            (23, 190, 207),
        ];
        let (r, g, b) = TAB10[i % 10];
        Self::rgb(r, g, b)
    }
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stroke {
    /// A continuous line.
    #[default]
    Solid,
    /// Dashes.
    Dashed,
}

/// One axis: its label and, optionally, a fixed range (otherwise the data's, padded).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The label written along the axis.
    pub label: String,
    /// The range shown; `None`: the data's range with 3 % padding (bars always include 0).
    pub range: Option<(f64, f64)>,
}

impl Axis {
    /// An axis labelled `label`, ranged by the data.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            range: None,
        }
    }

    /// The same axis with a fixed range.
    pub fn with_range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
}

/// One bar of a histogram: from `x0` to `x1`, from 0 to `height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Height (from 0).
    pub height: f64,
}

/// What a panel draws. A layer with a non-empty label gets a legend entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Layer {
    /// Filled discs.
    Points {
        /// Legend entry ("" for none).
        label: String,
        /// Fill.
        color: Color,
        /// Radius in pixels.
        radius: u32,
        /// The points.
        points: Vec<(f64, f64)>,
    },
    /// A polyline through the points in order.
    Line {
        /// Legend entry ("" for none).
        label: String,
        /// Colour.
        color: Color,
        /// Solid or dashed.
        stroke: Stroke,
        /// Also mark each point with a disc.
        markers: bool,
        /// The points.
        points: Vec<(f64, f64)>,
    },
    /// Rectangles from 0 up.
    Bars {
        /// Legend entry ("" for none).
        label: String,
        /// Fill.
        color: Color,
        /// The bars.
        bars: Vec<Bar>,
    },
    /// A vertical line across the panel at `x` (a mean, a floor, a chosen value).
    VLine {
        /// Legend entry ("" for none).
        label: String,
        /// Colour.
        color: Color,
        /// Solid or dashed.
        stroke: Stroke,
        /// Where.
        x: f64,
    },
}

impl Layer {
    /// Filled discs of radius `radius` pixels.
    pub fn points(
        label: impl Into<String>,
        color: Color,
        radius: u32,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Self::Points {
            label: label.into(),
            color,
            radius,
            points,
        }
    }

    /// A solid line with a disc at each point.
    pub fn line(label: impl Into<String>, color: Color, points: Vec<(f64, f64)>) -> Self {
        Self::Line {
            label: label.into(),
            color,
            stroke: Stroke::Solid,
            markers: true,
            points,
        }
    }

    /// Histogram bars.
    pub fn bars(label: impl Into<String>, color: Color, bars: Vec<Bar>) -> Self {
        Self::Bars {
            label: label.into(),
            color,
            bars,
        }
    }

    /// A vertical marker line.
    pub fn vline(label: impl Into<String>, color: Color, stroke: Stroke, x: f64) -> Self {
        Self::VLine {
            label: label.into(),
            color,
            stroke,
            x,
        }
    }

    /// Its legend entry, if any.
    pub fn label(&self) -> Option<&str> {
        let l = match self {
            Self::Points { label, .. }
            | Self::Line { label, .. }
            | Self::Bars { label, .. }
            | Self::VLine { label, .. } => label,
        };
        (!l.is_empty()).then_some(l.as_str())
    }

    /// Its data coordinates (for ranges and validation).
    pub(crate) fn coordinates(&self) -> (Vec<f64>, Vec<f64>) {
        match self {
            Self::Points { points, .. } | Self::Line { points, .. } => {
                points.iter().copied().unzip()
            }
            Self::Bars { bars, .. } => {
                let xs = bars.iter().flat_map(|b| [b.x0, b.x1]).collect();
                let ys = bars.iter().flat_map(|b| [0.0, b.height]).collect();
                (xs, ys)
            }
            Self::VLine { x, .. } => (vec![*x], Vec::new()),
        }
    }
}

/// One chart: axes, an optional title above it, and its layers drawn in order (later on top).
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the chart (the figure has its own).
    pub title: Option<String>,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// What it draws, bottom first.
    pub layers: Vec<Layer>,
}

impl Panel {
    /// An empty panel with these axes.
    pub fn new(x: Axis, y: Axis) -> Self {
        Self {
            title: None,
            x,
            y,
            layers: Vec::new(),
        }
    }

    /// The same panel with a title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The same panel with one more layer on top.
    pub fn with_layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }
}

/// A titled figure of panels stacked top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The title at the top.
    pub title: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The panels, top first.
    pub panels: Vec<Panel>,
}

impl Figure {
    /// A figure of `panels`, 1200 pixels wide, 900 tall for one panel and 360 per panel for more.
    pub fn new(title: impl Into<String>, panels: Vec<Panel>) -> Self {
        let height = match panels.len() {
            0 | 1 => 900,
            n => 60 + 360 * n as u32,
        };
        Self {
            title: title.into(),
            width: 1200,
            height,
            panels,
        }
    }

    /// The same figure at another size.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }
}
