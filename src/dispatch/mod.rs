//! The delivery engine: claim, send (HTTP client with SSRF guard), record, schedule.
//! `engine.rs` starts the parts and `shared.rs` holds what they share; `attempt.rs` starts
//! deliveries and carries each from its turn to its result, `poller.rs` claims what intake
//! did not hand over, `cluster.rs` keeps the URLs' circuits in line across nodes,
//! `send_now.rs` sends tests by hand; every decision about a URL is `book.rs`'s (with
//! `circuit.rs`), pure and tested with explicit times.

mod attempt;
mod book;
mod circuit;
mod client;
mod cluster;
mod engine;
pub mod guard;
mod job;
mod poller;
mod recorder;
mod send;
mod send_now;
mod shared;
mod wakeup;

pub use engine::Engine;
pub use job::{Job, SentNow};
