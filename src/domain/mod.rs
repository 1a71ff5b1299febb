//! Pure types and rules. Nothing here performs I/O.

pub mod delivery;
pub mod event;
pub mod event_type;
pub mod field_error;
pub mod ids;
pub mod notification;
pub mod organization;
pub mod retry;
pub mod timestamp;
pub mod token;
pub mod webhook;

pub use field_error::FieldError;
pub use timestamp::Timestamp;
