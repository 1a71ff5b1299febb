//! The delivery engine: claim, send (HTTP client with SSRF guard), record, schedule.

mod circuit;
mod client;
mod engine;
pub mod guard;
mod parking;
mod recorder;
mod send;

pub use engine::{Engine, Job};
