//! Event sources: what alerting and incident tools post, read by a pure reader per kind
//! (`kinds/`), decided against each incident's state (`state.rs`, `translate.rs`), then
//! stored through intake like `POST /v3/events`. Above `intake`, never inside it.

pub mod cache;
pub mod change;
pub mod credential;
pub mod kinds;
pub mod manage;
pub mod receive;
pub mod recorder;
pub mod state;
pub mod state_reads;
#[cfg(test)]
pub(crate) mod testing;
pub mod translate;
pub mod view;
