//! Evaluating a [`Filter`]. A missing field never satisfies a positive test (`is`, `in`,
//! `contains`, `starts_with`, `matches`, `exists`) and always satisfies a negative one.

use std::{borrow::Cow, cell::Cell};

use serde::Serialize;
use serde_json::Value;

use super::{Field, Filter, Subject, Test};

/// A regular expression looks at most at this many bytes of a field (its beginning): the
/// engine runs in linear time, so this bounds each condition's work.
pub const REGEX_SCAN: usize = 64 * 1024;

thread_local! {
    /// Bytes regular expressions may still scan in the current [`with_regex_budget`] call;
    /// `None` outside one.
    static REGEX_BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (matching for one event) with at most `bytes` of regex scanning in all, and says
/// whether that ran out. Once it has, every further `matches` condition is false (as for a
/// missing field), so an event's filter work is bounded however many webhooks and
/// conditions look at how large a field.
pub fn with_regex_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> (T, bool) {
    let previous = REGEX_BUDGET.with(|b| b.replace(Some(bytes)));
    let was = EXHAUSTED.with(|e| e.replace(false));
    let out = f();
    REGEX_BUDGET.with(|b| b.set(previous));
    let exhausted = EXHAUSTED.with(|e| e.replace(was));
    (out, exhausted)
}

/// The first [`REGEX_SCAN`] bytes of a field, cut at a character boundary.
fn scanned(value: &str) -> &str {
    if value.len() <= REGEX_SCAN {
        return value;
    }
    let mut end = REGEX_SCAN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Runs a regex within the budget, if one is set.
fn regex_matches(re: &regex::Regex, value: &str) -> bool {
    let text = scanned(value);
    let allowed = REGEX_BUDGET.with(|b| match b.get() {
        None => true,
        Some(left) if left >= text.len() => {
            b.set(Some(left - text.len()));
            true
        }
        Some(_) => {
            b.set(Some(0));
            EXHAUSTED.with(|e| e.set(true));
            false
        }
    });
    allowed && re.is_match(text)
}

pub fn matches(filter: &Filter, subject: Subject<'_>) -> bool {
    match filter {
        Filter::Group {
            all: true,
            conditions,
        } => conditions.iter().all(|c| matches(c, subject)),
        Filter::Group {
            all: false,
            conditions,
        } => conditions.iter().any(|c| matches(c, subject)),
        Filter::Condition { field, test } => check(test, resolve(field, subject).as_deref()),
    }
}

/// Which parts of a filter matched, for a filter builder that shows its effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub matched: bool,
    /// For a condition: the value the field had (`null` when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Explanation>,
}

/// Field values shown in an explanation are cut to this many characters: an incident
/// field may be large, and an explanation only needs to show what was compared.
pub const SHOWN_VALUE: usize = 200;

impl Explanation {
    /// Cuts every value to [`SHOWN_VALUE`] characters (with `…`), throughout the tree.
    pub fn shortened(mut self) -> Self {
        if let Some(Value::String(text)) = &mut self.value {
            if text.chars().count() > SHOWN_VALUE {
                *text = text.chars().take(SHOWN_VALUE).collect::<String>() + "…";
            }
        }
        self.conditions = self.conditions.into_iter().map(Self::shortened).collect();
        self
    }
}

pub fn explain(filter: &Filter, subject: Subject<'_>) -> Explanation {
    match filter {
        Filter::Group { all, conditions } => {
            let parts: Vec<Explanation> = conditions.iter().map(|c| explain(c, subject)).collect();
            let matched = if *all {
                parts.iter().all(|p| p.matched)
            } else {
                parts.iter().any(|p| p.matched)
            };
            Explanation {
                matched,
                value: None,
                conditions: parts,
            }
        }
        Filter::Condition { field, test } => {
            let value = resolve(field, subject);
            Explanation {
                matched: check(test, value.as_deref()),
                value: Some(value.map_or(Value::Null, |v| Value::String(v.into_owned()))),
                conditions: Vec::new(),
            }
        }
    }
}

fn check(test: &Test, value: Option<&str>) -> bool {
    match (test, value) {
        (Test::Exists, v) => v.is_some(),
        (Test::NotExists, v) => v.is_none(),
        (Test::IsNot(_) | Test::NotIn(_) | Test::NotContains(_), None) => true,
        (_, None) => false,
        (Test::Is(x), Some(v)) => v == x,
        (Test::IsNot(x), Some(v)) => v != x,
        (Test::In(xs), Some(v)) => xs.iter().any(|x| x == v),
        (Test::NotIn(xs), Some(v)) => !xs.iter().any(|x| x == v),
        (Test::Contains(x), Some(v)) => v.contains(x.as_str()),
        (Test::NotContains(x), Some(v)) => !v.contains(x.as_str()),
        (Test::StartsWith(x), Some(v)) => v.starts_with(x.as_str()),
        (Test::Matches(re), Some(v)) => regex_matches(re, v),
    }
}

/// The field's value as text; `None` when missing or null. Borrowed when it is a string,
/// which it almost always is: matching runs for every webhook of every event.
pub fn resolve<'a>(field: &Field, subject: Subject<'a>) -> Option<Cow<'a, str>> {
    let (root, path) = match field {
        Field::Team => {
            return (!subject.team_id.is_empty()).then_some(Cow::Borrowed(subject.team_id))
        }
        Field::Incident(path) => (subject.incident, path),
        Field::Resource(path) => (subject.resource?, path),
    };
    let mut value = root.get(&path[0])?;
    for key in &path[1..] {
        value = value.get(key)?;
    }
    // `tags.severity` is the tag's value, whether tags hold {value, color} or a string.
    if matches!(field, Field::Incident(_)) && path.len() == 2 && path[0] == "tags" {
        if let Some(inner) = value.get("value") {
            value = inner;
        }
    }
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_see_the_first_64_kib_within_a_budget() {
        let re = regex::Regex::new("needle").unwrap();
        let early = format!("needle{}", "x".repeat(REGEX_SCAN));
        let late = format!("{}needle", "x".repeat(REGEX_SCAN));
        assert!(regex_matches(&re, &early));
        assert!(!regex_matches(&re, &late), "past 64 KiB is not looked at");
        let multibyte = "é".repeat(REGEX_SCAN); // a cut inside a character is moved back
        assert!(scanned(&multibyte).len() <= REGEX_SCAN);
        // Three scans of 64 KiB fit in 200 KiB; the fourth is refused and reported.
        let (results, exhausted) = with_regex_budget(200 * 1024, || {
            (0..4)
                .map(|_| regex_matches(&re, &early))
                .collect::<Vec<_>>()
        });
        assert_eq!(results, [true, true, true, false]);
        assert!(exhausted);
        let (_, exhausted) = with_regex_budget(1 << 20, || regex_matches(&re, "needle"));
        assert!(!exhausted);
        assert!(
            regex_matches(&re, &early),
            "no budget outside with_regex_budget"
        );
    }
    use crate::filter::parse;
    use serde_json::{json, Map};

    fn incident() -> Map<String, Value> {
        json!({
            "id": "inc-1", "message": "Disk full on db-1", "status": "triggered",
            "service": {"id": "svc-db", "slug": "database"},
            "alert_source": {"id": "as-prom", "short_name": "prometheus"},
            "tags": {"severity": {"value": "critical", "color": "#f00"}, "env": "prod"},
            "assigned_to": {"type": "user", "id": "u1"},
            "priority": null,
            "event_count": 3,
            "event_payload": {"labels": {"host": "db-1"}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn eval(filter: Value) -> bool {
        let f = parse(&filter).unwrap().expect("non-empty");
        let inc = incident();
        matches(
            &f,
            Subject {
                incident: &inc,
                team_id: "team-a",
                resource: None,
            },
        )
    }

    #[test]
    fn resource_paths_look_into_the_events_resource() {
        let note =
            json!({"id": "n1", "note": "rollback started", "starred": true, "tags": {"x": "raw"}});
        let inc = incident();
        let on = |filter: Value, resource: Option<&Map<String, Value>>| {
            matches(
                &parse(&filter).unwrap().unwrap(),
                Subject {
                    incident: &inc,
                    team_id: "team-a",
                    resource,
                },
            )
        };
        let note = note.as_object().unwrap();
        assert!(on(
            cond("contains", "resource.note", json!("rollback")),
            Some(note)
        ));
        assert!(on(
            cond("is", "resource.starred", json!("true")),
            Some(note)
        ));
        assert!(
            on(cond("is", "resource.tags.x", json!("raw")), Some(note)),
            "no tag shorthand inside a resource"
        );
        assert!(
            !on(cond("exists", "resource.note", Value::Null), None),
            "incident events have none"
        );
        assert!(on(cond("not_exists", "resource.note", Value::Null), None));
        assert!(
            on(cond("is", "service", json!("svc-db")), Some(note)),
            "the incident's fields still apply"
        );
    }

    fn cond(op: &str, lhs: &str, rhs: Value) -> Value {
        let mut c = json!({"op": op, "lhs": lhs});
        if !rhs.is_null() {
            c["rhs"] = rhs;
        }
        json!({"op": "and", "conditions": [c]})
    }

    #[test]
    fn every_operator() {
        assert!(eval(cond("is", "service", json!("svc-db"))));
        assert!(!eval(cond("is", "service", json!("svc-web"))));
        assert!(eval(cond("is_not", "alert_source", json!("as-x"))));
        assert!(eval(cond(
            "in",
            "status",
            json!(["acknowledged", "triggered"])
        )));
        assert!(!eval(cond("not_in", "status", json!(["triggered"]))));
        assert!(eval(cond("contains", "message", json!("full"))));
        assert!(eval(cond("not_contains", "message", json!("cpu"))));
        assert!(eval(cond("starts_with", "service.slug", json!("data"))));
        assert!(eval(cond("matches", "message", json!("^Disk .* db-\\d$"))));
        assert!(eval(cond("exists", "assigned_to.id", Value::Null)));
        assert!(eval(cond("not_exists", "owner.id", Value::Null)));
        assert!(
            eval(cond("is", "tags.severity", json!("critical"))),
            "a tag's value"
        );
        assert!(
            eval(cond("is", "tags.env", json!("prod"))),
            "a plain string tag"
        );
        assert!(eval(cond("is", "team", json!("team-a"))));
        assert!(
            eval(cond("is", "event_count", json!("3"))),
            "numbers compare as text"
        );
        assert!(eval(cond("is", "event_payload.labels.host", json!("db-1"))));
    }

    #[test]
    fn missing_fields_fail_positive_tests_and_pass_negative_ones() {
        for (op, rhs) in [
            ("is", json!("x")),
            ("in", json!(["x"])),
            ("contains", json!("x")),
            ("starts_with", json!("x")),
            ("matches", json!("x")),
            ("exists", Value::Null),
        ] {
            assert!(
                !eval(cond(op, "owner.id", rhs.clone())),
                "{op} on a missing field"
            );
            assert!(!eval(cond(op, "priority", rhs)), "{op} on a null field");
        }
        for (op, rhs) in [
            ("is_not", json!("x")),
            ("not_in", json!(["x"])),
            ("not_contains", json!("x")),
            ("not_exists", Value::Null),
        ] {
            assert!(eval(cond(op, "owner.id", rhs)), "{op} on a missing field");
        }
    }

    #[test]
    fn nested_groups() {
        let f = json!({"op": "or", "conditions": [
            {"op": "and", "conditions": [
                {"op": "is", "lhs": "service", "rhs": "svc-web"},
                {"op": "is", "lhs": "alert_source", "rhs": "as-prom"}
            ]},
            {"op": "is", "lhs": "tags.severity", "rhs": "critical"}
        ]});
        assert!(eval(f.clone()));
        let parsed = parse(&f).unwrap().unwrap();
        let inc = incident();
        let why = explain(
            &parsed,
            Subject {
                incident: &inc,
                team_id: "",
                resource: None,
            },
        );
        assert!(why.matched);
        assert!(!why.conditions[0].matched);
        assert_eq!(why.conditions[0].conditions[0].value, Some(json!("svc-db")));
        assert!(why.conditions[1].matched);
    }

    /// A small deterministic generator, so the properties below run over thousands of
    /// filters and incidents without a property-testing dependency.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[(self.next() % items.len() as u64) as usize]
        }
    }

    const FIELDS: &[&str] = &["status", "service", "tags.severity", "owner.id", "message"];
    const VALUES: &[&str] = &["triggered", "svc-db", "critical", "o1", "Disk"];

    fn random_filter(g: &mut Gen, depth: usize) -> Value {
        if depth == 0 || g.next() % 3 == 0 {
            let op = *g.pick(&[
                "is",
                "is_not",
                "in",
                "not_in",
                "contains",
                "not_contains",
                "exists",
                "not_exists",
            ]);
            let lhs = *g.pick(FIELDS);
            let rhs = match op {
                "in" | "not_in" => json!([g.pick(VALUES), g.pick(VALUES)]),
                "exists" | "not_exists" => Value::Null,
                _ => json!(g.pick(VALUES)),
            };
            let mut c = json!({"op": op, "lhs": lhs});
            if !rhs.is_null() {
                c["rhs"] = rhs;
            }
            c
        } else {
            let n = 1 + g.next() % 3;
            let conditions: Vec<Value> = (0..n).map(|_| random_filter(g, depth - 1)).collect();
            json!({"op": g.pick(&["and", "or"]), "conditions": conditions})
        }
    }

    /// The structural negation: De Morgan for groups, the opposite operator for conditions.
    fn negate(f: &Value) -> Value {
        if let Some(conditions) = f.get("conditions").and_then(Value::as_array) {
            let op = if f["op"] == "and" { "or" } else { "and" };
            return json!({"op": op, "conditions": conditions.iter().map(negate).collect::<Vec<_>>()});
        }
        let mut c = f.clone();
        let opposite = match f["op"].as_str().unwrap() {
            "is" => "is_not",
            "is_not" => "is",
            "in" => "not_in",
            "not_in" => "in",
            "contains" => "not_contains",
            "not_contains" => "contains",
            "exists" => "not_exists",
            _ => "exists",
        };
        c["op"] = json!(opposite);
        c
    }

    fn random_incident(g: &mut Gen) -> Map<String, Value> {
        let mut m = Map::new();
        if g.next() % 4 != 0 {
            m.insert("status".into(), json!(g.pick(VALUES)));
        }
        if g.next() % 4 != 0 {
            m.insert("service".into(), json!({"id": g.pick(VALUES)}));
        }
        if g.next() % 4 != 0 {
            m.insert(
                "tags".into(),
                json!({"severity": {"value": g.pick(VALUES)}}),
            );
        }
        if g.next() % 2 == 0 {
            m.insert("owner".into(), json!({"id": g.pick(VALUES)}));
        }
        if g.next() % 4 != 0 {
            m.insert("message".into(), json!(format!("{} x", g.pick(VALUES))));
        }
        m
    }

    fn wrap(f: Value) -> Value {
        json!({"op": "and", "conditions": [f]})
    }

    #[test]
    fn property_de_morgan_and_group_identities() {
        let mut g = Gen(0x2545_F491_4F6C_DD1D);
        for _ in 0..3_000 {
            let f = random_filter(&mut g, 3);
            let h = random_filter(&mut g, 2);
            let inc = random_incident(&mut g);
            let s = Subject {
                incident: &inc,
                team_id: "t",
                resource: None,
            };
            let ev = |v: &Value| matches(&parse(&wrap(v.clone())).unwrap().unwrap(), s);
            let (a, b) = (ev(&f), ev(&h));
            assert_eq!(ev(&negate(&f)), !a, "negation of {f}");
            assert_eq!(ev(&json!({"op": "and", "conditions": [f, h]})), a && b);
            assert_eq!(ev(&json!({"op": "or", "conditions": [f, h]})), a || b);
            assert_eq!(
                ev(&json!({"op": "and", "conditions": [f]})),
                a,
                "a one-member group is its member"
            );
            let explained = explain(&parse(&wrap(f.clone())).unwrap().unwrap(), s);
            assert_eq!(explained.matched, a, "explain agrees with matches");
        }
    }
}
