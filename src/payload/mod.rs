//! What a receiver gets: Squadcast's v1 and v2 bodies, and the Standard Webhooks signature.
//! Pure functions, no I/O.

mod signature;
mod squadcast;

pub use signature::sign;
pub use squadcast::{render_v1, render_v2};

use crate::domain::{
    event::Event,
    webhook::{PayloadVersion, WebhookSpec},
};

/// The body for one webhook, rendered once per event and shared by all its URLs.
pub fn render(spec: &WebhookSpec, event: &Event) -> String {
    let body = match spec.version {
        PayloadVersion::V2 => render_v2(event),
        PayloadVersion::V1 => render_v1(event),
    };
    serde_json::to_string(&body).expect("JSON values always serialize")
}
