//! One integration-test binary: the real server on 127.0.0.1:0, over HTTP, against a fresh
//! SQLite file and, where TEST_POSTGRES_URL is set, a fresh PostgreSQL database.

mod helpers;

mod auth;
mod cli;
mod cluster;
mod delivery;
mod guarantees;
mod notifications;
mod openapi;
mod pages;
mod people;
mod secrets;
mod server_limits;
mod shaping;
mod source_pages;
mod sources;
mod sources_live;
mod store_conformance;
mod store_queue;
mod tls;
mod ui_forms;
mod webhooks;
