//! People who log in: their roles, what each role may do, and the rules for their input.

use super::{token::Ability, FieldError, Timestamp};
use crate::domain::ids::OrganizationId;

/// A person's role in an organization. Each is a set of the abilities tokens carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything; an organization keeps at least one. Only owners change owners.
    Owner,
    /// Everything, users and tokens included.
    Admin,
    /// Read, and manage webhooks: Squadcast's "Manage Webhook" permission.
    Member,
    /// Read only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// The role's name as people read it.
    pub fn title(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
            Role::Viewer => "Viewer",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Owner => "everything; only owners add, change or remove owners",
            Role::Admin => "everything except changing owners: webhooks, users, tokens",
            Role::Member => "read, and create, change and delete webhooks (Manage Webhook)",
            Role::Viewer => "read webhooks, logs and the audit log",
        }
    }

    pub fn abilities(self) -> &'static [Ability] {
        match self {
            Role::Owner | Role::Admin => &[Ability::Admin],
            Role::Member => &[Ability::Read, Ability::ManageWebhooks],
            Role::Viewer => &[Ability::Read],
        }
    }

    pub fn allows(self, ability: Ability) -> bool {
        let abilities = self.abilities();
        abilities.contains(&Ability::Admin) || abilities.contains(&ability)
    }

    /// The error names every role there is.
    pub fn parse(text: &str) -> Result<Role, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown role \"{}\": use one of {}",
                    text.trim(),
                    Self::ALL.map(|r| r.as_str()).join(", ")
                )
            })
    }
}

/// A stored person. The password hash lives only in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub organization_id: OrganizationId,
    /// As the person typed it; unique per organization without regard to case.
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// False until the person has used their setup link.
    pub has_password: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl User {
    pub fn new(organization_id: &OrganizationId, email: &str, name: &str, role: Role) -> Self {
        let now = Timestamp::now();
        Self {
            id: super::ids::new_id("usr"),
            organization_id: organization_id.clone(),
            email: email.to_owned(),
            name: name.to_owned(),
            role,
            disabled: false,
            has_password: false,
            created_at: now,
            updated_at: now,
            last_login_at: None,
        }
    }

    /// `active`, `invited` (no password yet) or `disabled`.
    pub fn status(&self) -> &'static str {
        if self.disabled {
            "disabled"
        } else if self.has_password {
            "active"
        } else {
            "invited"
        }
    }
}

/// Who is acting on a user, for the rule that only owners change owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// A person with this role (the `admin` ability is checked before).
    Person(Role),
    /// An API token with the `admin` ability: it manages admins and below, never owners,
    /// so a token made by an admin cannot make anyone an owner.
    Token,
    /// The command line on the server's machine, which may do anything.
    Cli,
}

/// Whether `manager` may give a user role `to` (creating them if `from` is `None`), or,
/// with `to` equal to `from`, change or remove them otherwise.
pub fn may_manage(manager: Manager, from: Option<Role>, to: Role) -> Result<(), String> {
    let touches_owner = from == Some(Role::Owner) || to == Role::Owner;
    match manager {
        Manager::Cli | Manager::Person(Role::Owner) => Ok(()),
        _ if touches_owner => Err(
            "only an owner may add, change or remove owners (or the command line: tocsin user …)"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}

/// The form in which emails are compared: case does not make another person.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 100;

/// A plausible address: one `@` with text on both sides, a dot in the domain, no spaces.
/// Whether it receives mail is the person's business.
pub fn parse_email(field: &str, text: &str) -> Result<String, FieldError> {
    let email = text.trim();
    let invalid = |why: &str| FieldError::new(field, why.to_owned());
    if email.is_empty() {
        return Err(invalid("is required: the address the person logs in with"));
    }
    if email.len() > MAX_EMAIL {
        return Err(invalid("must be at most 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("must be an e-mail address like name@example.com"));
    };
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plausible {
        return Err(invalid(&format!(
            "must be an e-mail address like name@example.com, got \"{email}\""
        )));
    }
    Ok(email.to_owned())
}

/// A display name: 1–100 characters, no control characters.
pub fn parse_name(field: &str, text: &str) -> Result<String, FieldError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(FieldError::new(field, "is required: the person's name"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(FieldError::new(field, "must be at most 100 characters"));
    }
    if super::text::has_hidden_controls(name) {
        return Err(FieldError::new(field, super::text::HIDDEN_CONTROLS));
    }
    Ok(name.to_owned())
}

pub const MIN_PASSWORD: usize = 12;
/// Long enough for any passphrase, short enough that hashing it costs nothing extra.
pub const MAX_PASSWORD: usize = 1024;

/// Passwords that lists of breached passwords show first; refused whatever their length.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678910111213",
    "111111111111",
    "000000000000",
    "123123123123",
    "qwertyuiopas",
    "qwertyuiop123",
    "qwerty123456",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "passwordpassword",
    "password1234",
    "password12345",
    "password123456",
    "passw0rd1234",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "welcome123456",
    "administrator",
    "admin1234567",
    "changeme1234",
    "trustno11234",
    "abcdefghijkl",
    "abc123abc123",
    "aaaaaaaaaaaa",
    "monkey123456",
    "dragon123456",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "superman1234",
    "starwars1234",
    "correcthorsebatterystaple",
];

/// The password rules, each named in the message: length, and not a well-known password.
pub fn check_password(field: &str, password: &str) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("must be at least {MIN_PASSWORD} characters (got {length}); a few unrelated words make a good one"),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD} bytes"),
        ));
    }
    let lowered = password.to_lowercase();
    let same_character = password.chars().all(|c| password.starts_with(c));
    if same_character || COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(FieldError::new(
            field,
            "is one of the most common passwords, which are tried first: choose another",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_abilities() {
        assert!(Role::Owner.allows(Ability::Ingest));
        assert!(Role::Admin.allows(Ability::Admin));
        assert!(Role::Member.allows(Ability::ManageWebhooks));
        assert!(Role::Member.allows(Ability::Read));
        assert!(!Role::Member.allows(Ability::Admin));
        assert!(!Role::Member.allows(Ability::Ingest));
        assert!(Role::Viewer.allows(Ability::Read));
        assert!(!Role::Viewer.allows(Ability::ManageWebhooks));
    }

    #[test]
    fn roles_parse_in_any_case_and_name_the_choices() {
        assert_eq!(Role::parse(" Member "), Ok(Role::Member));
        let err = Role::parse("superuser").unwrap_err();
        assert!(err.contains("owner, admin, member, viewer"), "{err}");
    }

    #[test]
    fn emails_are_checked_and_compared_without_case() {
        assert_eq!(
            parse_email("email", " Ann@Example.com ").unwrap(),
            "Ann@Example.com"
        );
        assert_eq!(email_key("Ann@Example.COM"), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@c.d"] {
            assert!(parse_email("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn weak_passwords_are_refused_with_the_rule() {
        let short = check_password("password", "short").unwrap_err();
        assert!(short.message.contains("at least 12"), "{short}");
        let common = check_password("password", "Password1234").unwrap_err();
        assert!(common.message.contains("most common"), "{common}");
        assert!(check_password("password", "zzzzzzzzzzzzzz").is_err());
        assert!(check_password("password", "plum orbit candle ferry").is_ok());
    }

    #[test]
    fn only_owners_and_the_command_line_touch_owners() {
        let admin = Manager::Person(Role::Admin);
        assert!(may_manage(admin, Some(Role::Viewer), Role::Admin).is_ok());
        assert!(may_manage(admin, None, Role::Owner).is_err());
        assert!(may_manage(admin, Some(Role::Owner), Role::Owner).is_err());
        assert!(may_manage(admin, Some(Role::Owner), Role::Viewer).is_err());
        assert!(may_manage(Manager::Token, Some(Role::Member), Role::Owner).is_err());
        assert!(may_manage(Manager::Token, Some(Role::Member), Role::Admin).is_ok());
        assert!(may_manage(
            Manager::Person(Role::Owner),
            Some(Role::Owner),
            Role::Viewer
        )
        .is_ok());
        assert!(may_manage(Manager::Cli, None, Role::Owner).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Ann  ").unwrap(), "Ann");
        assert!(parse_name("name", "").is_err());
        assert!(parse_name("name", "a\nb").is_err());
        assert!(parse_name("name", &"x".repeat(101)).is_err());
    }
}
