use super::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: super::ids::OrganizationId,
    pub name: String,
    pub created_at: Timestamp,
}

impl Organization {
    pub fn new(name: &str) -> Self {
        Self {
            id: super::ids::OrganizationId::generate(),
            name: name.to_owned(),
            created_at: Timestamp::now(),
        }
    }
}
