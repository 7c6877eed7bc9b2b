//! The crate's error.

use std::path::PathBuf;

/// What can go wrong drawing a figure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// A figure that cannot be drawn: no panels, a zero size, a non-finite coordinate or range.
    #[error("figure {title:?}: {message}")]
    InvalidFigure {
        /// The figure's title.
        title: String,
        /// What is wrong with it.
        message: String,
    },
    /// plotters failed while drawing (the message is plotters' own).
    #[error("drawing figure {title:?}: {message}")]
    Draw {
        /// The figure's title.
        title: String,
        /// plotters' error.
        message: String,
    },
    /// The PNG encoder failed.
    #[error("encoding {path}: {message}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        message: String,
    },
    /// Writing the file failed (through `sae_core::atomic`, so no partial file is left).
    #[error(transparent)]
    Write(#[from] sae_core::SaeError),
}
