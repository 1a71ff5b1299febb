//! HTML form bodies (`application/x-www-form-urlencoded`).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
    response::Response,
};

use crate::http::{auth::authenticate, AppState};

/// The fields of a submitted form, in order. Field names are the API's (`urls[0].url`),
/// so a repeated or indexed name is kept as sent.
pub struct FormBody(pub Vec<(String, String)>);

impl FormBody {
    /// The first value of a field; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for FormBody {
    /// A page saying nothing was saved, and why (a person sent the form), with their
    /// navigation as on every page.
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let refused = |status, text: String| async move {
            let caller = authenticate(&headers, state).await.ok().flatten();
            super::message(
                status,
                caller.as_ref(),
                "Nothing was saved",
                &text,
                Some(("/", "Overview")),
            )
        };
        let bytes = match Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return Err(refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form was larger than tocsin accepts. Shorten what was typed and send it again."
                        .to_owned(),
                )
                .await)
            }
        };
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        if let Some((name, _)) = fields
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!("The field {name:?} {}.", crate::http::extract::HOLDS_NUL),
            )
            .await);
        }
        Ok(FormBody(fields))
    }
}

/// A form's fields as a tree: `urls[1].method` and `filters.conditions[0].lhs` become
/// nested objects and lists, so one page form maps onto the API's JSON by field name.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// A name sent more than once (checkboxes).
    Many(Vec<String>),
    Object(Vec<(String, Node)>),
    /// By index as sent; rows removed in the browser leave gaps, which do not matter.
    List(std::collections::BTreeMap<usize, Node>),
}

/// At most this many segments in a field name, and this many fields: a form is small.
const MAX_SEGMENTS: usize = 32;
const MAX_FIELDS: usize = 5000;

enum Segment {
    Key(String),
    Index(usize),
}

fn segments(name: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in name.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && out.is_empty() {
            return None;
        }
        if !key.is_empty() {
            out.push(Segment::Key(key.to_owned()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            out.push(Segment::Index(
                inner[..end].parse().ok().filter(|i| *i < 10_000)?,
            ));
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (out.len() <= MAX_SEGMENTS).then_some(out)
}

impl Node {
    pub fn tree(pairs: &[(String, String)]) -> Node {
        let mut root = Node::Object(Vec::new());
        for (name, value) in pairs.iter().take(MAX_FIELDS) {
            if let Some(path) = segments(name) {
                root.insert(&path, value.clone());
            }
        }
        root
    }

    fn insert(&mut self, path: &[Segment], value: String) {
        let Some((first, rest)) = path.split_first() else {
            match self {
                Node::Text(old) => *self = Node::Many(vec![std::mem::take(old), value]),
                Node::Many(all) => all.push(value),
                _ => *self = Node::Text(value),
            }
            return;
        };
        let child = match first {
            Segment::Key(key) => {
                if !matches!(self, Node::Object(_)) {
                    *self = Node::Object(Vec::new());
                }
                let Node::Object(members) = self else {
                    unreachable!()
                };
                let i = match members.iter().position(|(k, _)| k == key) {
                    Some(i) => i,
                    None => {
                        members.push((key.clone(), Node::Object(Vec::new())));
                        members.len() - 1
                    }
                };
                &mut members[i].1
            }
            Segment::Index(index) => {
                if !matches!(self, Node::List(_)) {
                    *self = Node::List(Default::default());
                }
                let Node::List(items) = self else {
                    unreachable!()
                };
                items.entry(*index).or_insert(Node::Object(Vec::new()))
            }
        };
        child.insert(rest, value);
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a field (the first, if sent more than once); empty when absent.
    pub fn text(&self, key: &str) -> &str {
        match self.get(key) {
            Some(Node::Text(t)) => t,
            Some(Node::Many(all)) => all.first().map_or("", String::as_str),
            _ => "",
        }
    }

    /// Every value of a repeated field.
    pub fn texts(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Node::Text(t)) => vec![t.as_str()],
            Some(Node::Many(all)) => all.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The rows of a list field, in index order.
    pub fn rows(&self, key: &str) -> Vec<&Node> {
        match self.get(key) {
            Some(Node::List(items)) => items.values().collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_become_nested_objects_and_lists() {
        let tree = Node::tree(&pairs(&[
            ("name", "ops"),
            ("urls[3].url", "https://a"),
            ("urls[3].method", "PUT"),
            ("urls[0].url", "https://b"),
            ("triggers", "incident.triggered"),
            ("triggers", "incident.resolved"),
            ("filters.conditions[1].conditions[0].lhs", "service"),
            ("bad[x]", "ignored"),
            ("[0]", "ignored"),
        ]));
        assert_eq!(tree.text("name"), "ops");
        let urls = tree.rows("urls");
        assert_eq!(urls.len(), 2);
        assert_eq!(
            urls[0].text("url"),
            "https://b",
            "index order, gaps ignored"
        );
        assert_eq!(urls[1].text("method"), "PUT");
        assert_eq!(
            tree.texts("triggers"),
            ["incident.triggered", "incident.resolved"]
        );
        let inner = tree.get("filters").unwrap().rows("conditions")[0].rows("conditions")[0];
        assert_eq!(inner.text("lhs"), "service");
        assert!(tree.get("bad").is_none());
        assert_eq!(tree.text("missing"), "");
    }
}
