//! What a source received and what each payload became, kept for a person debugging a
//! connection (the newest [`RECEIPTS_KEPT`] per source).

use crate::domain::{ids::SourceId, Timestamp};

/// A source's receipts kept: the newest this many.
pub const RECEIPTS_KEPT: usize = 100;
/// A receipt keeps at most this much of the body it records.
pub const RECEIPT_BODY_MAX: usize = 16 * 1024;

/// How a received payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// At least one event was stored.
    Accepted,
    /// Read, understood, and nothing to send (a re-notification, a type tocsin does not map).
    Ignored,
    /// Not taken: a wrong credential, a body of another shape, too large, a bad signature.
    Refused,
}

impl ReceiptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptOutcome::Accepted => "accepted",
            ReceiptOutcome::Ignored => "ignored",
            ReceiptOutcome::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Accepted, Self::Ignored, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One payload a source received and what it became.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub id: String,
    pub source_id: SourceId,
    pub received_at: Timestamp,
    pub outcome: ReceiptOutcome,
    /// The HTTP status answered.
    pub status: u16,
    /// One line per thing it became: `incident.triggered evt_… (incident 3f…)`,
    /// `ignored: a re-notification of a firing group`, or the refusal.
    pub results: Vec<String>,
    /// The event ids stored.
    pub event_ids: Vec<String>,
    /// The body as received, cut at [`RECEIPT_BODY_MAX`] bytes (on a character boundary).
    pub body: String,
    /// Whether `body` was cut.
    pub truncated: bool,
}

impl Receipt {
    pub fn new(
        source_id: &SourceId,
        outcome: ReceiptOutcome,
        status: u16,
        results: Vec<String>,
        event_ids: Vec<String>,
        body: &[u8],
    ) -> Self {
        // PostgreSQL's text cannot hold NUL: a body with one would cost its whole batch.
        let text = String::from_utf8_lossy(body).replace('\0', "\u{FFFD}");
        let (body, truncated) = cut(&text, RECEIPT_BODY_MAX);
        Receipt {
            id: crate::domain::ids::new_id("rcp"),
            source_id: source_id.clone(),
            received_at: Timestamp::now(),
            outcome,
            status,
            results,
            event_ids,
            body,
            truncated,
        }
    }
}

/// Of receipts in the order received, those worth writing: the newest [`RECEIPTS_KEPT`] of
/// each source, in order. The older ones would be forgotten in the same transaction, and a
/// source taking thousands of payloads a second would write and delete every one.
pub fn worth_writing(receipts: &[Receipt]) -> Vec<&Receipt> {
    let mut left: std::collections::HashMap<&SourceId, usize> = std::collections::HashMap::new();
    let mut newest_first: Vec<&Receipt> = receipts
        .iter()
        .rev()
        .filter(|r| {
            let left = left.entry(&r.source_id).or_insert(RECEIPTS_KEPT);
            let keep = *left > 0;
            *left = left.saturating_sub(1);
            keep
        })
        .collect();
    newest_first.reverse();
    newest_first
}

/// `text` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// A source's receipts counted per outcome for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub accepted: u64,
    pub ignored: u64,
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_kept_of_each_source_are_written() {
        let receipt = |source: &str, n: usize| {
            Receipt::new(
                &SourceId::from(source),
                ReceiptOutcome::Accepted,
                202,
                vec![n.to_string()],
                Vec::new(),
                b"{}",
            )
        };
        let mut batch: Vec<Receipt> = (0..RECEIPTS_KEPT + 30).map(|n| receipt("a", n)).collect();
        batch.insert(10, receipt("b", 0));
        batch.push(receipt("b", 1));
        let written = worth_writing(&batch);
        let of = |source: &str| -> Vec<&str> {
            written
                .iter()
                .filter(|r| r.source_id.as_str() == source)
                .map(|r| r.results[0].as_str())
                .collect()
        };
        let a = of("a");
        assert_eq!(a.len(), RECEIPTS_KEPT);
        assert_eq!(a[0], "30", "the oldest 30 of a are not written");
        assert_eq!(a[RECEIPTS_KEPT - 1], (RECEIPTS_KEPT + 29).to_string());
        assert_eq!(of("b"), ["0", "1"], "a quiet source keeps all, in order");
        let positions: Vec<usize> = written
            .iter()
            .map(|w| batch.iter().position(|r| r.id == w.id).unwrap())
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "received order");
    }
}
