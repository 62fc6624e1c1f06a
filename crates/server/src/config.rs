//! The server's configuration: a TOML file, then environment variables and flags (which the
//! command line resolves, flags over environment), over built-in defaults that start on a
//! fresh machine: a SQLite file and a data folder in the working directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the server listens by default: loopback only, so a fresh start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8640";
/// The default data folder (attachment blobs).
pub const DEFAULT_DATA: &str = "hashguard-data";
/// The default table directory, as `hashguard table build --out` writes it.
pub const DEFAULT_TABLE: &str = "table";
/// The default opening key file, as `hashguard table build --key` writes it.
pub const DEFAULT_KEY: &str = "table.key";
/// The largest attachment ciphertext accepted by default (100 MiB, a messenger's video limit).
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 100 << 20;

/// How long a two-phase upload's slot takes bytes by default: a day, so a large video on a
/// mobile network can resume for a long while (Signal's upload forms and resumable uploads
/// last about as long).
pub const DEFAULT_UPLOAD_SLOT_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(86_400);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A place a person can turn to, shown with every intervention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HelpResource {
    /// Its name.
    pub name: String,
    /// Where to reach it.
    pub url: String,
    /// Who it is for, in plain words.
    pub description: String,
}

/// What the intervention says besides the fixed words: the deployment's own help resources
/// and where appeals go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intervention {
    /// Shown with every held upload.
    pub help: Vec<HelpResource>,
    /// Who runs this service, in the words users know it by.
    pub operator: String,
}

impl Default for Intervention {
    /// Widely known services; a deployment lists the ones for its users' countries.
    fn default() -> Self {
        Intervention {
            operator: "this service".to_string(),
            help: vec![
                HelpResource {
                    name: "Take It Down (NCMEC)".to_string(),
                    url: "https://takeitdown.ncmec.org/".to_string(),
                    description: "If this is a picture of you taken when you were under 18, they can help get it removed, without you sending it to anyone.".to_string(),
                },
                HelpResource {
                    name: "Childhelp National Child Abuse Hotline".to_string(),
                    url: "https://www.childhelphotline.org/".to_string(),
                    description: "If a child is being hurt or you are worried about one. Call or text 1-800-422-4453 (US), any time.".to_string(),
                },
                HelpResource {
                    name: "Stop It Now".to_string(),
                    url: "https://www.stopitnow.org/".to_string(),
                    description: "Confidential help if you are worried about your own sexual thoughts or behaviour towards children, or someone else's.".to_string(),
                },
            ],
        }
    }
}

/// A token bucket: `burst` at once, refilled at `per_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// How many at once (1 to 1,000,000).
    pub burst: u32,
    /// How many an hour in the long run (1 to 3,600,000).
    pub per_hour: u32,
}

/// The per-process flood shield: requests per network address in one server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shield {
    /// Requests a second per address in the long run (1 to 1,000,000).
    pub per_second: u32,
    /// Requests at once per address (1 to 1,000,000).
    pub burst: u32,
}

/// The limits every server process shares (kept in the database), and the flood shield in
/// front of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Uploads per account.
    pub uploads_per_account: Bucket,
    /// Uploads per network source (IP address).
    pub uploads_per_source: Bucket,
    /// Automatic checks per account (each one decrypts a held item).
    pub checks_per_account: Bucket,
    /// Registrations (new accounts and new devices) per network source.
    pub registrations_per_source: Bucket,
    /// Key matches (held uploads) per account, under `intervene` (R/E12 step 6): when it is
    /// empty the account's uploads are refused with 429 until it refills, which bounds how
    /// often anyone can try images against the table and how many cases one account opens.
    pub matches_per_account: Bucket,
    /// Key matches (held uploads) per network source, the same way.
    pub matches_per_source: Bucket,
    /// MLS deliveries (application messages and commits) per device: each is copied into the
    /// queue of every other member, so one device must not fill everyone's queues.
    pub deliveries_per_device: Bucket,
    /// Requests per network address in each server process, before anything else.
    pub flood_shield: Shield,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            uploads_per_account: Bucket {
                burst: 120,
                per_hour: 3_600,
            },
            uploads_per_source: Bucket {
                burst: 600,
                per_hour: 36_000,
            },
            checks_per_account: Bucket {
                burst: 10,
                per_hour: 20,
            },
            registrations_per_source: Bucket {
                burst: 20,
                per_hour: 120,
            },
            // A chance key match happens about once in a million images (calibration.md):
            // ten in a row is never bad luck.
            matches_per_account: Bucket {
                burst: 10,
                per_hour: 2,
            },
            matches_per_source: Bucket {
                burst: 30,
                per_hour: 10,
            },
            // 300 a minute in the long run, 600 at once: far above a person typing or a client
            // catching up on commits, far below a loop.
            deliveries_per_device: Bucket {
                burst: 600,
                per_hour: 18_000,
            },
            // Far above what one person's app sends; an address behind a large NAT may need
            // more.
            flood_shield: Shield {
                per_second: 200,
                burst: 400,
            },
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), ConfigError> {
        for (name, b) in [
            ("uploads_per_account", self.uploads_per_account),
            ("uploads_per_source", self.uploads_per_source),
            ("checks_per_account", self.checks_per_account),
            ("registrations_per_source", self.registrations_per_source),
            ("matches_per_account", self.matches_per_account),
            ("matches_per_source", self.matches_per_source),
            ("deliveries_per_device", self.deliveries_per_device),
        ] {
            if !(1..=1_000_000).contains(&b.burst) || !(1..=3_600_000).contains(&b.per_hour) {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name}: burst must be 1 to 1000000 and per_hour 1 to 3600000"
                )));
            }
        }
        let shield = self.flood_shield;
        if !(1..=1_000_000).contains(&shield.per_second) || !(1..=1_000_000).contains(&shield.burst)
        {
            return Err(ConfigError::Invalid(
                "limits.flood_shield: per_second and burst must be 1 to 1000000".to_string(),
            ));
        }
        Ok(())
    }
}

/// The configuration file (every field optional; see [`Config`] for the meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Database URL or SQLite path.
    pub db: Option<String>,
    /// Data folder.
    pub data: Option<PathBuf>,
    /// Table directory.
    pub table: Option<PathBuf>,
    /// Opening key file.
    pub key: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Largest attachment ciphertext in bytes.
    pub max_attachment_bytes: Option<u64>,
    /// How long a two-phase upload's slot takes bytes, in seconds (default a day).
    pub upload_slot_seconds: Option<u64>,
    /// The intervention's help resources.
    pub intervention: Option<Intervention>,
    /// Rate limits.
    pub limits: Option<Limits>,
    /// The review API's staff tokens.
    pub review: Option<Review>,
    /// Proxies (addresses or blocks, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client for the per-source limits; none by default (the header is then ignored).
    pub trusted_proxies: Option<Vec<String>>,
}

/// The `[review]` section: who may use the review API with a bearer token (the SHA-256, 64 hex
/// digits, of each staff token: make one with `openssl rand -hex 32`, give it to the reviewer,
/// and put `printf %s TOKEN | sha256sum` here), and the review UI's settings (each optional;
/// see [`hashguard_review::ReviewConfig`] for the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// SHA-256 of each staff token.
    #[serde(default)]
    pub token_sha256: Vec<String>,
    /// How long a confirmed case's material is kept after its report's first export, in
    /// seconds (default 90 days).
    pub retention_after_export_seconds: Option<i64>,
    /// How often the server deletes material whose retention ended, in seconds (default an
    /// hour).
    pub purge_every_seconds: Option<u64>,
    /// The reporting contact's name in reports.
    pub reporter_name: Option<String>,
    /// The reporting contact's email in reports.
    pub reporter_email: Option<String>,
    /// The service's name in reports (`espService`).
    pub service_name: Option<String>,
    /// Failed logins in a row that lock a staff account (default 5).
    pub max_failed_logins: Option<i64>,
    /// How long a lock lasts, in seconds (default 15 minutes).
    pub lock_seconds: Option<i64>,
}

/// How often the server deletes expired review material by default.
pub const DEFAULT_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Review {
    /// The review UI's settings: these over the defaults, checked.
    fn settings(
        &self,
    ) -> Result<(hashguard_review::ReviewConfig, std::time::Duration), ConfigError> {
        let mut c = hashguard_review::ReviewConfig::default();
        let at_least = |name: &str, v: i64, min: i64| {
            if v < min {
                Err(ConfigError::Invalid(format!(
                    "review.{name} must be at least {min}"
                )))
            } else {
                Ok(v)
            }
        };
        if let Some(v) = self.retention_after_export_seconds {
            c.retention_after_export_seconds = at_least("retention_after_export_seconds", v, 0)?;
        }
        if let Some(v) = self.max_failed_logins {
            c.max_failures = at_least("max_failed_logins", v, 1)?;
        }
        if let Some(v) = self.lock_seconds {
            c.lock_seconds = at_least("lock_seconds", v, 1)?;
        }
        for (name, given, field) in [
            ("reporter_name", &self.reporter_name, &mut c.reporter_name),
            (
                "reporter_email",
                &self.reporter_email,
                &mut c.reporter_email,
            ),
            ("service_name", &self.service_name, &mut c.service_name),
        ] {
            if let Some(v) = given {
                if v.trim().is_empty() {
                    return Err(ConfigError::Invalid(format!("review.{name} is empty")));
                }
                *field = v.clone();
            }
        }
        let every = match self.purge_every_seconds {
            None => DEFAULT_PURGE_EVERY,
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "review.purge_every_seconds must be at least 1".to_string(),
                ))
            }
            Some(s) => std::time::Duration::from_secs(s),
        };
        Ok((c, every))
    }
}

/// What the command line or the environment set (they win over the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--db`.
    pub db: Option<String>,
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--table`.
    pub table: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Database URL or SQLite path (as `--db` takes it).
    pub db: String,
    /// Data folder: attachment blobs.
    pub data: PathBuf,
    /// The published table's directory.
    pub table: PathBuf,
    /// The table's opening key (secret).
    pub key: PathBuf,
    /// TLS certificate and key, when the server terminates TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest attachment ciphertext in bytes.
    pub max_attachment_bytes: u64,
    /// How long a two-phase upload's slot takes bytes.
    pub upload_slot_lifetime: std::time::Duration,
    /// The intervention's help resources.
    pub intervention: Intervention,
    /// Rate limits.
    pub limits: Limits,
    /// SHA-256 of each staff token of the review API.
    pub staff_tokens: Vec<[u8; 32]>,
    /// The review UI's settings (`tls` is set from [`Config::tls`] when the server starts).
    pub review: hashguard_review::ReviewConfig,
    /// How often the server deletes review material whose retention ended.
    pub purge_every: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` is believed ([`crate::client_ip`]).
    pub trusted_proxies: Vec<crate::client_ip::AddressBlock>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("configuration file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Resolves the file at `file` (if any) under `overrides`, over the defaults.
    pub fn resolve(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<ConfigFile>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => ConfigFile::default(),
        };
        let listen_text = overrides
            .listen
            .or(from_file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse::<SocketAddr>().map_err(|e| {
            ConfigError::Invalid(format!(
                "listen address {listen_text:?}: {e} (give an IP address and port, e.g. 127.0.0.1:8640 or [::1]:8640)"
            ))
        })?;
        let tls = match (
            overrides.tls_cert.or(from_file.tls_cert),
            overrides.tls_key.or(from_file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs both a certificate (--tls-cert) and its key (--tls-key)".to_string(),
                ))
            }
        };
        let max_attachment_bytes = from_file
            .max_attachment_bytes
            .unwrap_or(DEFAULT_MAX_ATTACHMENT_BYTES);
        if max_attachment_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_attachment_bytes must be at least 1".to_string(),
            ));
        }
        let upload_slot_lifetime = match from_file.upload_slot_seconds {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "upload_slot_seconds must be at least 1".to_string(),
                ))
            }
            Some(s) => std::time::Duration::from_secs(s),
            None => DEFAULT_UPLOAD_SLOT_LIFETIME,
        };
        let limits = from_file.limits.unwrap_or_default();
        limits.check()?;
        let review_file = from_file.review.unwrap_or_default();
        let (review, purge_every) = review_file.settings()?;
        let mut staff_tokens = Vec::new();
        for digest in review_file.token_sha256 {
            let mut d = [0u8; 32];
            hex::decode_to_slice(digest.trim(), &mut d).map_err(|_| {
                ConfigError::Invalid(format!(
                    "review.token_sha256: {digest:?} is not 64 hex digits (printf %s TOKEN | sha256sum)"
                ))
            })?;
            staff_tokens.push(d);
        }
        let trusted_proxies = from_file
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|b| {
                b.parse()
                    .map_err(|e| ConfigError::Invalid(format!("trusted_proxies: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            trusted_proxies,
            limits,
            staff_tokens,
            review,
            purge_every,
            listen,
            db: overrides
                .db
                .or(from_file.db)
                .unwrap_or_else(|| hashguard_store::DEFAULT_DATABASE.to_string()),
            data: overrides
                .data
                .or(from_file.data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            table: overrides
                .table
                .or(from_file.table)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TABLE)),
            key: overrides
                .key
                .or(from_file.key)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY)),
            tls,
            log_format: overrides
                .log_format
                .or(from_file.log_format)
                .unwrap_or_default(),
            max_attachment_bytes,
            upload_slot_lifetime,
            intervention: from_file.intervention.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_start_on_loopback_with_sqlite() {
        let c = Config::resolve(None, Overrides::default()).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.db, "hashguard.db");
        assert_eq!(c.data, PathBuf::from(DEFAULT_DATA));
        assert!(c.tls.is_none());
        assert!(!c.intervention.help.is_empty());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndb = \"file.db\"\nlog_format = \"json\"\n\n[intervention]\noperator = \"Example Chat\"\nhelp = [{ name = \"A\", url = \"https://a.example\", description = \"d\" }]\n",
        )
        .expect("write");
        let c = Config::resolve(
            Some(&path),
            Overrides {
                db: Some("flag.db".into()),
                ..Overrides::default()
            },
        )
        .expect("config");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.db, "flag.db");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.intervention.operator, "Example Chat");
        assert_eq!(c.intervention.help.len(), 1);
        assert_eq!(c.review, hashguard_review::ReviewConfig::default());
        assert_eq!(c.purge_every, DEFAULT_PURGE_EVERY);
    }

    #[test]
    fn review_settings_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "[review]\nretention_after_export_seconds = 86400\npurge_every_seconds = 60\nreporter_name = \"T&S desk\"\nreporter_email = \"tns@example.org\"\nservice_name = \"Example Chat\"\nmax_failed_logins = 3\nlock_seconds = 600\n",
        )
        .expect("write");
        let c = Config::resolve(Some(&path), Overrides::default()).expect("config");
        assert_eq!(c.review.retention_after_export_seconds, 86400);
        assert_eq!(c.purge_every, std::time::Duration::from_secs(60));
        assert_eq!(c.review.reporter_name, "T&S desk");
        assert_eq!(c.review.reporter_email, "tns@example.org");
        assert_eq!(c.review.service_name, "Example Chat");
        assert_eq!((c.review.max_failures, c.review.lock_seconds), (3, 600));
        assert!(c.staff_tokens.is_empty());
        for (bad, why) in [
            ("purge_every_seconds = 0", "purge_every_seconds"),
            (
                "retention_after_export_seconds = -1",
                "retention_after_export_seconds",
            ),
            ("max_failed_logins = 0", "max_failed_logins"),
            ("reporter_email = \" \"", "reporter_email"),
            ("retention_days = 3", "retention_days"),
        ] {
            std::fs::write(&path, format!("[review]\n{bad}\n")).expect("write");
            let e = Config::resolve(Some(&path), Overrides::default()).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_files_and_values_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "listne = \"x\"\n").expect("write");
        let e = Config::resolve(Some(&path), Overrides::default()).expect_err("unknown key");
        assert!(e.to_string().contains("listne"), "{e}");
        let e = Config::resolve(
            None,
            Overrides {
                listen: Some("localhost".into()),
                ..Overrides::default()
            },
        )
        .expect_err("no port");
        assert!(e.to_string().contains("127.0.0.1:8640"), "{e}");
        let e = Config::resolve(
            None,
            Overrides {
                tls_cert: Some("c.pem".into()),
                ..Overrides::default()
            },
        )
        .expect_err("half TLS");
        assert!(e.to_string().contains("--tls-key"), "{e}");
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            Config::resolve(Some(&missing), Overrides::default()),
            Err(ConfigError::Read { .. })
        ));
    }
}
