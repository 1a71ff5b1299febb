//! What an event must have for a filter to match it at all, as keys a catalog can look up
//! by value (pure): matching then evaluates only the webhooks whose keys the event has,
//! instead of every webhook of the organization.
//!
//! A guard is necessary, never sufficient: the filter is still evaluated on every webhook
//! a key brings up. `None` is "any event may match" — what no key can tell: a negative
//! test (satisfied by a missing field), `contains`, a regular expression not anchored at
//! the start, an `and` group with no such condition, an `or` group with one branch
//! without a key.

use regex_syntax::hir::{
    literal::{ExtractKind, Extractor},
    Look,
};

use super::{Field, Filter, Test};

/// A value a field must have, or begin with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Is(Field, String),
    StartsWith(Field, String),
}

/// One key of a guard, and whether having it is enough for the whole filter to match
/// (`service is a` alone, or one branch of an `or`): matching then needs no evaluation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Guarded {
    pub key: Key,
    pub proves: bool,
}

/// An event can match `filter` only if it has one of these keys (`Some(vec![])`: nothing
/// matches, an empty `or`); `None`: any event may match.
pub fn guard(filter: &Filter) -> Option<Vec<Guarded>> {
    match filter {
        Filter::Condition { field, test } => condition(field, test),
        // Every branch is needed: the one with the fewest keys is the sharpest. With more
        // than one branch, no key proves the others.
        Filter::Group {
            all: true,
            conditions,
        } => {
            let keys = conditions.iter().filter_map(guard).min_by_key(Vec::len)?;
            Some(if conditions.len() == 1 {
                keys
            } else {
                keys.into_iter()
                    .map(|g| Guarded { proves: false, ..g })
                    .collect()
            })
        }
        // Any branch may match: each must have keys, and the guard is all of them.
        Filter::Group {
            all: false,
            conditions,
        } => {
            let mut keys = Vec::new();
            for branch in conditions {
                keys.extend(guard(branch)?);
            }
            // A key that proves one branch proves the group, whatever another says of it.
            keys.sort_by(|a, b| a.key.cmp(&b.key).then(b.proves.cmp(&a.proves)));
            keys.dedup_by(|later, first| later.key == first.key);
            Some(keys)
        }
    }
}

fn condition(field: &Field, test: &Test) -> Option<Vec<Guarded>> {
    let proving = |key: Key| Guarded { key, proves: true };
    match test {
        Test::Is(value) => Some(vec![proving(Key::Is(field.clone(), value.clone()))]),
        Test::In(values) => Some(
            values
                .iter()
                .map(|v| proving(Key::Is(field.clone(), v.clone())))
                .collect(),
        ),
        // An empty prefix is any value: a key would only hide that the field must exist.
        Test::StartsWith(prefix) if !prefix.is_empty() => Some(vec![proving(Key::StartsWith(
            field.clone(),
            prefix.clone(),
        ))]),
        // The rest of the expression must still be run.
        Test::Matches(re) => anchored_prefixes(re.as_str()).map(|prefixes| {
            prefixes
                .into_iter()
                .map(|p| Guarded {
                    key: Key::StartsWith(field.clone(), p),
                    proves: false,
                })
                .collect()
        }),
        _ => None,
    }
}

/// The texts every match of a regular expression anchored at the start (`^…`) begins with,
/// when there are finitely many and none is empty.
fn anchored_prefixes(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() {
        return None;
    }
    literals
        .iter()
        .map(|l| {
            let text = std::str::from_utf8(l.as_bytes()).ok()?;
            (!text.is_empty()).then(|| text.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(filter: serde_json::Value) -> Filter {
        crate::filter::parse(&filter).unwrap().unwrap()
    }

    fn service(id: &str, proves: bool) -> Guarded {
        Guarded {
            key: Key::Is(
                Field::Incident(vec!["service".into(), "id".into()]),
                id.into(),
            ),
            proves,
        }
    }

    #[test]
    fn equality_and_lists_are_keys() {
        let f = parsed(json!({"op": "and", "conditions": [
            {"op": "in", "lhs": "service", "rhs": ["a", "b"]}]}));
        assert_eq!(
            guard(&f),
            Some(vec![service("a", true), service("b", true)])
        );
    }

    #[test]
    fn an_and_group_takes_its_sharpest_branch_and_an_or_group_needs_all() {
        let and = parsed(json!({"op": "and", "conditions": [
            {"op": "in", "lhs": "service", "rhs": ["a", "b"]},
            {"op": "is", "lhs": "service", "rhs": "c"},
            {"op": "contains", "lhs": "message", "rhs": "x"}]}));
        assert_eq!(
            guard(&and),
            Some(vec![service("c", false)]),
            "needed, not enough"
        );
        let or = parsed(json!({"op": "or", "conditions": [
            {"op": "is", "lhs": "service", "rhs": "a"},
            {"op": "contains", "lhs": "message", "rhs": "x"}]}));
        assert_eq!(
            guard(&or),
            None,
            "a branch without keys lets anything through"
        );
        let or = parsed(json!({"op": "or", "conditions": [
            {"op": "is", "lhs": "service", "rhs": "a"},
            {"op": "and", "conditions": [
                {"op": "is", "lhs": "service", "rhs": "a"},
                {"op": "contains", "lhs": "message", "rhs": "x"}]},
            {"op": "and", "conditions": [
                {"op": "is", "lhs": "service", "rhs": "b"},
                {"op": "contains", "lhs": "message", "rhs": "x"}]}]}));
        assert_eq!(
            guard(&or),
            Some(vec![service("a", true), service("b", false)]),
            "a key proving one branch proves the group"
        );
    }

    #[test]
    fn negative_and_open_tests_have_no_keys() {
        for op in ["is_not", "not_in", "contains", "not_contains"] {
            let rhs = if op.ends_with("in") {
                json!(["a"])
            } else {
                json!("a")
            };
            let f = parsed(json!({"op": "and", "conditions": [
                {"op": op, "lhs": "service", "rhs": rhs}]}));
            assert_eq!(guard(&f), None, "{op}");
        }
    }

    #[test]
    fn anchored_regexes_give_their_prefixes() {
        let message = |p: &str| Guarded {
            key: Key::StartsWith(Field::Incident(vec!["message".into()]), p.into()),
            proves: false,
        };
        let f = parsed(json!({"op": "and", "conditions": [
            {"op": "matches", "lhs": "message", "rhs": "^db-4[12][^0-9]"}]}));
        assert_eq!(guard(&f), Some(vec![message("db-41"), message("db-42")]));
        for pattern in ["db-42", "^(a|.*)x", "^.", "(?m)^db"] {
            let f = parsed(json!({"op": "and", "conditions": [
                {"op": "matches", "lhs": "message", "rhs": pattern}]}));
            assert_eq!(guard(&f), None, "{pattern}");
        }
    }
}
