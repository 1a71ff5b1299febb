//! Custom payloads: Jinja templates (minijinja) rendered with the same data as the v2
//! payload. Every `{{ … }}` is written as JSON (strings quoted and escaped), so a value can
//! never break the document; text is joined with `~`. Rendering is bounded in work (fuel)
//! and in output size.

use std::{io, sync::OnceLock};

use minijinja::{value::Serde, AutoEscape, Environment};
use serde_json::{json, Value};

use crate::domain::event::Event;

pub const MAX_OUTPUT: usize = 256 * 1024;
/// Roughly the number of template instructions a render may run.
const FUEL: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The template line the problem is on, when known.
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Json);
        // `safe` would write incident data unescaped, letting it add keys to the document.
        env.remove_filter("safe");
        env.set_fuel(Some(FUEL));
        env
    })
}

/// The data a template sees: `event`, `incident`, `resource` (the note, task, … an event
/// is about; null for incident events), `organization`, `team`, `webhook`.
pub fn context(event: &Event, webhook_id: &str, webhook_name: &str) -> Value {
    json!({
        "event": {
            "id": event.payload_event_id,
            "type": event.event_type.name,
            "resource": event.event_type.resource,
            "timestamp": event.timestamp,
        },
        "incident": event.incident,
        "resource": event.resource.as_ref().map(|r| &r.value),
        "organization": event.organization,
        "team": event.team,
        "webhook": {"id": webhook_id, "name": webhook_name},
    })
}

/// `{% autoescape false %}` is the other way to write values unescaped; templates that use
/// it are refused (the source is only read, never run, for this check).
fn refuse_escape_hatches(source: &str) -> Result<(), TemplateError> {
    let mut rest = source;
    let mut line = 1;
    while let Some(start) = rest.find("{%") {
        line += rest[..start].matches('\n').count();
        let tag = rest[start + 2..]
            .trim_start_matches(['-', '+'])
            .trim_start();
        if tag.starts_with("autoescape") {
            return Err(TemplateError {
                line: Some(line),
                reason: "`autoescape` is not available: every value is written as JSON so incident data cannot change the document".into(),
            });
        }
        rest = &rest[start + 2..];
    }
    Ok(())
}

/// Renders a template; the output must be JSON of at most [`MAX_OUTPUT`] bytes.
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    refuse_escape_hatches(source)?;
    let env = environment();
    let template = env.template_from_str(source).map_err(from_minijinja)?;
    let mut out = Limited(Vec::new());
    template
        .render_captured_to(Serde(context), &mut out)
        .map_err(|e| {
            if out.0.len() >= MAX_OUTPUT {
                TemplateError {
                    line: None,
                    reason: format!("output is larger than {} KiB", MAX_OUTPUT / 1024),
                }
            } else {
                from_minijinja(e)
            }
        })?;
    let text = String::from_utf8(out.0).map_err(|_| TemplateError {
        line: None,
        reason: "output is not UTF-8".into(),
    })?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(TemplateError {
            line: None,
            reason: format!("output is not valid JSON ({e} of the output): values in {{{{ }}}} are written as JSON already, so do not put quotes around them"),
        });
    }
    Ok(text)
}

fn from_minijinja(e: minijinja::Error) -> TemplateError {
    let reason = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    TemplateError {
        line: e.line(),
        reason,
    }
}

/// Refuses writes past the output bound, which ends the render.
struct Limited(Vec<u8>);

impl io::Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            self.0.resize(MAX_OUTPUT, 0);
            return Err(io::Error::other("output limit reached"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_data_cannot_change_the_documents_structure() {
        let evil = "x\", \"admin\": true, \"y\": \"";
        let ctx = json!({"incident": {"message": evil}});
        let out = render(r#"{"text": {{ incident.message }}}"#, &ctx).unwrap();
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc.as_object().unwrap().len(), 1, "{out}");
        assert_eq!(doc["text"], evil);
        for hatch in [
            r#"{"text": "{{ incident.message|safe }}"}"#,
            r#"{"text": "{{ incident.message | safe }}"}"#,
            "{% autoescape false %}{\"text\": \"{{ incident.message }}\"}{% endautoescape %}",
            "{\"a\": 1}\n{%- autoescape false -%}{%- endautoescape -%}",
        ] {
            let err = render(hatch, &ctx).unwrap_err();
            assert!(
                err.reason.contains("safe") || err.reason.contains("autoescape"),
                "{hatch}: {err}"
            );
        }
    }

    fn ctx() -> Value {
        json!({"incident": {"message": "Disk \"full\"", "status": "triggered"}, "event": {"type": "incident.triggered"}})
    }

    #[test]
    fn values_are_written_as_json() {
        let out = render(
            r#"{"text": {{ "[" ~ incident.status ~ "] " ~ incident.message }}}"#,
            &ctx(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["text"], "[triggered] Disk \"full\"");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = render("{\n  \"a\": {{ incident.message \n}", &ctx()).unwrap_err();
        assert_eq!(
            err.line,
            Some(3),
            "the line where the unclosed block is found: {err}"
        );
        assert!(err.reason.contains("syntax"), "{err}");
    }

    #[test]
    fn output_must_be_json() {
        let err = render(r#"{"text": "{{ incident.message }}"}"#, &ctx()).unwrap_err();
        assert!(err.reason.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let loops = render(
            "[{% for i in range(100000) %}{% for j in range(100000) %}1,{% endfor %}{% endfor %}1]",
            &ctx(),
        )
        .unwrap_err();
        assert!(
            loops.reason.contains("fuel") || loops.reason.contains("KiB"),
            "{loops}"
        );
        let huge = render(r#"{{ "x" * 1000 }}"#, &ctx());
        assert!(huge.is_ok(), "a small repeat is fine: {huge:?}");
        let too_big = render(
            r#"[{% for i in range(5000) %}{{ "y" * 100 }},{% endfor %}1]"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(
            too_big.reason.contains("256 KiB") || too_big.reason.contains("fuel"),
            "{too_big}"
        );
    }
}
