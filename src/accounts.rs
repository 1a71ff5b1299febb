//! People: creating, changing and removing users, setup links and logins. The JSON API, the
//! pages and the command line all come here, so each rule and each message exists once.

use crate::domain::ids::OrganizationId;
use std::{net::IpAddr, time::Duration};

use crate::{
    domain::{
        audit::{self, unmasked, Actor, AuditEntry},
        login_throttle, password,
        session::{self, new_setup_link, LinkProblem, Session},
        user::{self, may_manage, Manager, Role, User},
        FieldError, Timestamp,
    },
    store::{LinkUse, Store, StoreError, UserWrite},
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("user {0} not found")]
    NotFound(String),
    #[error("email: another user of this organization already has {0}")]
    DuplicateEmail(String),
    #[error("this would leave the organization without an owner: make another user owner first")]
    LastOwner,
    #[error("{}", .0.message())]
    Link(LinkProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The link a person opens to choose a password.
pub fn setup_url(public_url: &str, code: &str) -> String {
    format!("{}/setup/{code}", public_url.trim_end_matches('/'))
}

/// At most this many Argon2 computations at once, each holding 19 MiB: 8 cost at most
/// ~150 MiB and keep two cores busy. Unbounded, 180 anonymous logins took 1.2 GB.
const PASSWORD_CHECKS: usize = 8;
/// How long a login waits for its turn before it is told to come back (503): a flood is
/// answered quickly instead of queueing memory and time.
const PASSWORD_WAIT: Duration = Duration::from_secs(2);

fn password_gate() -> &'static tokio::sync::Semaphore {
    static GATE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    GATE.get_or_init(|| tokio::sync::Semaphore::new(PASSWORD_CHECKS))
}

/// One slowed login at a time per client address (on this node): parallel guesses from an
/// address that failed too often wait in line, each its delay, instead of all sleeping at
/// once and then filling the password checks everyone shares.
fn address_turn(key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    static TURNS: OnceLock<Mutex<std::collections::HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let mut turns = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    turns.retain(|_, turn| turn.strong_count() > 0);
    if let Some(turn) = turns.get(key).and_then(Weak::upgrade) {
        return turn;
    }
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    turns.insert(key.to_owned(), Arc::downgrade(&turn));
    turn
}

/// A turn at the password hasher, or `None` when none came within `wait`.
async fn password_turn(wait: Duration) -> Option<tokio::sync::SemaphorePermit<'static>> {
    tokio::time::timeout(wait, password_gate().acquire())
        .await
        .ok()
        .and_then(Result::ok)
}

async fn hash(password: String) -> String {
    // Setting a password needs a setup link or a session: it waits its turn, however long.
    let _turn = password_gate().acquire().await;
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .expect("hashing does not panic")
}

fn written(result: UserWrite, id: &str, email: &str) -> Result<User, AccountError> {
    match result {
        UserWrite::Done(user) => Ok(user),
        UserWrite::NotFound => Err(AccountError::NotFound(id.to_owned())),
        UserWrite::LastOwner => Err(AccountError::LastOwner),
        UserWrite::DuplicateEmail => Err(AccountError::DuplicateEmail(email.to_owned())),
    }
}

async fn existing(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
) -> Result<User, AccountError> {
    store
        .user(organization_id, id)
        .await?
        .ok_or_else(|| AccountError::NotFound(id.to_owned()))
}

/// The user `id`, when `manager` may change or remove them as they are (the owners rule).
async fn manageable(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
    manager: Manager,
) -> Result<User, AccountError> {
    let current = existing(store, organization_id, id).await?;
    may_manage(manager, Some(current.role), current.role).map_err(AccountError::Forbidden)?;
    Ok(current)
}

/// What a new user is given.
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: String,
    /// Set at once (scripts); otherwise the answer carries a setup link's code.
    pub password: Option<String>,
}

/// Creates a user. Without a password, returns the code of a setup link (24 h, single use)
/// to hand to the person.
pub async fn create_user(
    store: &dyn Store,
    organization_id: &OrganizationId,
    input: NewUser,
    manager: Manager,
    actor: &Actor,
) -> Result<(User, Option<String>), AccountError> {
    let mut errors = Vec::new();
    let email = user::parse_email("email", &input.email).map_err(|e| errors.push(e));
    let name = user::parse_name("name", &input.name).map_err(|e| errors.push(e));
    let role = Role::parse(&input.role).map_err(|e| errors.push(FieldError::new("role", e)));
    if let Some(p) = &input.password {
        if let Err(e) = user::check_password("password", p) {
            errors.push(e);
        }
    }
    let (Ok(email), Ok(name), Ok(role), true) = (email, name, role, errors.is_empty()) else {
        return Err(AccountError::Invalid(errors));
    };
    may_manage(manager, None, role).map_err(AccountError::Forbidden)?;
    let mut user = User::new(organization_id, &email, &name, role);
    let hashed = match input.password {
        Some(p) => Some(hash(p).await),
        None => None,
    };
    user.has_password = hashed.is_some();
    let (code, link) = if hashed.is_none() {
        let (code, link) = new_setup_link(organization_id, Some(&user.id), role, user.created_at);
        (Some(code), Some(link))
    } else {
        (None, None)
    };
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "user.created",
        audit::user_object(&user),
        audit::created(&audit::user_view(&user), unmasked),
    );
    let result = store
        .create_user(&user, hashed.as_deref(), link.as_ref(), &entry)
        .await?;
    let user = written(result, &user.id, &email)?;
    Ok((user, code))
}

/// What may change about a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

pub async fn update_user(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
    change: UserChange,
    manager: Manager,
    actor: &Actor,
) -> Result<User, AccountError> {
    let current = existing(store, organization_id, id).await?;
    let mut errors = Vec::new();
    let mut next = current.clone();
    if let Some(name) = &change.name {
        match user::parse_name("name", name) {
            Ok(n) => next.name = n,
            Err(e) => errors.push(e),
        }
    }
    if let Some(role) = &change.role {
        match Role::parse(role) {
            Ok(r) => next.role = r,
            Err(e) => errors.push(FieldError::new("role", e)),
        }
    }
    if let Some(disabled) = change.disabled {
        next.disabled = disabled;
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    may_manage(manager, Some(current.role), next.role).map_err(AccountError::Forbidden)?;
    let changes = audit::diff(
        &audit::user_view(&current),
        &audit::user_view(&next),
        unmasked,
    );
    if changes.is_empty() {
        return Ok(current);
    }
    let action = if change.disabled.is_some() && current.disabled != next.disabled {
        if next.disabled {
            "user.disabled"
        } else {
            "user.enabled"
        }
    } else {
        "user.updated"
    };
    next.updated_at = Timestamp::now();
    let entry = AuditEntry::new(
        organization_id,
        actor,
        action,
        audit::user_object(&next),
        changes,
    );
    let result = store.update_user(&next, &entry).await?;
    written(result, id, &next.email)
}

pub async fn delete_user(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
    manager: Manager,
    actor: &Actor,
) -> Result<User, AccountError> {
    let current = manageable(store, organization_id, id, manager).await?;
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "user.deleted",
        audit::user_object(&current),
        audit::diff(&audit::user_view(&current), &Default::default(), unmasked),
    );
    let result = store.delete_user(organization_id, id, &entry).await?;
    written(result, id, &current.email)
}

/// Ends the user's password and sessions and returns the code of a new setup link.
pub async fn reset_password(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
    manager: Manager,
    actor: &Actor,
) -> Result<(User, String), AccountError> {
    let current = manageable(store, organization_id, id, manager).await?;
    let (code, link) = new_setup_link(organization_id, Some(id), current.role, Timestamp::now());
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "user.password_reset",
        audit::user_object(&current),
        Vec::new(),
    );
    let result = store.reset_password(&link, &entry).await?;
    Ok((written(result, id, &current.email)?, code))
}

/// Lets a user whom failed logins locked out (see `domain/login_throttle.rs`) try again at
/// once: takes back every attempt made with their email, on every node, under the email
/// and the addresses they came from (the person's own address was most often locked by the
/// same tries). Tries from those addresses at other emails stay counted: they are a
/// guesser's, whose count one unlock must not reset. Owners are unlocked only by
/// owners, as every other change to them (an admin who could unlock an owner at will could
/// guess at their password without limit).
pub async fn unlock_login(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &str,
    manager: Manager,
    actor: &Actor,
) -> Result<User, AccountError> {
    let current = manageable(store, organization_id, id, manager).await?;
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "user.unlocked",
        audit::user_object(&current),
        Vec::new(),
    );
    store
        .unlock_login(&login_throttle::email_key(&current.email), &entry)
        .await?;
    Ok(current)
}

/// Which of `users` failed logins lock out now, each with how long until they may try
/// again: what the users page and the API show beside each person.
pub async fn lockouts(
    store: &dyn Store,
    users: &[User],
) -> Result<std::collections::HashMap<String, Duration>, StoreError> {
    let now = Timestamp::now();
    let keys: Vec<(&str, String)> = users
        .iter()
        .map(|u| (u.id.as_str(), login_throttle::email_key(&u.email)))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
    let failures = store
        .login_failures(&key_refs, now.minus(login_throttle::WINDOW))
        .await?;
    Ok(keys
        .iter()
        .filter_map(|(id, key)| {
            login_throttle::locked(key, &failures, now).map(|wait| ((*id).to_owned(), wait))
        })
        .collect())
}

/// What a setup page asks for: a password, and for the first start's link (which has no
/// user yet) the new owner's email and name.
pub struct SetupInput {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: String,
    pub confirm: String,
}

/// Uses a setup link: checks the input, then sets the password (or creates the account)
/// and marks the link used, all at once.
pub async fn complete_setup(
    store: &dyn Store,
    code: &str,
    input: SetupInput,
) -> Result<User, AccountError> {
    let now = Timestamp::now();
    let code_hash = session::hash_secret(code);
    let (link, existing) = match session::looks_like_secret(code) {
        true => store.setup_link(&code_hash).await?,
        false => None,
    }
    .ok_or(AccountError::Link(LinkProblem::Unknown))?;
    link.check(now).map_err(AccountError::Link)?;
    let mut errors = Vec::new();
    let new_user = if existing.is_none() {
        let email = user::parse_email("email", input.email.as_deref().unwrap_or(""))
            .map_err(|e| errors.push(e));
        let name = user::parse_name("name", input.name.as_deref().unwrap_or(""))
            .map_err(|e| errors.push(e));
        match (email, name) {
            (Ok(email), Ok(name)) => {
                let mut user = User::new(&link.organization_id, &email, &name, link.role);
                user.has_password = true;
                Some(user)
            }
            _ => None,
        }
    } else {
        None
    };
    if let Err(e) = user::check_password("password", &input.password) {
        errors.push(e);
    } else if input.password != input.confirm {
        errors.push(FieldError::new(
            "confirm",
            "does not match the password: type the same password twice",
        ));
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let subject = existing
        .as_ref()
        .or(new_user.as_ref())
        .expect("one of them");
    let (actor, action, changes) = match &new_user {
        Some(user) => (
            Actor {
                kind: audit::ActorKind::User,
                id: user.id.clone(),
                name: user.email.clone(),
            },
            "user.created",
            audit::created(&audit::user_view(user), unmasked),
        ),
        None => (
            Actor {
                kind: audit::ActorKind::User,
                id: subject.id.clone(),
                name: subject.email.clone(),
            },
            "user.password_set",
            Vec::new(),
        ),
    };
    let entry = AuditEntry::new(
        &link.organization_id,
        &actor,
        action,
        audit::user_object(subject),
        changes,
    );
    let hashed = hash(input.password).await;
    match store
        .use_setup_link(&code_hash, now, &hashed, new_user.as_ref(), &entry)
        .await?
    {
        LinkUse::Done(user) => Ok(user),
        LinkUse::Refused(problem) => Err(AccountError::Link(problem)),
        LinkUse::DuplicateEmail => Err(AccountError::DuplicateEmail(subject.email.clone())),
    }
}

/// Starts a session for `user` (after a login or a used setup link): the cookie's value.
pub async fn start_session(store: &dyn Store, user: &User) -> Result<String, StoreError> {
    let secret = session::new_secret();
    let session = Session::new(session::hash_secret(&secret), &user.id, Timestamp::now());
    store.start_session(&session).await?;
    Ok(secret)
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Never says whether the email exists, is disabled or has no password yet.
    #[error("wrong email or password")]
    Invalid,
    #[error("too many failed logins: try again in {} seconds, or ask whoever manages users to unlock you (Users page)", .0.as_secs())]
    Throttled(Duration),
    /// Every password check is taken by other logins (a flood): nothing was checked.
    #[error("tocsin is checking many logins at once: try again in a few seconds")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks an email and password and starts a session: the cookie's value and the user.
/// Refused without a look at the password while the email has had too many failures lately,
/// on any node; slowed while the client address has (see `domain/login_throttle.rs`).
pub async fn login(
    store: &dyn Store,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<(String, User), LoginError> {
    let email_key = login_throttle::email_key(email);
    let ip_key = client.map(login_throttle::address_key);
    let keys: Vec<&str> = std::iter::once(email_key.as_str())
        .chain(ip_key.as_deref())
        .collect();
    // Counted as a failure before the password is checked (see `login_attempt`), and taken
    // back when refused or right.
    let now = Timestamp::now();
    let failures = store
        .login_attempt(&keys, now, now.minus(login_throttle::WINDOW))
        .await?;
    let mut _in_line = None;
    match login_throttle::judge(&failures, &email_key, now) {
        login_throttle::Verdict::Check => {}
        login_throttle::Verdict::Slowed(wait) => {
            // Held through the password check: the address's next attempt waits for it.
            let turn = address_turn(ip_key.as_deref().unwrap_or_default());
            _in_line = Some(turn.lock_owned().await);
            tokio::time::sleep(wait).await;
        }
        login_throttle::Verdict::Refused(wait) => {
            store.forget_login_attempt(&keys, now).await?;
            return Err(LoginError::Throttled(wait));
        }
    }
    let candidates = if password.len() > user::MAX_PASSWORD || email.len() > 254 {
        Vec::new()
    } else {
        store.login_candidates(email).await?
    };
    let Some(turn) = password_turn(PASSWORD_WAIT).await else {
        store.forget_login_attempt(&keys, now).await?;
        return Err(LoginError::Busy);
    };
    let password = password.to_owned();
    let matched = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut checked = false;
        let found = candidates.into_iter().find_map(|(user, stored)| {
            let stored = stored?;
            checked = true;
            password::verify_password(&password, &stored).then_some(user)
        });
        if !checked {
            password::verify_nothing(&password);
        }
        found
    })
    .await
    .expect("verifying does not panic")
    .filter(|user| !user.disabled);
    if matched.is_some() {
        // The email's failures are forgotten, not the address's: one good password must
        // not reset a guesser's count for other accounts.
        store.clear_login_failures(&email_key).await?;
        if let Some(ip_key) = &ip_key {
            store.forget_login_attempt(&[ip_key], now).await?;
        }
    }
    let user = matched.ok_or(LoginError::Invalid)?;
    let secret = start_session(store, &user).await?;
    Ok((secret, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slowed_address_has_one_check_in_flight() {
        let held = address_turn("ip:203.0.113.9").lock_owned().await;
        let same = address_turn("ip:203.0.113.9");
        assert!(same.try_lock().is_err(), "the same address waits in line");
        let other = address_turn("ip:198.51.100.1");
        assert!(other.try_lock().is_ok(), "another address does not");
        drop(held);
        assert!(same.try_lock().is_ok(), "its turn comes");
    }

    #[tokio::test]
    async fn password_checks_wait_their_turn_and_a_flood_is_told_to_come_back() {
        let held = password_gate()
            .acquire_many(PASSWORD_CHECKS as u32)
            .await
            .expect("the gate is open");
        let started = std::time::Instant::now();
        assert!(
            password_turn(Duration::from_millis(50)).await.is_none(),
            "every turn is taken: no ninth Argon2 computation starts"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        let turn = password_turn(Duration::from_millis(50)).await;
        assert!(turn.is_some(), "a freed turn is given");
        assert_eq!(password_gate().available_permits(), PASSWORD_CHECKS - 1);
    }
}
