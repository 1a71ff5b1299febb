//! The generic source's mapping expressions: Jinja expressions (minijinja, the template
//! engine of custom payloads) over the received JSON as `payload`, such as
//! `payload.alert.id` or `"resolved" if payload.state == "ok" else "triggered"`.
//! Evaluation is bounded in work (fuel), like templates.

use std::sync::OnceLock;

use minijinja::{value::Serde, Environment};
use serde_json::Value;

pub const MAX_EXPRESSION: usize = 1000;
const FUEL: u64 = 20_000;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env
    })
}

/// Whether `text` is an expression: the error says what is wrong, for a field error.
pub fn check(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > MAX_EXPRESSION {
        return Err(format!("must be at most {MAX_EXPRESSION} characters"));
    }
    environment()
        .compile_expression(text)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "is not an expression: {}",
                e.detail().unwrap_or(&e.to_string())
            )
        })
}

/// The value of `text` over `payload`; `Null` where it names nothing (an absent field).
pub fn evaluate(text: &str, payload: &Value) -> Result<Value, String> {
    let expr = environment()
        .compile_expression(text)
        .map_err(|e| format!("is not an expression: {e}"))?;
    let out = expr
        .eval(minijinja::context! { payload => Serde(payload) })
        .map_err(|e| {
            e.detail()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())
        })?;
    if out.is_undefined() || out.is_none() {
        return Ok(Value::Null);
    }
    serde_json::to_value(&out).map_err(|e| e.to_string())
}

/// The value as text for an id, status or message: strings as they are, numbers and
/// booleans written out, `None` for null or empty.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_read_the_payload() {
        let p = json!({"alert": {"id": 7, "state": "ok"}, "title": "Disk"});
        assert_eq!(evaluate("payload.alert.id", &p).unwrap(), json!(7));
        assert_eq!(
            evaluate(
                r#""resolved" if payload.alert.state == "ok" else "triggered""#,
                &p
            )
            .unwrap(),
            json!("resolved")
        );
        assert_eq!(evaluate("payload.missing", &p).unwrap(), Value::Null);
        assert_eq!(
            evaluate("payload.title ~ \"!\"", &p).unwrap(),
            json!("Disk!")
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(check("payload.")
            .unwrap_err()
            .contains("is not an expression"));
        assert!(check("").is_err());
        assert!(check(&"a".repeat(MAX_EXPRESSION + 1)).is_err());
        assert!(check("payload.a.b").is_ok());
    }

    #[test]
    fn runaway_expressions_stop() {
        let p = json!({});
        let err = evaluate("range(100000) | join(',')", &p).unwrap_err();
        assert!(!err.is_empty());
    }
}
