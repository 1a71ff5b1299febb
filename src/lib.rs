//! tocsin: outgoing webhooks for incident events, compatible with Squadcast's.
//!
//! Dependencies run one way (DESIGN.md §4): `domain` is pure; `store` and `http` use it;
//! only `app` wires concrete pieces together; `main.rs` just calls `cli`.

pub mod accounts;
pub mod app;
pub mod background;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod directory;
pub mod disabling;
pub mod dispatch;
pub mod domain;
pub mod filter;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod notify;
pub mod payload;
pub mod secret_key;
pub mod sends;
pub mod sources;
pub mod store;
pub mod webhook_check;
pub mod webhooks;
