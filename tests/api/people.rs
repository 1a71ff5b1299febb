//! People, roles and sessions: setup links, login and logout, cookie flags, CSRF, each
//! role's allowed and refused calls, throttling, sessions ending, the users and tokens APIs.

use reqwest::Method;
use serde_json::{json, Value};
use tocsin::domain::{session::new_setup_link, user::Role, Timestamp};

use crate::both_backends;
use crate::helpers::visitor::{person, Visitor, PASSWORD};
use crate::helpers::{minimal_webhook, spawn_app, spawn_app_with, Backend};

const HOOKS: &str = "/v3/extensions/event-webhooks";

fn path_of(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a URL");
    parsed.path().to_owned()
}

async fn first_start_link_creates_the_owner_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let link = app
        .owner_setup_url
        .clone()
        .expect("first start prints a setup link");
    assert!(
        link.starts_with(&format!("{}/setup/", app.address)),
        "{link}"
    );
    let path = path_of(&link);
    let mut v = Visitor::new(&app);

    let form = v.get(&path).await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("Create your account"), "{}", form.text);

    // Posted from another site (no token-and-cookie pair of this form): refused, and the
    // link is still unused.
    let foreign = Visitor::new(&app)
        .post_form(
            &path,
            &[
                ("email", "mallory@example.com"),
                ("name", "Mallory"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
                ("login_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
        )
        .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);
    assert!(
        foreign.text.contains("came from another site"),
        "{}",
        foreign.text
    );
    assert!(!foreign.set_cookie().contains("tocsin_session="));

    // A weak password re-renders the form with the rule next to the field, keeping input.
    let weak = v
        .fill_setup(
            &path,
            &[
                ("email", "Ann@Example.com"),
                ("name", "Ann"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(
        weak.text.contains("at least 12 characters"),
        "{}",
        weak.text
    );
    assert!(
        weak.text.contains(r#"value="Ann@Example.com""#),
        "input kept"
    );
    assert!(v.cookie.is_none());

    let done = v
        .fill_setup(
            &path,
            &[
                ("email", "Ann@Example.com"),
                ("name", "Ann"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/");
    let home = v.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.text.contains("Ann") && home.text.contains("owner"),
        "{}",
        home.text
    );

    // Used: the page says so, and nothing changes.
    let again = Visitor::new(&app)
        .post_form(
            &path,
            &[
                ("email", "eve@example.com"),
                ("name", "Eve"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, 410);
    assert!(again.text.contains("already been used"), "{}", again.text);
    let shown = Visitor::new(&app).get(&path).await;
    assert_eq!(shown.status, 410);
    let unknown = Visitor::new(&app)
        .get("/setup/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text.contains("not valid"));

    let users = app.owner(Method::GET, "/v3/users", None).await;
    let list = users.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["email"], "Ann@Example.com");
    assert_eq!(list[0]["role"], "owner");
    // The owner logs in with the email in any case.
    assert_eq!(
        Visitor::new(&app)
            .login("ann@example.COM", PASSWORD)
            .await
            .status,
        303
    );
}

async fn login_logout_and_cookie_flags(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "bo@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let page = v.get("/login").await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(
        page.headers["cache-control"], "no-store",
        "no page is kept by a browser"
    );
    assert!(page.text.contains(r#"name="email""#) && page.text.contains(r#"name="password""#));

    // The login form's token must come back with its cookie: a login posted from another
    // site (no token, or a token without this browser's cookie) is refused.
    let token = page.login_token().expect("the form carries a login token");
    let bare = v
        .post_form(
            "/login",
            &[("email", "bo@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(bare.status, 403, "{}", bare.text);
    assert!(bare.text.contains("came from another site"));
    let mut elsewhere = Visitor::new(&app);
    let forged = elsewhere
        .post_form(
            "/login",
            &[
                ("email", "bo@example.com"),
                ("password", PASSWORD),
                ("login_token", &token),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "a token without its cookie");
    assert!(elsewhere.cookie.is_none(), "no session was started");
    let cookie = page.set_cookie();
    assert!(
        cookie.starts_with("tocsin_login=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/login"),
        "{cookie}"
    );

    // Wrong password and unknown email answer alike.
    let wrong = v.login("bo@example.com", "not the password").await;
    let nobody = v.login("nobody@example.com", PASSWORD).await;
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert!(wrong.text.contains("wrong email or password"));
    assert!(nobody.text.contains("wrong email or password"));
    assert!(v.cookie.is_none());

    let ok = v.login("bo@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303);
    let cookie = ok.set_cookie().to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let secret = v.cookie.clone().unwrap();
    assert_eq!(secret.len(), 43);
    // Only a hash is stored.
    assert!(app.store.session(&secret).await.unwrap().is_none());

    // The JSON API takes the session.
    let api = v.api(Method::GET, HOOKS, None, None).await;
    assert_eq!(api.status, 200, "{}", api.text);

    // Logout needs the CSRF token.
    let csrf = v.get("/").await.csrf().unwrap();
    let refused = v.post_form("/logout", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        v.api(Method::GET, HOOKS, None, None).await.status,
        200,
        "still logged in"
    );
    let out = v.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/login");
    assert!(
        out.set_cookie().contains("Max-Age=0"),
        "{}",
        out.set_cookie()
    );
    // The old cookie is dead on the server too.
    let mut replay = Visitor::new(&app);
    replay.cookie = Some(secret);
    let gone = replay.api(Method::GET, HOOKS, None, None).await;
    assert_eq!(gone.status, 401);
    assert!(gone.json()["meta"]["error_message"]
        .as_str()
        .unwrap()
        .contains("log in"));
    // A page that needs a login sends there, and back after.
    let home = Visitor::new(&app).get("/").await;
    assert_eq!((home.status, home.location()), (303, "/login?next=%2F"));
    let next = Visitor::new(&app)
        .login_at("/login?next=%2Fwebhooks", "bo@example.com", PASSWORD)
        .await;
    assert_eq!(next.location(), "/webhooks");
    let offsite = Visitor::new(&app)
        .login_at("/login?next=%2F%2Fevil.example", "bo@example.com", PASSWORD)
        .await;
    assert_eq!(offsite.location(), "/", "only local paths are followed");
}

async fn cookie_is_secure_behind_https(backend: Backend) {
    let Some(app) =
        spawn_app_with(backend, |c| c.public_url = "https://tocsin.example".into()).await
    else {
        return;
    };
    person(&app, "cy@example.com", "viewer").await;
    let ok = Visitor::new(&app).login("cy@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303);
    assert!(ok.set_cookie().contains("Secure"), "{}", ok.set_cookie());
}

async fn csrf_guards_cookie_writes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "di@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("di@example.com").await;
    let body = minimal_webhook("from the browser");

    let none = v.api(Method::POST, HOOKS, Some(&body), None).await;
    assert_eq!(none.status, 403);
    assert_eq!(none.json()["meta"]["error_code"], "csrf_failed");
    assert!(none.text.contains("X-CSRF-Token"));
    let wrong = v.api(Method::POST, HOOKS, Some(&body), Some("AAAA")).await;
    assert_eq!(wrong.status, 403);
    // Another session's token does not fit this one.
    person(&app, "other@example.com", "member").await;
    let theirs = Visitor::new(&app).login_ok("other@example.com").await;
    assert_eq!(
        v.api(Method::POST, HOOKS, Some(&body), Some(&theirs))
            .await
            .status,
        403
    );
    assert_eq!(app.webhook_count().await, 0, "nothing written");

    let ok = v.api(Method::POST, HOOKS, Some(&body), Some(&csrf)).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    // The author is the person.
    let data = ok.json()["data"].clone();
    let org = data["organization_id"].as_str().unwrap();
    let me = app
        .store
        .user_by_email(&org.into(), "di@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data["author_id"], me.id);
    assert_eq!(
        data["author"],
        json!({"type": "user", "id": me.id, "name": "di@example.com"})
    );
    let shown = app
        .owner(
            Method::GET,
            &format!("{HOOKS}/{}", data["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shown.body["data"]["author"], data["author"]);
    let listed = app.owner(Method::GET, HOOKS, None).await;
    assert_eq!(
        listed.body["data"]["result"][0]["author"]["name"],
        "di@example.com"
    );
    // Reads need no token.
    assert_eq!(v.api(Method::GET, HOOKS, None, None).await.status, 200);
}

/// Each role against one call of each kind: (method, path, body, who may).
async fn roles_allow_and_refuse(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hook = app.create_webhook(&minimal_webhook("existing")).await;
    let hook_path = format!("{HOOKS}/{}", hook["id"].as_str().unwrap());
    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i-1", "message": "m", "status": "triggered",
                     "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    let mut sessions = Vec::new();
    for role in ["viewer", "member", "admin", "owner"] {
        person(&app, &format!("{role}@example.com"), role).await;
        let mut v = Visitor::new(&app);
        let csrf = v.login_ok(&format!("{role}@example.com")).await;
        sessions.push((role, v, csrf));
    }
    for (role, v, csrf) in sessions.iter_mut() {
        let role = *role;
        let rank = ["viewer", "member", "admin", "owner"]
            .iter()
            .position(|r| *r == role)
            .unwrap();
        let calls: Vec<(Method, String, Option<Value>, usize)> = vec![
            (Method::GET, HOOKS.to_owned(), None, 0),
            (Method::GET, hook_path.clone(), None, 0),
            (Method::GET, "/v3/users".to_owned(), None, 0),
            (Method::GET, "/v3/audit-logs".to_owned(), None, 0),
            (
                Method::POST,
                HOOKS.to_owned(),
                Some(minimal_webhook(&format!("by {role}"))),
                1,
            ),
            (
                Method::PUT,
                hook_path.clone(),
                Some(minimal_webhook(&format!("renamed by {role}"))),
                1,
            ),
            (
                Method::POST,
                "/v3/events".to_owned(),
                Some(event.clone()),
                2,
            ),
            (Method::GET, "/v3/api-tokens".to_owned(), None, 2),
            (
                Method::POST,
                "/v3/users".to_owned(),
                Some(
                    json!({"email": format!("new-{role}@example.com"), "name": "N", "role": "viewer"}),
                ),
                2,
            ),
            (
                Method::POST,
                "/v3/users".to_owned(),
                Some(
                    json!({"email": format!("owner-{role}@example.com"), "name": "N", "role": "owner"}),
                ),
                3,
            ),
        ];
        for (method, path, body, needs) in calls {
            let page = v
                .api(method.clone(), &path, body.as_ref(), Some(csrf))
                .await;
            if rank >= needs {
                assert!(
                    (200..300).contains(&page.status),
                    "{role} {method} {path}: {} {}",
                    page.status,
                    page.text
                );
            } else {
                assert_eq!(page.status, 403, "{role} {method} {path}: {}", page.text);
                let message = page.json()["meta"]["error_message"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    message.contains(role) || message.contains("owner"),
                    "{message}"
                );
            }
        }
    }
}

async fn login_throttling(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "eve@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    for _ in 0..10 {
        assert_eq!(
            v.login("eve@example.com", "guess guess guess").await.status,
            401
        );
    }
    let locked = v.login("eve@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429, "even the right password waits");
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    assert!(locked.text.contains("too many failed logins"));
    assert!(v.cookie.is_none());
    // The address is not refused: another person there logs in with their own password (a
    // little slowed), and a wrong guess for another email is checked, not refused.
    person(&app, "fay@example.com", "viewer").await;
    assert_eq!(v.login("fay@example.com", PASSWORD).await.status, 303);
    let other = Visitor::new(&app)
        .login("someone@example.com", "guess guess guess")
        .await;
    assert_eq!(other.status, 401);
}

/// Behind a reverse proxy every person shares its address. Failed logins for made-up
/// emails slow their client down and never refuse anyone else — the owner logs in from the
/// same address and nobody shows as locked. With `http.trusted_proxies`, `X-Forwarded-For`
/// names the client; from anyone else the header is ignored.
async fn one_address_never_locks_everyone_out(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    person(&app, "own@example.com", "owner").await;
    let mut guesser = Visitor::new(&app);
    guesser.forwarded_for = Some("203.0.113.5".to_owned());
    for i in 0..12 {
        let email = format!("made-up-{i}@example.com");
        assert_eq!(guesser.login(&email, "guess guess guess").await.status, 401);
    }
    let since = Timestamp::now().minus(std::time::Duration::from_secs(600));
    let counted = app
        .store
        .login_failures(&["ip:203.0.113.5", "ip:127.0.0.1"], since)
        .await
        .unwrap();
    let under = |key: &str| counted.iter().filter(|(k, _)| k == key).count();
    assert_eq!(
        under("ip:203.0.113.5"),
        12,
        "the client's, named by the proxy"
    );
    assert_eq!(under("ip:127.0.0.1"), 0, "not the proxy's");

    // The owner behind the same client address: let in, after the address's delay (13
    // attempts there, three past the limit).
    let mut owner = Visitor::new(&app);
    owner.forwarded_for = Some("203.0.113.5".to_owned());
    let started = std::time::Instant::now();
    assert_eq!(owner.login("own@example.com", PASSWORD).await.status, 303);
    assert!(
        started.elapsed() >= tocsin::domain::login_throttle::ADDRESS_STEP * 3,
        "slowed: {:?}",
        started.elapsed()
    );
    let users = app.owner(Method::GET, "/v3/users", None).await;
    assert!(
        users.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["login_locked_until"].is_null()),
        "nobody is locked: {}",
        users.body
    );
}

/// A person whom ten wrong passwords locked out is shown as locked to the people who
/// manage users, and an owner lets them in again before the 15 minutes pass (before,
/// nobody could: the person waited, mid-incident). The unlock takes back the attempts under
/// the address they came from too, else the same ten tries would still refuse the person's
/// own machine. Only owners unlock owners; the unlock is audited.
async fn an_owner_unlocks_a_person_locked_out_by_failed_logins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let eve = person(&app, "eve@example.com", "viewer").await;
    let boss = person(&app, "boss@example.com", "owner").await;
    person(&app, "own@example.com", "owner").await;
    let adm = person(&app, "adm@example.com", "admin").await;
    // The managers log in first: every visitor here comes from one address.
    let mut owner = Visitor::new(&app);
    let owner_csrf = owner.login_ok("own@example.com").await;
    let mut admin = Visitor::new(&app);
    let admin_csrf = admin.login_ok("adm@example.com").await;
    let locked_until = |app_reply: &Value| app_reply["data"]["login_locked_until"].clone();
    let show = |id: String| {
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &format!("/v3/users/{id}"),
                Some(&app.owner_token),
                None,
            )
            .await
            .body
        }
    };
    assert_eq!(locked_until(&show(eve.id.clone()).await), Value::Null);

    let mut v = Visitor::new(&app);
    for _ in 0..10 {
        assert_eq!(
            v.login("eve@example.com", "guess guess guess").await.status,
            401
        );
    }
    assert_eq!(v.login("eve@example.com", PASSWORD).await.status, 429);

    // Shown locked: in the API, with a time about 15 minutes away, and on the users page.
    let until = locked_until(&show(eve.id.clone()).await);
    let until = Timestamp::parse_rfc3339(until.as_str().expect("a time")).unwrap();
    let left = until.as_micros() - Timestamp::now().as_micros();
    assert!(
        (14 * 60_000_000..=15 * 60_000_000).contains(&left),
        "{left} µs left"
    );
    let list = app
        .call(Method::GET, "/v3/users", Some(&app.owner_token), None)
        .await;
    let locked: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| !u["login_locked_until"].is_null())
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(locked, ["eve@example.com"]);
    let page = owner.get("/users").await;
    assert!(page.text.contains("locked · 15 min"), "{}", page.text);
    let unlock = format!("/users/{}/unlock", eve.id);
    assert!(page.text.contains(&unlock), "{}", page.text);

    // Without the CSRF token nothing happens; an admin may not unlock an owner.
    assert_eq!(owner.post_form(&unlock, &[]).await.status, 403);
    let refused = admin
        .post_form(
            &format!("/users/{}/unlock", boss.id),
            &[("csrf_token", &admin_csrf)],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("only an owner"), "{}", refused.text);
    assert_eq!(v.login("eve@example.com", PASSWORD).await.status, 429);

    let done = owner
        .post_form(&unlock, &[("csrf_token", &owner_csrf)])
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/users?done=unlocked");
    let page = owner.get("/users?done=unlocked").await;
    assert!(
        page.text.contains("they may log in again now"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("locked · "), "{}", page.text);
    assert_eq!(locked_until(&show(eve.id.clone()).await), Value::Null);
    assert_eq!(
        v.login("eve@example.com", PASSWORD).await.status,
        303,
        "from the same address, at once"
    );

    // The API's unlock, by a token (which, like an admin, may not unlock owners), and the
    // audit log's entries.
    let owners_only = app
        .call(
            Method::POST,
            &format!("/v3/users/{}/unlock", boss.id),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(owners_only.status, 403, "{:?}", owners_only.body);
    let unlocked = app
        .call(
            Method::POST,
            &format!("/v3/users/{}/unlock", adm.id),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(unlocked.status, 200, "{:?}", unlocked.body);
    assert_eq!(unlocked.body["data"]["email"], "adm@example.com");
    let missing = app
        .call(
            Method::POST,
            "/v3/users/usr-nobody/unlock",
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    let audit = app
        .call(Method::GET, "/v3/audit-logs", Some(&app.owner_token), None)
        .await;
    let unlocks = audit.body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.unlocked")
        .count();
    assert_eq!(unlocks, 2, "{:?}", audit.body);
}

/// Failed logins are counted in the store: once the limit is reached through any node,
/// every node refuses. Before, each node counted its own, and N nodes behind a load balancer
/// gave a guesser N times the tries.
async fn login_throttling_is_shared_by_every_node(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "eve@example.com", "viewer").await;
    let other = app.another_node().await;
    let (mut a, mut b) = (Visitor::new(&app), Visitor::new(&other));
    for i in 0..10 {
        let v = if i % 2 == 0 { &mut a } else { &mut b };
        assert_eq!(
            v.login("eve@example.com", "guess guess guess").await.status,
            401
        );
    }
    assert_eq!(b.login("eve@example.com", PASSWORD).await.status, 429);
    assert_eq!(a.login("eve@example.com", PASSWORD).await.status, 429);
}

/// Guesses sent at once see each other: each is counted before its password is checked, so
/// no more than the limit's worth are checked however many come together. Before, all of
/// them were checked (each looked before any had been counted).
async fn guesses_sent_at_once_are_throttled_together(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "mallory-target@example.com", "viewer").await;
    let guesses = (0..25).map(|i| {
        let mut v = Visitor::new(&app);
        async move {
            v.login("mallory-target@example.com", &format!("guess number {i}"))
                .await
                .status
        }
    });
    let statuses = crate::helpers::futures_join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 25, "{statuses:?}");
    assert!(
        (1..=10).contains(&checked),
        "at most ten guesses checked, got {checked}: {statuses:?}"
    );
    let mut v = Visitor::new(&app);
    assert_eq!(
        v.login("mallory-target@example.com", PASSWORD).await.status,
        429,
        "the right password waits too"
    );
}

async fn setup_links_expire_and_work_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = app
        .owner(
            Method::POST,
            "/v3/users",
            Some(&json!({"email": "fay@example.com", "name": "Fay", "role": "member"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["data"]["status"], "invited");
    let link = path_of(created.body["data"]["setup_url"].as_str().unwrap());
    let mut v = Visitor::new(&app);
    let form = v.get(&link).await;
    assert!(form.text.contains("Choose your password") && form.text.contains("fay@example.com"));
    let mismatch = v
        .fill_setup(
            &link,
            &[
                ("password", PASSWORD),
                ("confirm", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.text.contains("does not match"));
    let done = v
        .fill_setup(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(done.status, 303);
    assert!(v.cookie.is_some(), "logged in after setup");
    assert_eq!(
        Visitor::new(&app)
            .post_form(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
            .await
            .status,
        410
    );

    // A link older than 24 hours says it expired.
    let fay = created.body["data"]["id"].as_str().unwrap();
    let org = &created.body["data"]["organization_id"]
        .as_str()
        .unwrap()
        .into();
    let long_ago = Timestamp::from_micros(Timestamp::now().as_micros() - 25 * 3_600_000_000);
    let (code, old) = new_setup_link(org, Some(fay), Role::Member, long_ago);
    let entry = tocsin::domain::audit::AuditEntry::new(
        org,
        &tocsin::domain::audit::Actor::cli(),
        "user.password_reset",
        tocsin::domain::audit::AuditObject {
            kind: "user",
            id: fay.into(),
            name: "fay".into(),
        },
        vec![],
    );
    app.store.reset_password(&old, &entry).await.unwrap();
    let expired = Visitor::new(&app).get(&format!("/setup/{code}")).await;
    assert_eq!(expired.status, 410);
    assert!(expired.text.contains("expired"), "{}", expired.text);
    assert_eq!(
        v.api(Method::GET, HOOKS, None, None).await.status,
        401,
        "the reset ended Fay's session"
    );
}

async fn sessions_end_on_password_change_and_disable(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let gus = person(&app, "gus@example.com", "member").await;
    let mut a = Visitor::new(&app);
    a.login_ok("gus@example.com").await;
    let mut b = Visitor::new(&app);
    b.login_ok("gus@example.com").await;

    let reset = app
        .owner(
            Method::POST,
            &format!("/v3/users/{}/reset-password", gus.id),
            None,
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(a.api(Method::GET, HOOKS, None, None).await.status, 401);
    assert_eq!(b.api(Method::GET, HOOKS, None, None).await.status, 401);
    assert_eq!(
        Visitor::new(&app)
            .login("gus@example.com", PASSWORD)
            .await
            .status,
        401,
        "old password ended"
    );

    let link = path_of(reset.body["data"]["setup_url"].as_str().unwrap());
    let mut c = Visitor::new(&app);
    assert_eq!(
        c.fill_setup(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
            .await
            .status,
        303
    );
    assert_eq!(c.api(Method::GET, HOOKS, None, None).await.status, 200);

    let disable = app
        .owner(
            Method::PUT,
            &format!("/v3/users/{}", gus.id),
            Some(&json!({"disabled": true})),
        )
        .await;
    assert_eq!(disable.status, 200, "{}", disable.body);
    assert_eq!(disable.body["data"]["status"], "disabled");
    assert_eq!(c.api(Method::GET, HOOKS, None, None).await.status, 401);
    assert_eq!(
        Visitor::new(&app)
            .login("gus@example.com", PASSWORD)
            .await
            .status,
        401
    );
}

/// A user made through the API by the owner token: its id.
async fn api_user(app: &crate::helpers::TestApp, email: &str, role: &str) -> String {
    let body = json!({"email": email, "name": email, "role": role});
    let made = app.owner(Method::POST, "/v3/users", Some(&body)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["data"]["id"].as_str().unwrap().to_owned()
}

/// A PUT by a logged-in person.
async fn put(
    o: &mut Visitor,
    csrf: &str,
    path: &str,
    body: Value,
) -> crate::helpers::visitor::Page {
    o.api(Method::PUT, path, Some(&body), Some(csrf)).await
}

async fn users_api_lists_the_roles_in_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let roles = app.owner(Method::GET, "/v3/users/roles", None).await;
    let slugs: Vec<&str> = roles.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["owner", "admin", "member", "viewer"]);
}

async fn users_api_refuses_a_taken_email_bad_fields_and_unknown_ones(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let create = |body: Value| {
        let app = &app;
        async move { app.owner(Method::POST, "/v3/users", Some(&body)).await }
    };
    let hal = create(json!({"email": "hal@example.com", "name": "Hal", "role": "admin"})).await;
    assert_eq!(hal.status, 201);
    let dup = create(json!({"email": "HAL@example.com", "name": "Hal 2", "role": "viewer"})).await;
    assert_eq!(dup.status, 409);
    assert!(
        dup.message().contains("HAL@example.com") || dup.message().contains("hal@example.com"),
        "{}",
        dup.message()
    );
    let bad = create(json!({"email": "nope", "name": "", "role": "superuser"})).await;
    assert_eq!(bad.status, 422);
    let fields: Vec<&str> = bad.body["meta"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "role"], "{}", bad.body);
    assert!(bad.message().contains("owner, admin, member, viewer"));
    let unknown =
        create(json!({"email": "x@example.com", "name": "X", "role": "viewer", "password": "x"}))
            .await;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.message().contains("password"),
        "{}",
        unknown.message()
    );
    assert_eq!(
        app.owner(Method::GET, "/v3/users", None).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing but Hal written"
    );
}

async fn users_api_keeps_an_owner_and_only_owners_touch_owners(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let owner = person(&app, "own@example.com", "owner").await;
    let hal_id = api_user(&app, "hal@example.com", "admin").await;
    let jo_path = format!(
        "/v3/users/{}",
        api_user(&app, "jo@example.com", "viewer").await
    );
    // The last owner stays, whoever asks.
    let own_path = format!("/v3/users/{}", owner.id);
    let mut o = Visitor::new(&app);
    let csrf = o.login_ok("own@example.com").await;
    let demote = put(&mut o, &csrf, &own_path, json!({"role": "admin"})).await;
    assert_eq!(demote.status, 409, "{}", demote.text);
    assert!(demote.text.contains("without an owner"), "{}", demote.text);
    let disable = put(&mut o, &csrf, &own_path, json!({"disabled": true})).await;
    assert_eq!(disable.status, 409);
    let delete = o.api(Method::DELETE, &own_path, None, Some(&csrf)).await;
    assert_eq!(delete.status, 409);
    // A token may not touch owners at all (only owners and the command line do).
    let hal_path = format!("/v3/users/{hal_id}");
    let promote = app
        .owner(Method::PUT, &hal_path, Some(&json!({"role": "owner"})))
        .await;
    assert_eq!(promote.status, 403);
    assert!(
        promote.message().contains("only an owner"),
        "{}",
        promote.message()
    );
    assert_eq!(app.owner(Method::DELETE, &own_path, None).await.status, 403);
    // An owner promotes; then the first owner may step down, and is a member from then on.
    let promoted = put(&mut o, &csrf, &hal_path, json!({"role": "owner"})).await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    let stepped = put(&mut o, &csrf, &own_path, json!({"role": "member"})).await;
    assert_eq!(stepped.status, 200, "{}", stepped.text);
    let member_now = put(&mut o, &csrf, &jo_path, json!({"name": "x"})).await;
    assert_eq!(
        member_now.status, 403,
        "the stepped-down owner is a member now: {}",
        member_now.text
    );
}

async fn users_api_takes_back_what_it_shows_but_not_a_new_email(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let jo_path = format!(
        "/v3/users/{}",
        api_user(&app, "jo@example.com", "viewer").await
    );
    let mut shown = app.owner(Method::GET, &jo_path, None).await.body["data"].clone();
    shown["name"] = json!("Jo March");
    shown["role"] = json!("member");
    let put = app.owner(Method::PUT, &jo_path, Some(&shown)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(
        (
            put.body["data"]["name"].as_str(),
            put.body["data"]["role"].as_str()
        ),
        (Some("Jo March"), Some("member"))
    );
    shown["email"] = json!("someone-else@example.com");
    let moved = app.owner(Method::PUT, &jo_path, Some(&shown)).await;
    assert_eq!(moved.status, 409, "a clash with the stored person");
    assert!(
        moved.message().contains("email: cannot be changed"),
        "{}",
        moved.message()
    );
}

async fn users_api_shows_no_other_organizations_users(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hal_id = api_user(&app, "hal@example.com", "admin").await;
    let other = tocsin::domain::organization::Organization::new("Other");
    app.store.create_organization(&other).await.unwrap();
    let theirs = tocsin::domain::token::NewToken::generate(
        &other.id,
        "x",
        vec![tocsin::domain::token::Ability::Admin],
    );
    app.store
        .create_token(
            &theirs,
            &tocsin::domain::audit::token_created(
                &theirs.token,
                &tocsin::domain::audit::Actor::cli(),
            ),
        )
        .await
        .unwrap();
    let t = Some(theirs.plaintext.as_str());
    let hal_path = format!("/v3/users/{hal_id}");
    assert_eq!(app.call(Method::GET, &hal_path, t, None).await.status, 404);
    assert_eq!(
        app.call(Method::DELETE, &hal_path, t, None).await.status,
        404
    );
    assert_eq!(
        app.call(Method::GET, "/v3/users", t, None).await.body["data"],
        json!([])
    );
}

async fn tokens_api(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let made = app
        .owner(Method::POST, "/v3/api-tokens", Some(&json!({"name": "deploy", "abilities": ["read", "manage-webhooks"], "expires_at": "2099-01-01T00:00:00Z"})))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let plaintext = made.body["data"]["token"].as_str().unwrap().to_owned();
    let id = made.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["data"]["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(
        app.call(Method::GET, HOOKS, Some(&plaintext), None)
            .await
            .status,
        200
    );

    let list = app.owner(Method::GET, "/v3/api-tokens", None).await;
    let text = list.body.to_string();
    assert!(!text.contains(&plaintext), "shown once");
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["status"], "active");
    crate::helpers::eventually(
        "last use recorded",
        || async { app.owner(Method::GET, "/v3/api-tokens", None).await.body["data"].clone() },
        |data: &Value| {
            data.as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id.as_str() && t["last_used_at"].is_string())
        },
    )
    .await;

    let bad = app
        .owner(
            Method::POST,
            "/v3/api-tokens",
            Some(
                &json!({"name": "", "abilities": ["write"], "expires_at": "2001-01-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(bad.status, 422);
    let fields: Vec<&str> = bad.body["meta"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "abilities", "expires_at"], "{}", bad.body);

    // An expired token is refused with the reason.
    let owner_org = app.organization().await;
    let mut short = tocsin::domain::token::NewToken::generate(
        &owner_org.id,
        "short",
        vec![tocsin::domain::token::Ability::Read],
    );
    short.token.expires_at = Some(Timestamp::from_micros(Timestamp::now().as_micros() - 1));
    app.store
        .create_token(
            &short,
            &tocsin::domain::audit::token_created(
                &short.token,
                &tocsin::domain::audit::Actor::cli(),
            ),
        )
        .await
        .unwrap();
    let expired = app
        .call(Method::GET, HOOKS, Some(&short.plaintext), None)
        .await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );

    // A manage-webhooks token cannot manage tokens.
    assert_eq!(
        app.call(Method::GET, "/v3/api-tokens", Some(&plaintext), None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.owner(Method::DELETE, &format!("/v3/api-tokens/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        app.owner(Method::DELETE, &format!("/v3/api-tokens/{id}"), None)
            .await
            .status,
        404
    );
    crate::helpers::eventually(
        "revocation holds",
        || async {
            app.call(Method::GET, HOOKS, Some(&plaintext), None)
                .await
                .status
        },
        |s| *s == 401,
    )
    .await;
}

async fn audit_records_webhook_changes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "ida@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("ida@example.com").await;
    let mut body = minimal_webhook("audited");
    body["header"] = json!({"Authorization": "Bearer first-secret-1111", "X-Team": "sre"});
    let created = v.api(Method::POST, HOOKS, Some(&body), Some(&csrf)).await;
    assert_eq!(created.status, 201);
    let hook = created.json()["data"].clone();
    let id = hook["id"].as_str().unwrap();
    let signing_secret = hook["secret"].as_str().unwrap().to_owned();

    let mut edited = hook.clone();
    edited.as_object_mut().unwrap().remove("secret");
    edited["name"] = json!("audited, renamed");
    edited["header"] = json!({"Authorization": "Bearer second-secret-2222", "X-Team": "sre"});
    assert_eq!(
        v.api(
            Method::PUT,
            &format!("{HOOKS}/{id}"),
            Some(&edited),
            Some(&csrf)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        v.api(
            Method::POST,
            &format!("{HOOKS}/{id}/rotate-secret"),
            None,
            Some(&csrf)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        v.api(Method::DELETE, &format!("{HOOKS}/{id}"), None, Some(&csrf))
            .await
            .status,
        204
    );

    let log = v
        .api(
            Method::GET,
            &format!("/v3/audit-logs?object={id}"),
            None,
            None,
        )
        .await;
    assert_eq!(log.status, 200);
    let entries = log.json()["data"]["result"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.deleted",
            "webhook.secret_rotated",
            "webhook.updated",
            "webhook.created"
        ]
    );
    for e in &entries {
        assert_eq!(e["actor"]["name"], "ida@example.com");
        assert_eq!(e["actor"]["type"], "user");
        assert_eq!(e["object"]["id"], id);
    }
    let changes = &entries[2]["changes"];
    assert_eq!(
        changes["name"],
        json!({"before": "audited", "after": "audited, renamed"})
    );
    assert_eq!(
        changes["header.Authorization"],
        json!({"before": "****1111", "after": "****2222"})
    );
    assert!(
        changes.get("header.X-Team").is_none(),
        "unchanged fields are not listed: {changes}"
    );
    assert_eq!(entries[3]["changes"]["header.X-Team"]["after"], "sre");
    let text = log.text.clone();
    for secret in ["first-secret", "second-secret", &signing_secret, PASSWORD] {
        assert!(
            !text.contains(secret),
            "{secret} must never be in the audit log"
        );
    }

    // Filters and paging.
    let by_action = app
        .owner(Method::GET, "/v3/audit-logs?action=webhook.updated", None)
        .await;
    assert_eq!(
        by_action.body["data"]["result"].as_array().unwrap().len(),
        1
    );
    let by_actor = app
        .owner(
            Method::GET,
            "/v3/audit-logs?actor=ida@example.com&limit=1",
            None,
        )
        .await;
    let first = by_actor.body["data"]["result"][0].clone();
    assert_eq!(first["action"], "webhook.deleted");
    let cursor = by_actor.body["data"]["meta"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app
        .owner(
            Method::GET,
            &format!("/v3/audit-logs?actor=ida@example.com&limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        second.body["data"]["result"][0]["action"],
        "webhook.secret_rotated"
    );
    let one = app
        .owner(
            Method::GET,
            &format!("/v3/audit-logs/{}", first["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(one.body["data"], first);
    assert_eq!(
        app.owner(Method::GET, "/v3/audit-logs?since=yesterday", None)
            .await
            .status,
        400
    );

    // Users and tokens are audited too, by whoever did it.
    app.owner(
        Method::POST,
        "/v3/users",
        Some(&json!({"email": "jo@example.com", "name": "Jo", "role": "viewer"})),
    )
    .await;
    let users = app
        .owner(Method::GET, "/v3/audit-logs?action=user.created", None)
        .await;
    let entry = &users.body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["object"]["name"] == "jo@example.com")
        .unwrap()
        .clone();
    assert_eq!(
        entry["actor"],
        json!({"type": "token", "id": entry["actor"]["id"], "name": "owner"})
    );
    assert_eq!(entry["changes"]["role"]["after"], "viewer");
}

/// A right-to-left override (or any text-direction control) makes a name read as
/// something else ("\u{202E}gnp.exe" shows as "exe.png"): every name a person reads in a
/// list refuses them, naming the field.
async fn names_refuse_text_direction_controls(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let tricky = "Ops \u{202E}nimda";
    let mut webhook = minimal_webhook("x");
    webhook["name"] = json!(tricky);
    let source = json!({"name": tricky, "kind": "alertmanager"});
    let user = json!({"email": "rtl@example.com", "name": tricky, "role": "member"});
    let token = json!({"name": "deploy \u{2066}bot\u{2069}", "abilities": ["read"]});
    for (path, body) in [
        ("/v3/extensions/event-webhooks", &webhook),
        ("/v3/sources", &source),
        ("/v3/users", &user),
        ("/v3/api-tokens", &token),
    ] {
        let refused = app.owner(Method::POST, path, Some(body)).await;
        assert_eq!(refused.status, 422, "{path}: {}", refused.body);
        let text = refused.body.to_string();
        assert!(
            text.contains("\"name\"") && text.contains("text-direction"),
            "{path}: {text}"
        );
    }
    assert_eq!(app.webhook_count().await, 0);
}

/// No token outlives the admin behind it: disabling a person revokes the tokens they made
/// and the tokens those tokens made (audited, with the reason); deleting does too; each
/// list says who is behind a token, and the operator's own tokens stay.
async fn tokens_go_with_the_person_behind_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let make = |by: &str, name: &str| {
        let body = json!({"name": name, "abilities": ["admin"]}).to_string();
        let by = by.to_owned();
        let app = &app;
        async move {
            let made = app
                .call(Method::POST, "/v3/api-tokens", Some(&by), Some(body))
                .await;
            assert_eq!(made.status, 201, "{}", made.body);
            made.body["data"].clone()
        }
    };
    for (email, disable) in [("ada@example.com", true), ("bo@example.com", false)] {
        let person = person(&app, email, "admin").await;
        let mut v = Visitor::new(&app);
        let csrf = v.login_ok(email).await;
        let made = v
            .api(
                Method::POST,
                "/v3/api-tokens",
                Some(&json!({"name": format!("{email} ci"), "abilities": ["admin"]})),
                Some(&csrf),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
        let first = made.json()["data"].clone();
        assert_eq!(first["created_by"]["email"], email);
        let first_token = first["token"].as_str().unwrap().to_owned();
        // A token made by that token is the same person's.
        let second = make(&first_token, &format!("{email} deploy")).await;
        assert_eq!(second["created_by"]["id"], person.id.as_str());
        let second_token = second["token"].as_str().unwrap().to_owned();
        for token in [&first_token, &second_token] {
            assert_eq!(
                app.call(Method::GET, HOOKS, Some(token), None).await.status,
                200
            );
        }

        let gone = if disable {
            app.owner(
                Method::PUT,
                &format!("/v3/users/{}", person.id),
                Some(&json!({"disabled": true})),
            )
            .await
        } else {
            app.owner(Method::DELETE, &format!("/v3/users/{}", person.id), None)
                .await
        };
        assert!(gone.status == 200 || gone.status == 204, "{}", gone.body);
        for token in [&first_token, &second_token] {
            // Refused within the token cache's 100 ms, as a revocation is.
            crate::helpers::eventually(
                "the person's tokens refused",
                || async { app.call(Method::GET, HOOKS, Some(token), None).await.status },
                |status| *status == 401,
            )
            .await;
            let invite = app
                .call(
                    Method::POST,
                    "/v3/users",
                    Some(token),
                    Some(
                        json!({"email": "new-admin@example.com", "name": "N", "role": "admin"})
                            .to_string(),
                    ),
                )
                .await;
            assert_eq!(invite.status, 401, "the probe's case: {}", invite.body);
        }
    }
    // A token made for a person who is gone in the same moment (a race with the disable):
    // refused all the same, its person being disabled or gone.
    let org = app.organization().await;
    for email in ["ada@example.com", "bo@example.com"] {
        let mut late = tocsin::domain::token::NewToken::generate(
            &org.id,
            "late",
            vec![tocsin::domain::token::Ability::Admin],
        );
        let behind = app.store.user_by_email(&org.id, email).await.unwrap();
        late.token.created_by = Some(tocsin::domain::token::TokenCreator {
            user_id: behind.map_or_else(|| "usr_gone".to_owned(), |u| u.id),
            email: email.to_owned(),
        });
        let entry =
            tocsin::domain::audit::token_created(&late.token, &tocsin::domain::audit::Actor::cli());
        app.store.create_token(&late, &entry).await.unwrap();
        let refused = app
            .call(Method::GET, HOOKS, Some(&late.plaintext), None)
            .await;
        assert_eq!(refused.status, 401, "{email}: {}", refused.body);
    }

    let list = app.owner(Method::GET, "/v3/api-tokens", None).await;
    let tokens = list.body["data"].as_array().unwrap();
    let revoked: Vec<&str> = tokens
        .iter()
        .filter(|t| t["status"] == "revoked")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        revoked.len(),
        6,
        "the four and the two late ones: {}",
        list.body
    );
    let owner = tokens.iter().find(|t| t["name"] == "owner").unwrap();
    assert_eq!(owner["status"], "active");
    assert!(
        owner["created_by"].is_null(),
        "the first start's is the operator's"
    );
    let audit = app
        .owner(Method::GET, "/v3/audit-logs?action=token.revoked", None)
        .await;
    let entries = audit.body["data"]["result"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{}", audit.body);
    assert!(
        entries[0]["changes"].to_string().contains("user.deleted")
            && entries[3]["changes"].to_string().contains("user.disabled"),
        "{}",
        audit.body
    );
}

async fn audit_text(app: &crate::helpers::TestApp) -> String {
    app.owner(Method::GET, "/v3/audit-logs?limit=200", None)
        .await
        .body
        .to_string()
}

/// Refused actions leave entries: a failed login (by the address it came from, whoever's
/// email), a call or a page the role does not allow, a write without its CSRF token, a
/// revoked token — each saying why and never what was submitted; a flood of refusals by
/// one actor is audited ten times, not a thousand.
async fn refused_actions_are_audited(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let val = person(&app, "val@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    assert_eq!(
        v.login("val@example.com", "my secret guess").await.status,
        401
    );
    assert_eq!(
        v.login("nobody@example.com", "another guess").await.status,
        401
    );
    let csrf = v.login_ok("val@example.com").await;
    let api = v
        .api(
            Method::POST,
            HOOKS,
            Some(&minimal_webhook("nope")),
            Some(&csrf),
        )
        .await;
    assert_eq!(api.status, 403);
    let page = v.get("/webhooks/new").await;
    assert_eq!(page.status, 403);
    let no_csrf = v
        .post_form("/tokens", &[("name", "x"), ("abilities", "read")])
        .await;
    assert_eq!(no_csrf.status, 403);
    let token = app
        .owner(
            Method::POST,
            "/v3/api-tokens",
            Some(&json!({"name": "ci", "abilities": ["read"]})),
        )
        .await;
    let (token_id, plaintext) = (
        token.body["data"]["id"].as_str().unwrap().to_owned(),
        token.body["data"]["token"].as_str().unwrap().to_owned(),
    );
    app.owner(Method::DELETE, &format!("/v3/api-tokens/{token_id}"), None)
        .await;
    crate::helpers::eventually(
        "the revoked token refused",
        || async {
            app.call(Method::GET, HOOKS, Some(&plaintext), None)
                .await
                .status
        },
        |s| *s == 401,
    )
    .await;

    let entries = |action: &'static str| {
        let app = &app;
        async move {
            app.owner(
                Method::GET,
                &format!("/v3/audit-logs?action={action}"),
                None,
            )
            .await
            .body["data"]["result"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let logins = crate::helpers::eventually(
        "two failed logins",
        || entries("login.failed"),
        |e| e.len() == 2,
    )
    .await;
    let (unknown, known) = (&logins[0], &logins[1]);
    assert_eq!(known["actor"]["type"], "anonymous");
    assert_eq!(known["actor"]["id"], "127.0.0.1");
    assert_eq!(known["object"]["id"], val.id.as_str());
    assert_eq!(
        unknown["object"]["name"], "an unknown email",
        "never the text typed (it may be a password)"
    );
    assert!(!audit_text(&app).await.contains("nobody@example.com"));
    let refused = crate::helpers::eventually(
        "two refused",
        || entries("access.refused"),
        |e| e.len() == 2,
    )
    .await;
    for entry in &refused {
        assert_eq!(entry["actor"]["name"], "val@example.com", "{entry}");
    }
    let api_refusal = refused
        .iter()
        .find(|e| e["object"]["id"] == format!("POST {HOOKS}"))
        .expect("the API call's");
    assert!(
        api_refusal["changes"]["reason"]["after"]
            .as_str()
            .unwrap()
            .contains("manage-webhooks"),
        "{api_refusal}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["object"]["id"] == "GET /webhooks/new"),
        "the page's"
    );
    let csrf_entries = crate::helpers::eventually(
        "the CSRF refusal",
        || entries("csrf.refused"),
        |e| e.len() == 1,
    )
    .await;
    assert_eq!(csrf_entries[0]["object"]["id"], "POST /tokens");
    let tokens = crate::helpers::eventually(
        "the revoked token's",
        || entries("token.refused"),
        |e| !e.is_empty(),
    )
    .await;
    assert_eq!(tokens[0]["actor"]["id"], token_id.as_str());
    assert_eq!(
        tokens[0]["changes"]["reason"]["after"],
        "the token was revoked"
    );
    let everything = app
        .owner(Method::GET, "/v3/audit-logs?limit=200", None)
        .await
        .body
        .to_string();
    assert!(
        !everything.contains("my secret guess") && !everything.contains(&plaintext),
        "nothing submitted is recorded"
    );

    // A flood: thirty refused calls, at most the burst of ten audited (give or take what
    // refills meanwhile). A refusal of another kind after it (its own budget) is written
    // after the flood's: once it shows, the flood's entries are in.
    let started = std::time::Instant::now();
    for _ in 0..30 {
        v.api(
            Method::DELETE,
            &format!("{HOOKS}/whk_nope"),
            None,
            Some(&csrf),
        )
        .await;
    }
    let marker = v
        .post_form(
            "/tokens",
            &[("name", "after the flood"), ("abilities", "read")],
        )
        .await;
    assert_eq!(marker.status, 403);
    crate::helpers::eventually(
        "the marker's entry",
        || entries("csrf.refused"),
        |e| e.len() == 2,
    )
    .await;
    let flood = entries("access.refused").await;
    let refilled = (started.elapsed().as_secs() / 6) as usize + 1;
    assert!(
        flood.len() >= 10 && flood.len() <= 10 + refilled,
        "{} entries of 32 refusals",
        flood.len()
    );
}

/// With SMTP set up, an invitation is e-mailed (the link also shown once, copyable); without
/// it, the form says e-mail is off and the link is to be sent by hand. A person is deleted
/// from the page, after its confirmation, and not by a viewer.
async fn invitations_go_by_e_mail_and_people_are_deleted_from_the_page(backend: Backend) {
    let smtp = crate::helpers::smtp_server::SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = smtp.port;
        c.smtp.tls = tocsin::config::SmtpTls::None;
        c.smtp.from = "tocsin@test.local".into();
    })
    .await
    else {
        return;
    };
    person(&app, "ann@example.com", "admin").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("ann@example.com").await;
    let form = v.get("/users").await;
    assert!(
        form.text.contains(r#"name="send_email" checked"#),
        "{}",
        form.text
    );
    let invited = v
        .post_form(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("email", "jo@example.com"),
                ("name", "Jo"),
                ("role", "member"),
                ("send_email", "on"),
            ],
        )
        .await;
    assert_eq!(invited.status, 303, "{}", invited.text);
    let shown = v.follow(&invited).await;
    assert!(
        shown.text.contains("E-mailed to jo@example.com"),
        "{}",
        shown.text
    );
    let link = shown
        .text
        .split(r#"<code id="setup-link">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the link is shown too")
        .to_owned();
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].to, vec!["jo@example.com".to_owned()]);
    assert!(mails[0].text.contains(&link), "{}\n{link}", mails[0].text);
    assert!(
        mails[0].subject.contains("invited you"),
        "{}",
        mails[0].subject
    );

    // Deleted from the page; a viewer may not.
    let jo = app
        .store
        .list_users(&app.organization().await.id)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == "jo@example.com")
        .unwrap();
    person(&app, "vi@example.com", "viewer").await;
    let mut viewer = Visitor::new(&app);
    let viewer_csrf = viewer.login_ok("vi@example.com").await;
    let path = format!("/users/{}/delete", jo.id);
    let refused = viewer
        .post_form(&path, &[("csrf_token", &viewer_csrf)])
        .await;
    assert_eq!(refused.status, 403);
    let page = v.get("/users").await;
    assert!(
        page.text.contains(&format!(r#"action="{path}""#)),
        "{}",
        page.text
    );
    let deleted = v.post_form(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.text);
    assert_eq!(deleted.location(), "/users?done=user-deleted");
    let gone = app
        .owner(Method::GET, &format!("/v3/users/{}", jo.id), None)
        .await;
    assert_eq!(gone.status, 404);
    assert!(audit_text(&app).await.contains("user.deleted"));

    // Without SMTP the form says so, and the link is to be sent by hand.
    let Some(plain) = spawn_app(backend).await else {
        return;
    };
    person(&plain, "ann@example.com", "admin").await;
    let mut v = Visitor::new(&plain);
    let csrf = v.login_ok("ann@example.com").await;
    let form = v.get("/users").await;
    assert!(form.text.contains("E-mail is off"), "{}", form.text);
    let invited = v
        .post_form(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("email", "jo@example.com"),
                ("name", "Jo"),
                ("role", "member"),
            ],
        )
        .await;
    let shown = v.follow(&invited).await;
    assert!(shown.text.contains("Send it to them"), "{}", shown.text);
}

both_backends!(
    invitations_go_by_e_mail_and_people_are_deleted_from_the_page,
    refused_actions_are_audited,
    one_address_never_locks_everyone_out,
    tokens_go_with_the_person_behind_them,
    names_refuse_text_direction_controls,
    first_start_link_creates_the_owner_once,
    login_logout_and_cookie_flags,
    cookie_is_secure_behind_https,
    csrf_guards_cookie_writes,
    roles_allow_and_refuse,
    login_throttling,
    login_throttling_is_shared_by_every_node,
    guesses_sent_at_once_are_throttled_together,
    an_owner_unlocks_a_person_locked_out_by_failed_logins,
    setup_links_expire_and_work_once,
    sessions_end_on_password_change_and_disable,
    users_api_lists_the_roles_in_order,
    users_api_refuses_a_taken_email_bad_fields_and_unknown_ones,
    users_api_keeps_an_owner_and_only_owners_touch_owners,
    users_api_takes_back_what_it_shows_but_not_a_new_email,
    users_api_shows_no_other_organizations_users,
    tokens_api,
    audit_records_webhook_changes,
);
