//! Where the installation's secret key (see `domain::sealing`) comes from: `secret_key` /
//! `TOCSIN_SECRET_KEY` when set, else `tocsin.key` beside the SQLite database (in the
//! working directory for PostgreSQL), generated on first start readable by its owner only.
//! Also `tocsin rotate-key`, which writes the new key file before the database changes and
//! moves it into place after, so an interruption at any point leaves a key that opens it.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;

use crate::{
    config::Config,
    domain::{sealing::SecretKey, Timestamp},
    store::{self, Store, StoreError},
};

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Configured,
    /// A key file; `created` on the start that generated it.
    File {
        path: PathBuf,
        created: bool,
    },
}

/// The store, opened with the installation's key.
pub struct Unlocked {
    pub store: Arc<dyn Store>,
    pub key: SecretKey,
    pub origin: KeyOrigin,
}

/// The key file for a database: beside an SQLite file, else in the working directory.
pub fn key_path(database_url: &str) -> PathBuf {
    let sqlite_file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(""))
        .filter(|path| !path.is_empty() && *path != ":memory:");
    let dir = sqlite_file
        .and_then(|file| Path::new(file).parent())
        .filter(|dir| !dir.as_os_str().is_empty());
    dir.unwrap_or(Path::new(".")).join("tocsin.key")
}

fn next_path(path: &Path) -> PathBuf {
    path.with_extension("key.next")
}

/// Opens the store with the configured key, or the key file (generated if missing). A
/// rotation interrupted after its commit is finished here.
pub async fn open_store(config: &Config) -> anyhow::Result<Unlocked> {
    if !config.secret_key.is_empty() {
        let key = SecretKey::from_base64(&config.secret_key)
            .map_err(|e| anyhow::anyhow!("secret_key (or TOCSIN_SECRET_KEY) {e}"))?;
        let store = open(config, &key).await?;
        return Ok(Unlocked {
            store,
            key,
            origin: KeyOrigin::Configured,
        });
    }
    let path = key_path(&config.database_url);
    let next = next_path(&path);
    let (key, created) = match read_key(&path)? {
        Some(key) => (key, false),
        None => {
            let key = SecretKey::generate();
            write_private(&path, &key)?;
            (key, true)
        }
    };
    let store = match store::open(&config.database_url, &key).await {
        Ok(store) => {
            if next.exists() {
                // A rotation that never committed: the current key still opens the database.
                std::fs::remove_file(&next)
                    .with_context(|| format!("removing {}", next.display()))?;
            }
            store
        }
        Err(StoreError::WrongKey(reason)) => match read_key(&next)? {
            Some(next_key) => {
                let store = open(config, &next_key).await?;
                std::fs::rename(&next, &path)
                    .with_context(|| format!("moving {} to {}", next.display(), path.display()))?;
                tracing::info!(path = %path.display(), "finished an interrupted key rotation");
                return Ok(Unlocked {
                    store,
                    key: next_key,
                    origin: KeyOrigin::File {
                        path,
                        created: false,
                    },
                });
            }
            None => {
                if created {
                    // Not the key this database needs: leave no file that looks like it.
                    let _ = std::fs::remove_file(&path);
                    anyhow::bail!("{reason}; {} was missing", path.display());
                }
                anyhow::bail!("{reason} (read from {})", path.display())
            }
        },
        Err(e) => return Err(e.into()),
    };
    Ok(Unlocked {
        store,
        key,
        origin: KeyOrigin::File { path, created },
    })
}

async fn open(config: &Config, key: &SecretKey) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open(&config.database_url, key).await?)
}

/// `tocsin rotate-key`: seals everything again under `new_key` (base64), or a generated
/// key, in one transaction. Returns what to tell the operator; with a configured key, the
/// new key itself when it was generated (on `printed`).
///
/// A generated key for a configured `secret_key` lives nowhere else once the transaction
/// commits, so it is handed to `show` (or written to `new_key_file`, 0600) first, and
/// nothing is changed when that fails: a rotation whose key nobody saw cannot happen.
pub async fn rotate(
    config: &Config,
    new_key: Option<&str>,
    new_key_file: Option<&Path>,
    show: &mut dyn FnMut(&str) -> std::io::Result<()>,
) -> anyhow::Result<Rotated> {
    let current = open_store(config).await?;
    // A node still serving holds the old key: every sealed value it writes or reads
    // afterwards would fail, and what it created meanwhile could never be opened.
    let since = Timestamp::now().minus(crate::store::NODE_GONE_AFTER);
    let live = current.store.live_nodes(since).await?;
    if let Some((node, seen)) = live.first() {
        let ago = Timestamp::now()
            .as_micros()
            .saturating_sub(seen.as_micros())
            / 1_000_000;
        anyhow::bail!(
            "nothing was changed: {} node(s) are serving this database (node {node} was alive {ago} s ago): stop every node first, then rotate. A node that was killed is forgotten {} s after its last sign of life",
            live.len(),
            crate::store::NODE_GONE_AFTER.as_secs()
        );
    }
    let (key, generated) = match new_key {
        Some(text) => (
            SecretKey::from_base64(text).map_err(|e| anyhow::anyhow!("--new-key {e}"))?,
            false,
        ),
        None => (SecretKey::generate(), true),
    };
    if key.id() == current.key.id() {
        anyhow::bail!("--new-key is the key in use; give a different one");
    }
    let file = match &current.origin {
        KeyOrigin::File { path, .. } => {
            let next = next_path(path);
            if next.exists() {
                std::fs::remove_file(&next)?;
            }
            write_private(&next, &key)?;
            Some((next, path.clone()))
        }
        KeyOrigin::Configured => None,
    };
    let must_show = generated && matches!(current.origin, KeyOrigin::Configured);
    match new_key_file {
        Some(path) => write_private(path, &key).with_context(|| {
            format!("nothing was changed: the new key could not be written to {}", path.display())
        })?,
        None if must_show => show(&key.to_base64()).context(
            "nothing was changed: the new key could not be shown on standard output (give --new-key-file PATH, or --new-key)",
        )?,
        None => {}
    }
    let values = current.store.rotate_key(&key).await?;
    if let Some((next, path)) = &file {
        std::fs::rename(next, path)
            .with_context(|| format!("moving {} to {}", next.display(), path.display()))?;
    }
    Ok(Rotated {
        values,
        old_id: current.key.id(),
        new_id: key.id(),
        file: file.map(|(_, path)| path),
        printed: must_show && new_key_file.is_none(),
        written: new_key_file.map(Path::to_path_buf),
    })
}

pub struct Rotated {
    pub values: u64,
    pub old_id: String,
    pub new_id: String,
    /// The key file that now holds the new key.
    pub file: Option<PathBuf>,
    /// A generated key was shown (before the commit) for the operator to configure.
    pub printed: bool,
    /// `--new-key-file`, which holds the new key.
    pub written: Option<PathBuf>,
}

fn read_key(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the secret key file can be read by other users: chmod 600 it");
            }
        }
    }
    SecretKey::from_base64(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: the key {e}", path.display()))
}

/// Writes a new key file, readable by its owner only, and flushes it to disk before the
/// database relies on it.
fn write_private(path: &Path, key: &SecretKey) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the secret key file {}", path.display()))?;
    writeln!(file, "{}", key.to_base64())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_lives_beside_an_sqlite_database() {
        assert_eq!(
            key_path("sqlite:///var/lib/tocsin/t.db?mode=rwc"),
            PathBuf::from("/var/lib/tocsin/tocsin.key")
        );
        assert_eq!(
            key_path("sqlite://data/t.db"),
            PathBuf::from("data/tocsin.key")
        );
        assert_eq!(key_path("sqlite://t.db"), PathBuf::from("./tocsin.key"));
        assert_eq!(
            key_path("postgres://db/tocsin"),
            PathBuf::from("./tocsin.key")
        );
        assert_eq!(key_path("sqlite::memory:"), PathBuf::from("./tocsin.key"));
    }
}
