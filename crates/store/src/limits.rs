//! Rate limits shared by every server process: token buckets in the database.
//!
//! A bucket holds milli-tokens (integers, so refills are exact) as of a time in Unix
//! milliseconds. A take is one `UPDATE` that refills the bucket to `now_ms` and takes the cost
//! only if enough is there, so concurrent takers (threads or processes) can never spend more
//! than the bucket holds: SQLite runs the statement under its write lock, PostgreSQL re-checks
//! the condition on the newest row version after waiting for a concurrent updater. A refill
//! rate of `per_second` tokens a second is `per_second` milli-tokens a millisecond.

use std::time::Duration;

use crate::error::StoreError;
use crate::pool::on_conn;
use crate::state::is_unique_violation;
use crate::Store;

/// How often [`Store::take_tokens`] goes round again: after another process created the bucket
/// between our update and our insert, or changed it between our update and our read. Each
/// round is another writer's success, so a handful suffices.
const TAKE_ATTEMPTS: u32 = 16;

/// A bucket's level at `now_ms`, refilled since `updated_ms` and capped at the capacity: the
/// same arithmetic as [`REFILLED`], for the wait of a refused take.
fn refilled(tokens: i64, updated_ms: i64, now_ms: i64, b: &Bucket) -> i64 {
    let elapsed = now_ms.saturating_sub(updated_ms);
    if elapsed >= b.full_ms {
        b.capacity
    } else if elapsed <= 0 {
        tokens.min(b.capacity)
    } else {
        tokens
            .saturating_add(elapsed.saturating_mul(b.rate))
            .min(b.capacity)
    }
}

/// The refilled level in SQL (`$2` now, `$3` capacity, `$4` rate, `$5` the time to fill up;
/// all in milli-tokens and milliseconds). Portable `CASE` expressions, no `LEAST`/`MIN`. The
/// first branch fills an idle bucket without multiplying, so `elapsed * rate` is only computed
/// below the time to fill up, where it is below capacity + rate: no 64-bit overflow (which
/// PostgreSQL reports as an error and SQLite turns into a float). A clock that went backwards
/// (`$2 <= updated_ms`, another process ahead) refills nothing.
const REFILLED: &str = "(CASE \
    WHEN $2 - updated_ms >= $5 THEN $3 \
    WHEN $2 <= updated_ms THEN (CASE WHEN milli_tokens > $3 THEN $3 ELSE milli_tokens END) \
    WHEN milli_tokens + ($2 - updated_ms) * $4 > $3 THEN $3 \
    ELSE milli_tokens + ($2 - updated_ms) * $4 END)";

/// A bucket's parameters in the database's units.
struct Bucket {
    /// Capacity in milli-tokens.
    capacity: i64,
    /// Refill in milli-tokens a millisecond.
    rate: i64,
    /// Milliseconds an empty bucket takes to fill up (`i64::MAX`: never, with no refill).
    full_ms: i64,
    /// The take, in milli-tokens.
    cost: i64,
}

impl Store {
    /// Takes `cost` tokens from bucket `key` (capacity `capacity`, refilled at `per_second`
    /// tokens a second, full when first seen) at time `now_ms` (Unix milliseconds). `Ok(None)`
    /// when taken; `Ok(Some(wait))` when refused (nothing taken), `wait` being the time until
    /// enough tokens will be there (at least 1 ms; [`Duration::MAX`] when the bucket never
    /// refills). Atomic across processes (see the module's documentation): concurrent takers
    /// never spend more than the bucket holds.
    ///
    /// Fails with [`StoreError::BucketTooSmall`] when `cost` exceeds `capacity` (such a take
    /// could never succeed), and with [`StoreError::OutOfRange`] when `now_ms` is negative.
    /// A bucket's key is stored as given: use keys that name an account or a route, not
    /// anything derived from an upload's content.
    pub async fn take_tokens(
        &self,
        key: &str,
        cost: u32,
        capacity: u32,
        per_second: u32,
        now_ms: i64,
    ) -> Result<Option<Duration>, StoreError> {
        if cost > capacity {
            return Err(StoreError::BucketTooSmall { cost, capacity });
        }
        if now_ms < 0 {
            return Err(StoreError::OutOfRange {
                what: "a negative time for a rate bucket",
            });
        }
        let rate = i64::from(per_second);
        let capacity_milli = i64::from(capacity) * 1000;
        let b = Bucket {
            capacity: capacity_milli,
            rate,
            full_ms: if rate == 0 {
                i64::MAX
            } else {
                (capacity_milli + rate - 1) / rate
            },
            cost: i64::from(cost) * 1000,
        };
        let take = format!(
            "UPDATE rate_buckets SET milli_tokens = {REFILLED} - $6, \
             updated_ms = CASE WHEN $2 > updated_ms THEN $2 ELSE updated_ms END \
             WHERE bucket = $1 AND {REFILLED} >= $6"
        );
        let mut pooled = self.pool.acquire().await?;
        for _ in 0..TAKE_ATTEMPTS {
            let taken = on_conn!(&mut pooled.conn(), |c| sqlx::query(&take)
                .bind(key)
                .bind(now_ms)
                .bind(b.capacity)
                .bind(b.rate)
                .bind(b.full_ms)
                .bind(b.cost)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))
            .map_err(|e| self.write_error(e))?;
            if taken > 0 {
                return Ok(None);
            }
            // Refused, or no such bucket yet. The read is only for the wait: the decision was
            // the update's.
            let row: Option<(i64, i64)> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT milli_tokens, updated_ms FROM rate_buckets WHERE bucket = $1"
            )
            .bind(key)
            .fetch_optional(&mut *c)
            .await?);
            match row {
                None => {
                    // A new bucket starts full, less this take.
                    let created = on_conn!(&mut pooled.conn(), |c| {
                        sqlx::query(
                        "INSERT INTO rate_buckets (bucket, milli_tokens, updated_ms) VALUES ($1, $2, $3)"
                    )
                    .bind(key)
                    .bind(b.capacity - b.cost)
                    .bind(now_ms)
                    .execute(&mut *c)
                    .await
                    .map(|r| r.rows_affected())
                    });
                    match created {
                        Ok(_) => return Ok(None),
                        // Another taker created it first: take from it with the update.
                        Err(e) if is_unique_violation(&e) => continue,
                        Err(e) => return Err(self.write_error(e)),
                    }
                }
                Some((tokens, updated_ms)) => {
                    let missing = b.cost - refilled(tokens, updated_ms, now_ms, &b);
                    if missing <= 0 {
                        // Changed since the update (a larger capacity asked for, say): again.
                        continue;
                    }
                    if b.rate == 0 {
                        return Ok(Some(Duration::MAX));
                    }
                    // Whole milliseconds, rounded up, so the bucket has enough when they pass.
                    let ms = (missing + b.rate - 1) / b.rate;
                    return Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(1))));
                }
            }
        }
        Err(StoreError::Contended {
            what: "a rate bucket",
            attempts: TAKE_ATTEMPTS,
        })
    }
}
