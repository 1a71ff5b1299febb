use super::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

impl Organization {
    pub fn new(name: &str) -> Self {
        Self {
            id: super::ids::new_id("org"),
            name: name.to_owned(),
            created_at: Timestamp::now(),
        }
    }
}
