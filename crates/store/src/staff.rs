//! Staff of the review UI and their browser sessions. A password is kept only as the argon2id
//! PHC string the caller computed; a session only as the SHA-256 of its id. The review crate
//! owns the rules (roles, lockout, expiry); the store keeps the rows and makes each change one
//! statement, so two server processes never lose an update.

use crate::error::StoreError;
use crate::pool::on_conn;
use crate::state::is_unique_violation;
use crate::Store;

/// A member of staff as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    /// Random id (32 lowercase hex digits).
    pub id: String,
    /// The name they log in with.
    pub username: String,
    /// `reviewer`, `senior_reviewer`, `auditor` or `admin`.
    pub role: String,
    /// The argon2id PHC string of their password.
    pub password: String,
    /// When the account was made (Unix seconds).
    pub created_at: i64,
    /// When it was disabled, if it was.
    pub disabled_at: Option<i64>,
    /// Failed logins since the last success.
    pub failed_logins: i64,
    /// No login succeeds before this time, if set.
    pub locked_until: Option<i64>,
    /// Blur level of images shown to them, 1 (light) to 3 (strong).
    pub blur_level: i64,
    /// Whether images are shown to them in greyscale.
    pub greyscale: bool,
    /// How many reveals they may make per day.
    pub daily_reveals: i64,
}

/// A browser session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    /// SHA-256 of the session id (64 lowercase hex digits).
    pub id_hash: String,
    /// The staff id once logged in; `None` for the login form's session.
    pub staff: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
    /// When it was made.
    pub created_at: i64,
    /// When it was last used.
    pub seen_at: i64,
    /// When it ends at the latest.
    pub expires_at: i64,
}

type StaffRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
    i64,
    i64,
    i64,
);

const STAFF_COLUMNS: &str = "id, username, role, password, created_at, disabled_at, \
    failed_logins, locked_until, blur_level, greyscale, daily_reveals";

fn staff_from_row(row: StaffRow) -> StaffRecord {
    let (
        id,
        username,
        role,
        password,
        created_at,
        disabled_at,
        failed_logins,
        locked_until,
        blur_level,
        greyscale,
        daily_reveals,
    ) = row;
    StaffRecord {
        id,
        username,
        role,
        password,
        created_at,
        disabled_at,
        failed_logins,
        locked_until,
        blur_level,
        greyscale: greyscale != 0,
        daily_reveals,
    }
}

type SessionRow = (String, Option<String>, String, i64, i64, i64);

impl Store {
    /// Adds a member of staff. [`StoreError::Duplicate`] when the username (or id) is taken.
    pub async fn insert_staff(&self, s: &StaffRecord) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query(&format!(
            "INSERT INTO staff ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&s.id)
        .bind(&s.username)
        .bind(&s.role)
        .bind(&s.password)
        .bind(s.created_at)
        .bind(s.disabled_at)
        .bind(s.failed_logins)
        .bind(s.locked_until)
        .bind(s.blur_level)
        .bind(i64::from(s.greyscale))
        .bind(s.daily_reveals)
        .execute(&mut *c)
        .await
        .map(|_| ())
        });
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "staff",
                key: "username",
            }),
            Err(e) => Err(self.write_error(e)),
            Ok(()) => Ok(()),
        }
    }

    /// The member of staff with this username, if any.
    pub async fn staff_by_name(&self, username: &str) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("username", username).await
    }

    /// The member of staff with this id, if any.
    pub async fn staff_by_id(&self, id: &str) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("id", id).await
    }

    async fn staff_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<StaffRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {STAFF_COLUMNS} FROM staff WHERE {column} = $1");
        let row: Option<StaffRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&mut *c)
            .await?);
        Ok(row.map(staff_from_row))
    }

    /// Every member of staff, by username.
    pub async fn list_staff(&self) -> Result<Vec<StaffRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY username");
        let rows: Vec<StaffRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .fetch_all(&mut *c)
            .await?);
        Ok(rows.into_iter().map(staff_from_row).collect())
    }

    /// Disables a member of staff and ends every session of theirs. `false` if there is no
    /// such username. Disabling twice keeps the first time.
    pub async fn disable_staff(&self, username: &str, now: i64) -> Result<bool, StoreError> {
        let Some(staff) = self.staff_by_name(username).await? else {
            return Ok(false);
        };
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE staff SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2"
        )
        .bind(now)
        .bind(&staff.id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))?;
        drop(pooled);
        self.delete_staff_sessions(&staff.id).await?;
        Ok(true)
    }

    /// Counts a failed login in one statement; at `max_failures` consecutive failures the
    /// account is locked until `now + lock_seconds`.
    pub async fn record_login_failure(
        &self,
        id: &str,
        now: i64,
        max_failures: i64,
        lock_seconds: i64,
    ) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE staff SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
             WHERE id = $3"
        )
        .bind(max_failures)
        .bind(now.saturating_add(lock_seconds))
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Clears the failure count and the lock after a successful login.
    pub async fn clear_login_failures(&self, id: &str) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE staff SET failed_logins = 0, locked_until = NULL WHERE id = $1"
        )
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Sets a reviewer's wellness settings.
    pub async fn set_staff_settings(
        &self,
        id: &str,
        blur_level: i64,
        greyscale: bool,
    ) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE staff SET blur_level = $1, greyscale = $2 WHERE id = $3"
        )
        .bind(blur_level)
        .bind(i64::from(greyscale))
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Stores a new session.
    pub async fn insert_staff_session(&self, s: &StaffSession) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO staff_sessions (id_hash, staff, csrf, created_at, seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&s.id_hash)
        .bind(&s.staff)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.seen_at)
        .bind(s.expires_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// The session whose id has this SHA-256, if any (expired or not: the caller decides).
    pub async fn staff_session(&self, id_hash: &str) -> Result<Option<StaffSession>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row: Option<SessionRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT id_hash, staff, csrf, created_at, seen_at, expires_at \
             FROM staff_sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .fetch_optional(&mut *c)
        .await?);
        Ok(row.map(
            |(id_hash, staff, csrf, created_at, seen_at, expires_at)| StaffSession {
                id_hash,
                staff,
                csrf,
                created_at,
                seen_at,
                expires_at,
            },
        ))
    }

    /// Records that a session was used at `now`.
    pub async fn touch_staff_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE staff_sessions SET seen_at = $1 WHERE id_hash = $2"
        )
        .bind(now)
        .bind(id_hash)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Deletes one session; `false` if there was none.
    pub async fn delete_staff_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM staff_sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        Ok(n > 0)
    }

    /// Deletes every session of a member of staff (log out everywhere); how many there were.
    pub async fn delete_staff_sessions(&self, staff: &str) -> Result<u64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM staff_sessions WHERE staff = $1"
        )
        .bind(staff)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))
    }

    /// Deletes the sessions that ended before `now`; how many.
    pub async fn delete_expired_staff_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM staff_sessions WHERE expires_at < $1"
        )
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))
    }
}
