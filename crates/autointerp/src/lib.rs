//! # autointerp
//!
//! Not implemented yet (issue 8). This crate will hold the tutorial's explanation generation and
//! detection scoring through an OpenAI-compatible API, with retries, caching and resumption.
