//! Runnable examples of the workspace, and the incident demo (`cargo run -p examples --bin
//! demo`), organised as a library so that each incident is one module.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), examples::demo::DemoError> {
//! examples::demo::run().await
//! # }
//! ```
#![warn(missing_docs)]

pub mod demo;
