//! tocsin turning a webhook off by itself — its URL answered 410 Gone, or every URL has
//! failed for `delivery.disable_after` — in one place: the webhook off with its reason,
//! its pending deliveries cancelled, an audit entry by the system and, for its failure
//! addresses, a notice, all in one transaction; then the catalog forgets its copy.

use crate::{
    catalog::Catalog,
    domain::{
        audit::{self, Actor, AuditEntry, Change},
        notification::{Notice, NoticeKind},
        webhook::Webhook,
        Timestamp,
    },
    store::{Store, StoreResult},
};

/// Turns `webhook` off because of `reason` (said about `url`, the URL concerned), at `at`;
/// `answered` names the delivery whose answer decided it (its result is being recorded, so
/// it is not cancelled), or is empty.
pub async fn disable_webhook(
    store: &dyn Store,
    catalog: &Catalog,
    webhook: &Webhook,
    url: &str,
    reason: String,
    at: Timestamp,
    answered: &str,
) -> StoreResult<()> {
    let org = &webhook.organization_id;
    let entry = AuditEntry::new(
        org,
        &Actor::system(),
        "webhook.disabled",
        audit::webhook_object(&webhook.id, &webhook.spec.name),
        vec![Change {
            field: "enabled".into(),
            before: serde_json::Value::Bool(true),
            after: serde_json::Value::Bool(false),
        }],
    );
    let notice = (!webhook.spec.mail_ids.is_empty())
        .then(|| Notice::new(org, &webhook.id, NoticeKind::Disabled, url, reason.clone()));
    store
        .disable_webhook(
            org,
            &webhook.id,
            &reason,
            at,
            &entry,
            notice.as_ref(),
            answered,
        )
        .await?;
    catalog.invalidate(org);
    Ok(())
}
