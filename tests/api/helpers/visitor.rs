//! A person's browser, spoken over plain HTTP: it keeps the session cookie, reads the
//! CSRF token from pages, and never follows redirects (tests look at them).

use reqwest::{header, Method};
use serde_json::Value;
use tocsin::{
    accounts::{self, NewUser},
    domain::{
        audit::Actor,
        user::{Manager, User},
    },
};

use crate::helpers::TestApp;

pub const PASSWORD: &str = "plum orbit candle ferry";

pub struct Page {
    pub status: u16,
    pub headers: header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("JSON, got {}", self.text))
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn set_cookie(&self) -> &str {
        self.headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The login form's hidden `login_token`.
    pub fn login_token(&self) -> Option<String> {
        let marker = r#"name="login_token" value=""#;
        let start = self.text.find(marker)? + marker.len();
        let end = self.text[start..].find('"')? + start;
        Some(self.text[start..end].to_owned())
    }

    /// The value of `<meta name="csrf-token" content="…">`.
    pub fn csrf(&self) -> Option<String> {
        let start = self.text.find(r#"<meta name="csrf-token" content=""#)? + 33;
        let end = self.text[start..].find('"')? + start;
        Some(self.text[start..end].to_owned())
    }
}

pub struct Visitor {
    base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
    /// The login form's own cookie (`tocsin_login`), kept from the last login page.
    login_cookie: Option<String>,
    /// The setup form's (`tocsin_setup`), kept from the last setup page.
    setup_cookie: Option<String>,
    /// Sent as `X-Forwarded-For`, as a reverse proxy in front of tocsin would.
    pub forwarded_for: Option<String>,
    /// What a page shows once after a POST (`tocsin_once`), kept until it is shown.
    once_cookie: Option<String>,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.address)
    }

    pub fn at(base: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Visitor {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            login_cookie: None,
            setup_cookie: None,
            forwarded_for: None,
            once_cookie: None,
        }
    }

    /// Sends a request with the session cookie; remembers a cookie the answer sets (an
    /// emptied one is forgotten).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        csrf: Option<&str>,
    ) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.client.request(method, url);
        let cookies: Vec<String> = [
            self.cookie.as_ref().map(|c| format!("tocsin_session={c}")),
            self.login_cookie
                .as_ref()
                .map(|c| format!("tocsin_login={c}")),
            self.setup_cookie
                .as_ref()
                .map(|c| format!("tocsin_setup={c}")),
            self.once_cookie
                .as_ref()
                .map(|c| format!("tocsin_once={c}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        if let Some(client) = &self.forwarded_for {
            request = request.header("X-Forwarded-For", client);
        }
        if let Some((content_type, body)) = body {
            request = request
                .header(header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // The pages escape `/` in HTML as `&#x2f;` (valid, and what a browser decodes);
        // tests read the text as a browser would show it.
        let text = response
            .text()
            .await
            .unwrap_or_default()
            .replace("&#x2f;", "/");
        let page = Page {
            status,
            headers,
            text,
        };
        for set in page.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap_or("");
            let value = |name: &str| {
                set.strip_prefix(name)
                    .and_then(|rest| rest.split(';').next())
                    .map(str::to_owned)
            };
            if let Some(v) = value("tocsin_session=") {
                self.cookie = (!v.is_empty()).then_some(v);
            } else if let Some(v) = value("tocsin_login=") {
                self.login_cookie = (!v.is_empty()).then_some(v);
            } else if let Some(v) = value("tocsin_setup=") {
                self.setup_cookie = (!v.is_empty()).then_some(v);
            } else if let Some(v) = value("tocsin_once=") {
                self.once_cookie = (!v.is_empty()).then_some(v);
            }
        }
        page
    }

    /// Follows a redirect's `Location` (a 303 after a POST), as a browser does.
    pub async fn follow(&mut self, page: &Page) -> Page {
        assert!(
            (300..400).contains(&page.status),
            "a redirect, got {}: {}",
            page.status,
            page.text
        );
        let to = page.location().to_owned();
        self.get(&to).await
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Method::POST,
            path,
            Some(("application/x-www-form-urlencoded", body)),
            None,
        )
        .await
    }

    /// A JSON API call with the session; writes send `csrf` as the header.
    pub async fn api(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        csrf: Option<&str>,
    ) -> Page {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.send(method, path, body, csrf).await
    }

    /// Logs in as a browser does: the login page first (its token and cookie), then the
    /// form.
    pub async fn login(&mut self, email: &str, password: &str) -> Page {
        self.login_at("/login", email, password).await
    }

    /// The same, posting to `path` (a `/login?next=…`).
    pub async fn login_at(&mut self, path: &str, email: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let token = form.login_token().unwrap_or_default();
        self.post_form(
            path,
            &[
                ("email", email),
                ("password", password),
                ("login_token", &token),
            ],
        )
        .await
    }

    /// Fills in a setup link's form as a browser does: the page first (its token and
    /// cookie), then the form with `fields`.
    pub async fn fill_setup(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let form = self.get(path).await;
        let token = form.login_token().unwrap_or_default();
        let mut fields = fields.to_vec();
        fields.push(("login_token", &token));
        self.post_form(path, &fields).await
    }

    /// Logs in (which must work) and returns the CSRF token of the home page.
    pub async fn login_ok(&mut self, email: &str) -> String {
        let page = self.login(email, PASSWORD).await;
        assert_eq!(page.status, 303, "login of {email}: {}", page.text);
        let home = self.get("/").await;
        assert_eq!(home.status, 200, "{}", home.text);
        home.csrf().expect("pages carry the CSRF token")
    }
}

/// A user with the test password, made as the command line would.
pub async fn person(app: &TestApp, email: &str, role: &str) -> User {
    let org = app.organization().await;
    let input = NewUser {
        email: email.to_owned(),
        name: format!("{role} person"),
        role: role.to_owned(),
        password: Some(PASSWORD.to_owned()),
    };
    accounts::create_user(
        app.store.as_ref(),
        &org.id,
        input,
        Manager::Cli,
        &Actor::cli(),
    )
    .await
    .expect("user created")
    .0
}
