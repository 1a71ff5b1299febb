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
