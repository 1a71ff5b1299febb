//! Pure types and rules. Nothing here performs I/O.

pub mod audit;
pub mod clock;
pub mod delivery;
pub mod directory;
pub mod event;
pub mod event_type;
pub mod field_error;
pub mod ids;
pub mod json_text;
pub mod login_throttle;
pub mod notification;
pub mod organization;
pub mod password;
pub mod rate_limit;
pub mod retry;
pub mod sealing;
pub mod session;
pub mod source;
pub mod text;
pub mod timestamp;
pub mod token;
pub mod user;
pub mod webhook;

pub use field_error::FieldError;
pub use timestamp::Timestamp;
