//! SAE training, SAELens-style: standard (ReLU + decoder-norm-weighted L1), TopK and BatchTopK,
//! Adam with warm-up and decay, dead-latent tracking, checkpoints that resume, and a family of
//! widths trained from the same batches in one pass over the data.

mod active;
pub mod config;
pub mod family;
pub mod run;
pub mod step;
pub mod trainer;

pub use config::{TrainArchitecture, TrainConfig};
pub use family::{FamilyOptions, FamilyRequest, start_or_resume_family, train_family};
pub use run::{TrainEval, TrainRun, TrainRunConfig, TrainedSae, train_from_cache};
pub use trainer::{StepMetrics, Trainer};
