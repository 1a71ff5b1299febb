//! JSON text kept exactly as a producer wrote it. A parsed `serde_json::Value` holds numbers
//! as 64-bit values (`123456789012345678901234567890` would come back as
//! `1.2345678901234568e+29`, `1E2` as `100.0`) and re-escapes strings; payloads promise
//! the incident unchanged, so they are written from this text instead. Only the whitespace
//! between tokens is dropped, so every payload is compact whatever the producer sent.

use serde::{
    de::{MapAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};
use serde_json::value::RawValue;

/// Valid JSON text without insignificant whitespace.
#[derive(Debug, Clone)]
pub struct JsonText(Box<RawValue>);

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl JsonText {
    /// The text of `raw` as written, whitespace between tokens removed.
    pub fn exact(raw: &RawValue) -> Self {
        let text = compact(raw.get());
        Self(RawValue::from_string(text).expect("removing whitespace keeps JSON valid"))
    }

    /// `text` as written, whitespace between tokens removed; `None` when it is not JSON
    /// (tests: code reads exact texts as `RawValue`s and uses [`JsonText::exact`]).
    #[cfg(test)]
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str::<&RawValue>(text)
            .ok()
            .map(Self::exact)
    }

    /// Text for a value that was never text (built in code or read without its text).
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(serde_json::value::to_raw_value(value).expect("JSON values always serialize"))
    }

    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The members of an object in their order, each value as its exact text; empty when
    /// the text is not an object.
    pub fn members(&self) -> Vec<(String, &RawValue)> {
        serde_json::from_str::<Members<'_>>(self.0.get())
            .map(|m| m.0)
            .unwrap_or_default()
    }
}

/// Removes the whitespace outside strings. The input is valid JSON (it came from a
/// `RawValue`), so a quote toggles "in a string" unless it is escaped.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// A JSON number that is a whole number, written as an integer (`3`) or not (`3.0`, `3e0`):
/// JSON Schema's `integer` takes both, so the API does too. `None` for anything else.
pub fn whole_number(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let f = value.as_f64()?;
        // Beyond ±2^53 a float no longer holds every whole number exactly.
        (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).then_some(f as i64)
    })
}

/// `parse(text)`, except that a number no 64-bit float holds (`1e400`, valid JSON) is read
/// as a string of its text: the value filters and templates see; what passes through to
/// receivers is the text as sent.
pub fn parse_with_huge_numbers<T>(
    text: &[u8],
    parse: impl Fn(&[u8]) -> serde_json::Result<T>,
) -> serde_json::Result<T> {
    parse(text).or_else(|e| match huge_numbers_as_strings(text) {
        Some(tamed) if e.to_string().starts_with("number out of range") => parse(&tamed),
        _ => Err(e),
    })
}

/// `text` with every number too large for a 64-bit float (`1e400`, a 400-digit integer)
/// written as a string of itself, so it can be parsed into a `Value` for filters and
/// templates; payloads are still written from the original text. `None` when there is no
/// such number.
fn huge_numbers_as_strings(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = text[i..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(text.len(), |n| i + n);
            let number = &text[i..end];
            let huge = std::str::from_utf8(number)
                .ok()
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if huge {
                out.push(b'"');
                out.extend_from_slice(number);
                out.push(b'"');
                changed = true;
            } else {
                out.extend_from_slice(number);
            }
            i = end;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        use serde_json::json;
        for (value, whole) in [
            (json!(3), Some(3)),
            (json!(3.0), Some(3)),
            (json!(-2.0), Some(-2)),
            (json!(209811.0), Some(209811)),
            (json!(3.5), None),
            (json!("3"), None),
            (json!(1e300), None),
            (json!(null), None),
        ] {
            assert_eq!(whole_number(&value), whole, "{value}");
        }
    }

    fn exact(text: &str) -> JsonText {
        JsonText::exact(serde_json::from_str::<&RawValue>(text).unwrap())
    }

    #[test]
    fn numbers_and_escapes_are_kept_and_whitespace_dropped() {
        let text = exact(
            "{ \"big\" : 123456789012345678901234567890,\n\t\"e\": 1E2, \"f\": -0.10,\r\n \
             \"s\": \"a \\\" b\\\\\", \"u\": \"\\u00e9 x\", \"a\": [ 1 , { } ] }",
        );
        assert_eq!(
            text.as_str(),
            r#"{"big":123456789012345678901234567890,"e":1E2,"f":-0.10,"s":"a \" b\\","u":"\u00e9 x","a":[1,{}]}"#
        );
    }

    #[test]
    fn only_numbers_past_a_float_become_strings() {
        let text = br#"{"a": 1e400, "b": -1E+400, "s": "1e400 \" 2e999", "c": [1.5, 12, 1e308]}"#;
        let out = huge_numbers_as_strings(text).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": "1e400", "b": "-1E+400", "s": "1e400 \" 2e999", "c": [1.5, 12, 1e308]}"#
        );
        let digits = format!("[{}]", "9".repeat(400));
        let out = huge_numbers_as_strings(digits.as_bytes()).unwrap();
        assert_eq!(out, format!("[\"{}\"]", "9".repeat(400)).into_bytes());
        assert_eq!(
            huge_numbers_as_strings(br#"{"a": 1e308, "b": "1e400"}"#),
            None
        );
    }

    #[test]
    fn members_come_in_order_with_their_exact_text() {
        let text = exact(r#"{"z": 1E2, "a": {"n": 0.50}, "m\n": "x"}"#);
        let members: Vec<(String, &str)> = text
            .members()
            .into_iter()
            .map(|(k, v)| (k, v.get()))
            .collect();
        assert_eq!(
            members,
            [
                ("z".to_owned(), "1E2"),
                ("a".to_owned(), r#"{"n":0.50}"#),
                ("m\n".to_owned(), r#""x""#)
            ]
        );
        assert!(exact("[1]").members().is_empty());
    }

    #[test]
    fn text_from_a_value_is_its_serialization() {
        let value = serde_json::json!({"b": 1, "a": [true, null]});
        assert_eq!(
            JsonText::from_value(&value).as_str(),
            r#"{"b":1,"a":[true,null]}"#
        );
    }
}
