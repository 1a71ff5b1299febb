//! The delivery engine: claim, send (HTTP client with SSRF guard), record, schedule.

mod book;
mod circuit;
mod client;
mod engine;
pub mod guard;
mod recorder;
mod send;
mod wakeup;

pub use engine::{Engine, Job, SentNow};
