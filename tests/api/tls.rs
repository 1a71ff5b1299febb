//! PostgreSQL over TLS: `sslmode` and `sslrootcert` in `database_url`. Needs a cluster that
//! accepts only TLS (`TEST_POSTGRES_TLS_URL`) and its CA (`TEST_POSTGRES_TLS_CA`); `.ci/run`
//! makes one with `.ci/postgres-tls`. Without them the test prints a SKIPPED line (under
//! `CI=true` it fails).

use tocsin::store;

use crate::helpers::test_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verifies_the_server() {
    let (Ok(base), Ok(ca)) = (
        std::env::var("TEST_POSTGRES_TLS_URL"),
        std::env::var("TEST_POSTGRES_TLS_CA"),
    ) else {
        crate::helpers::skipped(
            "SKIPPED on PostgreSQL over TLS: set TEST_POSTGRES_TLS_URL and TEST_POSTGRES_TLS_CA (.ci/postgres-tls makes a cluster)",
        );
        return;
    };
    assert!(
        std::path::Path::new(&ca).is_file(),
        "TEST_POSTGRES_TLS_CA names {ca}, which is not a readable file (run .ci/postgres-tls)"
    );
    sqlx::any::install_default_drivers();
    let verified = |db: &str, root: &str| {
        format!(
            "{}/{db}?sslmode=verify-full&sslrootcert={root}",
            base.rsplit_once('/').unwrap().0
        )
    };
    // A database of the test's own, made over a verified connection.
    let name = format!("tocsin_tls_{}", rand_suffix());
    let admin = sqlx::postgres::PgPool::connect(&verified("postgres", &ca))
        .await
        .expect("verify-full with the cluster's CA connects");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();

    let url = verified(&name, &ca);
    let opened = store::open(&url, &test_key()).await;
    let result = async {
        let store = opened.map_err(|e| format!("tocsin opens the database over TLS: {e}"))?;
        store.ping().await.map_err(|e| e.to_string())?;
        let pool = sqlx::postgres::PgPool::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
        if !ssl {
            return Err("the connection is not encrypted".to_owned());
        }
        // Another CA does not vouch for this server: refused, not connected in clear.
        let public_roots = "/etc/ssl/certs/ca-certificates.crt";
        if std::path::Path::new(public_roots).exists() {
            match store::open(&verified(&name, public_roots), &test_key()).await {
                Ok(_) => return Err("a server the CA did not sign was trusted".to_owned()),
                Err(e) => {
                    let text = e.to_string().to_lowercase();
                    if !(text.contains("certificate") || text.contains("tls")) {
                        return Err(format!("the refusal should say why: {e}"));
                    }
                }
            }
        } else {
            crate::helpers::skipped(&format!("SKIPPED the wrong-CA check: no {public_roots}"));
        }
        // Plain text is refused by this cluster.
        let plain = format!(
            "{}/{name}?sslmode=disable",
            base.rsplit_once('/').unwrap().0
        );
        if store::open(&plain, &test_key()).await.is_ok() {
            return Err("a plain connection was accepted".to_owned());
        }
        Ok(())
    }
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    result.unwrap();
}

fn rand_suffix() -> String {
    tocsin::domain::ids::new_id("x")
        .to_lowercase()
        .replace('_', "")
}
