//! Staff accounts, passwords, sessions and CSRF tokens.
//!
//! - Passwords: argon2id (the `argon2` crate's default parameters: 19 MiB, 2 passes, one
//!   lane, OWASP's first recommendation), a fresh 16-byte salt each, kept as the PHC string.
//!   A login for an unknown username verifies against a fixed dummy hash, so the answer takes
//!   as long whether the name exists or not.
//! - Lockout: [`ReviewConfig::max_failures`] failed logins in a row lock the account for
//!   [`ReviewConfig::lock_seconds`]; a lock is refused even with the right password. Logins are
//!   also limited per network source (a token bucket in the database, shared by every server
//!   process).
//! - Sessions: 32 random bytes, given to the browser as an `HttpOnly`, `SameSite=Strict`
//!   cookie (`Secure` when the server terminates TLS), kept in the database only as their
//!   SHA-256. A session ends after [`ReviewConfig::session_idle_seconds`] unused or
//!   [`ReviewConfig::session_max_seconds`] in all. The login form has a session of its own (no
//!   staff yet) that carries its CSRF token; logging in deletes it and makes a new one, so an id
//!   planted before the login is worthless after it (session fixation).
//! - CSRF: each session has a random synchronizer token, put in every form and compared in
//!   constant time with the session's on every POST.
//! - Staff sessions and user bearer tokens never mix: the review UI reads only its cookie,
//!   the user API only bearer tokens, and the two are kept in different tables.

use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hashguard_store::{StaffRecord, StaffSession, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{now, ReviewConfig, ReviewError};

/// What a member of staff may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Works the queue: views cases, reveals images, decides.
    Reviewer,
    /// A reviewer who also decides cases where two reviewers disagreed.
    SeniorReviewer,
    /// Reads the queue, the cases' records and the audit log; never decides or reveals.
    Auditor,
    /// Reads the audit log and the staff list; never decides or reveals.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Reviewer,
        Role::SeniorReviewer,
        Role::Auditor,
        Role::Admin,
    ];

    /// The text the database keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::SeniorReviewer => "senior_reviewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// The role in words.
    pub fn words(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::SeniorReviewer => "senior reviewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Whether this role decides cases and reveals images.
    pub fn reviews(self) -> bool {
        matches!(self, Role::Reviewer | Role::SeniorReviewer)
    }

    /// Whether this role decides disagreements.
    pub fn is_senior(self) -> bool {
        self == Role::SeniorReviewer
    }

    /// Whether this role reads the audit log.
    pub fn reads_audit(self) -> bool {
        matches!(self, Role::Auditor | Role::Admin)
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "reviewer" => Ok(Role::Reviewer),
            "senior_reviewer" | "senior-reviewer" | "senior" => Ok(Role::SeniorReviewer),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "no role {:?}: use reviewer, senior-reviewer, auditor or admin",
                s.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// The fewest characters a staff password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The name of the session cookie.
pub const COOKIE: &str = "hg_review";

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ReviewError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| ReviewError::internal(format!("no OS randomness: {e}")))?;
    Ok(out)
}

/// SHA-256 of a session id, as the database keeps it.
pub fn session_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The argon2id PHC string of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, ReviewError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| ReviewError::internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ReviewError::internal(format!("argon2: {e}")))
}

/// Whether `password` is the one `phc` was made from (false for a malformed PHC string).
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A PHC string no password gives, verified against for unknown usernames so that a login
/// takes as long whether the name exists or not.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        // A fixed salt is fine here: nothing verified against it can succeed that matters.
        let salt = SaltString::encode_b64(b"hashguard-dummy!").expect("16 bytes encode");
        Argon2::default()
            .hash_password(b"no password is this one", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks a username: 1 to 64 of `a-z 0-9 . _ -`.
pub fn check_username(name: &str) -> Result<(), ReviewError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ReviewError::BadRequest(
            "a username is 1 to 64 of a-z, 0-9, '.', '_' and '-'".to_string(),
        ))
    }
}

/// Adds a member of staff (the `hashguard admin staff add` command) and logs it.
pub async fn add_staff(
    store: &Store,
    username: &str,
    role: Role,
    password: &str,
    by: &str,
) -> Result<StaffRecord, ReviewError> {
    check_username(username)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ReviewError::BadRequest(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let password = password.to_string();
    let phc = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ReviewError::internal)??;
    let record = StaffRecord {
        id: hex::encode(random_bytes::<16>()?),
        username: username.to_string(),
        role: role.as_str().to_string(),
        password: phc,
        created_at: now(),
        disabled_at: None,
        failed_logins: 0,
        locked_until: None,
        blur_level: 2,
        greyscale: true,
        daily_reveals: 40,
    };
    match store.insert_staff(&record).await {
        Ok(()) => {}
        Err(StoreError::Duplicate { .. }) => {
            return Err(ReviewError::Conflict(format!(
                "there is already a member of staff called {username}"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    crate::audit::log(
        store,
        by,
        "staff_added",
        username,
        &serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    Ok(record)
}

/// Disables a member of staff and ends their sessions (the `hashguard admin staff disable`
/// command), and logs it. `false` if there is no such username.
pub async fn disable_staff(store: &Store, username: &str, by: &str) -> Result<bool, ReviewError> {
    if !store.disable_staff(username, now()).await? {
        return Ok(false);
    }
    crate::audit::log(
        store,
        by,
        "staff_disabled",
        username,
        &serde_json::json!({}),
    )
    .await?;
    Ok(true)
}

/// A new session, stored; returns the id to give the browser and the stored row.
pub async fn new_session(
    store: &Store,
    config: &ReviewConfig,
    staff: Option<&str>,
) -> Result<(String, StaffSession), ReviewError> {
    let id = hex::encode(random_bytes::<32>()?);
    let t = now();
    let max = if staff.is_some() {
        config.session_max_seconds
    } else {
        // The login form's session: long enough to type a password.
        3_600
    };
    let session = StaffSession {
        id_hash: session_hash(&id),
        staff: staff.map(str::to_string),
        csrf: hex::encode(random_bytes::<32>()?),
        created_at: t,
        seen_at: t,
        expires_at: t.saturating_add(max),
    };
    store.insert_staff_session(&session).await?;
    Ok((id, session))
}

/// The session of this id if it is still valid at `t` (not expired, not idle too long).
pub async fn valid_session(
    store: &Store,
    config: &ReviewConfig,
    id: &str,
    t: i64,
) -> Result<Option<StaffSession>, ReviewError> {
    let Some(session) = store.staff_session(&session_hash(id)).await? else {
        return Ok(None);
    };
    let idle = t.saturating_sub(session.seen_at) > config.session_idle_seconds;
    if t >= session.expires_at || idle {
        store.delete_staff_session(&session.id_hash).await?;
        return Ok(None);
    }
    Ok(Some(session))
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &StaffSession, given: &str) -> bool {
    !given.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes()))
}

/// What a login attempt came to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: the new session's id for the cookie, and who.
    LoggedIn {
        /// The new session id.
        session_id: String,
        /// The member of staff.
        staff: StaffRecord,
    },
    /// Refused, with the words for the login page.
    Refused(&'static str),
}

/// The words of a refused login whose cause must not be told apart (unknown name, wrong
/// password, disabled account).
pub const LOGIN_REFUSED: &str =
    "That username and password do not match an active account. Check them and try again.";

/// The words of a login refused because the account is locked.
pub const LOGIN_LOCKED: &str = "This account is locked for a while after too many failed attempts. Wait 15 minutes, or ask an admin.";

/// Checks a username and password; on success replaces the login form's session
/// (`pre_session`, already checked with its CSRF token by the caller) with a new one. Every
/// attempt is logged.
pub async fn login(
    store: &Store,
    config: &ReviewConfig,
    pre_session: &StaffSession,
    username: &str,
    password: &str,
) -> Result<LoginOutcome, ReviewError> {
    let t = now();
    let staff = if check_username(username).is_ok() {
        store.staff_by_name(username).await?
    } else {
        None
    };
    let phc = staff
        .as_ref()
        .map_or_else(|| dummy_hash().to_string(), |s| s.password.clone());
    let typed = password.to_string();
    let right = tokio::task::spawn_blocking(move || verify_password(&phc, &typed))
        .await
        .map_err(ReviewError::internal)?;
    let Some(staff) = staff else {
        crate::audit::log(
            store,
            "unknown",
            "login_failed",
            "-",
            &serde_json::json!({ "why": "no such username" }),
        )
        .await?;
        return Ok(LoginOutcome::Refused(LOGIN_REFUSED));
    };
    if staff.locked_until.is_some_and(|until| t < until) {
        crate::audit::log(
            store,
            &staff.username,
            "login_refused_locked",
            &staff.username,
            &serde_json::json!({}),
        )
        .await?;
        return Ok(LoginOutcome::Refused(LOGIN_LOCKED));
    }
    if staff.disabled_at.is_some() || !right {
        store
            .record_login_failure(&staff.id, t, config.max_failures, config.lock_seconds)
            .await?;
        let why = if staff.disabled_at.is_some() {
            "account disabled"
        } else {
            "wrong password"
        };
        crate::audit::log(
            store,
            &staff.username,
            "login_failed",
            &staff.username,
            &serde_json::json!({ "why": why }),
        )
        .await?;
        return Ok(LoginOutcome::Refused(LOGIN_REFUSED));
    }
    store.clear_login_failures(&staff.id).await?;
    store.delete_staff_session(&pre_session.id_hash).await?;
    let (session_id, _) = new_session(store, config, Some(&staff.id)).await?;
    crate::audit::log(
        store,
        &staff.username,
        "login",
        &staff.username,
        &serde_json::json!({}),
    )
    .await?;
    Ok(LoginOutcome::LoggedIn { session_id, staff })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterY"));
        assert!(!verify_password("not a phc string", "x"));
        // Two hashes of one password differ (fresh salts).
        assert_ne!(phc, hash_password("correct horse battery").unwrap());
        assert!(!verify_password(dummy_hash(), "correct horse battery"));
    }

    #[test]
    fn roles_and_usernames_parse() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(!Role::Auditor.reviews() && !Role::Admin.reviews());
        assert!(Role::Reviewer.reviews() && !Role::Reviewer.is_senior());
        assert!(check_username("ana.k-2").is_ok());
        for bad in ["", "Ana", "a b", &"a".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
    }
}
