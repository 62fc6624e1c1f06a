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
use crate::pool::{on_conn, Conn};
use crate::Store;

/// How often [`Store::take_tokens_together`] goes round again: after another process created a
/// bucket between our update and our insert, or changed it between our update and our read.
/// Each round is another writer's success, so a handful suffices.
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
    /// What the bucket must hold for the take, in milli-tokens (at least `cost`).
    need: i64,
}

/// One take of [`Store::take_tokens_together`]: `cost` tokens from bucket `key`, whose capacity
/// is `capacity` tokens and which refills at `per_second` tokens a second (full when first
/// seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTake<'a> {
    /// The bucket's key. Stored as given: use keys that name an account or a route, never
    /// anything derived from an upload's content.
    pub key: &'a str,
    /// Tokens to take.
    pub cost: u32,
    /// The bucket's capacity in tokens.
    pub capacity: u32,
    /// Tokens refilled each second.
    pub per_second: u32,
    /// The take succeeds only if the bucket holds at least this many tokens (or `cost`, if
    /// more). With a `cost` of 0 it checks a bucket without drawing on it: "has this account
    /// any key matches left?".
    pub at_least: u32,
}

/// Why [`Store::take_tokens_together`] took nothing: the first take (in the caller's order)
/// that its bucket could not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The index of that take in the caller's slice.
    pub index: usize,
    /// The time until that bucket holds enough (at least 1 ms; [`Duration::MAX`] when it never
    /// refills).
    pub wait: Duration,
}

impl TokenTake<'_> {
    /// The take in the database's units, or the configuration error that makes it impossible.
    fn bucket(&self) -> Result<Bucket, StoreError> {
        let need = self.cost.max(self.at_least);
        if need > self.capacity {
            return Err(StoreError::BucketTooSmall {
                cost: need,
                capacity: self.capacity,
            });
        }
        let rate = i64::from(self.per_second);
        let capacity = i64::from(self.capacity) * 1000;
        Ok(Bucket {
            capacity,
            rate,
            full_ms: if rate == 0 {
                i64::MAX
            } else {
                (capacity + rate - 1) / rate
            },
            cost: i64::from(self.cost) * 1000,
            need: i64::from(need) * 1000,
        })
    }
}

impl Store {
    /// Takes `cost` tokens from bucket `key` (capacity `capacity`, refilled at `per_second`
    /// tokens a second, full when first seen) at time `now_ms` (Unix milliseconds). `Ok(None)`
    /// when taken; `Ok(Some(wait))` when refused (nothing taken), `wait` being the time until
    /// enough tokens will be there (at least 1 ms; [`Duration::MAX`] when the bucket never
    /// refills). Atomic across processes (see the module's documentation): concurrent takers
    /// never spend more than the bucket holds. One take of [`Store::take_tokens_together`].
    ///
    /// Fails with [`StoreError::BucketTooSmall`] when `cost` exceeds `capacity` (such a take
    /// could never succeed), and with [`StoreError::OutOfRange`] when `now_ms` is negative.
    pub async fn take_tokens(
        &self,
        key: &str,
        cost: u32,
        capacity: u32,
        per_second: u32,
        now_ms: i64,
    ) -> Result<Option<Duration>, StoreError> {
        let take = TokenTake {
            key,
            cost,
            capacity,
            per_second,
            at_least: 0,
        };
        Ok(self
            .take_tokens_together(&[take], now_ms)
            .await?
            .map(|r| r.wait))
    }

    /// Takes from every bucket or from none, in one transaction: `Ok(None)` when every take was
    /// covered, `Ok(Some(refused))` when one was not (and nothing was taken).
    ///
    /// The transaction's commit does not wait for the disk (SQLite `synchronous = NORMAL` on a
    /// pool of its own, PostgreSQL `synchronous_commit = off` for this transaction only): a
    /// crash of the machine (not of the process) may forget the last takes, which only hands a
    /// few tokens back. Every other write of the store stays durable. That saves a disk flush
    /// on every request that is limited.
    ///
    /// The buckets are locked in the order of their keys, so two requests that share buckets
    /// never wait for each other in a cycle. Errors as [`Store::take_tokens`]; a key named twice
    /// takes twice.
    pub async fn take_tokens_together(
        &self,
        takes: &[TokenTake<'_>],
        now_ms: i64,
    ) -> Result<Option<Refused>, StoreError> {
        if now_ms < 0 {
            return Err(StoreError::OutOfRange {
                what: "a negative time for a rate bucket",
            });
        }
        let mut order: Vec<(usize, Bucket)> = Vec::with_capacity(takes.len());
        for (index, take) in takes.iter().enumerate() {
            order.push((index, take.bucket()?));
        }
        order.sort_by(|a, b| takes[a.0].key.cmp(takes[b.0].key));
        for _ in 0..TAKE_ATTEMPTS {
            let mut tx = self
                .limits_pool
                .begin_write()
                .await
                .map_err(|e| self.write_error(e))?;
            if let Conn::Postgres(c) = tx.conn() {
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *c)
                    .await?;
            }
            let mut verdict = Ok(None);
            for (index, b) in &order {
                match take_one(&mut tx.conn(), takes[*index].key, b, now_ms).await {
                    Ok(Take::Taken) => {}
                    Ok(Take::Refused(wait)) => {
                        verdict = Ok(Some(Refused {
                            index: *index,
                            wait,
                        }));
                        break;
                    }
                    Ok(Take::Raced) => {
                        verdict = Err(());
                        break;
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        return Err(self.write_error(e));
                    }
                }
            }
            match verdict {
                Ok(None) => {
                    tx.commit().await.map_err(|e| self.write_error(e))?;
                    return Ok(None);
                }
                Ok(Some(refused)) => {
                    tx.rollback().await.map_err(|e| self.write_error(e))?;
                    return Ok(Some(refused));
                }
                // Another process changed a bucket under us: again, from the start.
                Err(()) => tx.rollback().await.map_err(|e| self.write_error(e))?,
            }
        }
        Err(StoreError::Contended {
            what: "a rate bucket",
            attempts: TAKE_ATTEMPTS,
        })
    }
}

/// What one take inside the transaction did.
enum Take {
    Taken,
    Refused(Duration),
    /// Another process created or changed the bucket between two of our statements.
    Raced,
}

/// One bucket's take, inside the caller's transaction.
async fn take_one(
    conn: &mut Conn<'_>,
    key: &str,
    b: &Bucket,
    now_ms: i64,
) -> Result<Take, sqlx::Error> {
    let take = format!(
        "UPDATE rate_buckets SET milli_tokens = {REFILLED} - $6, \
         updated_ms = CASE WHEN $2 > updated_ms THEN $2 ELSE updated_ms END \
         WHERE bucket = $1 AND {REFILLED} >= $7"
    );
    let taken = on_conn!(conn, |c| sqlx::query(&take)
        .bind(key)
        .bind(now_ms)
        .bind(b.capacity)
        .bind(b.rate)
        .bind(b.full_ms)
        .bind(b.cost)
        .bind(b.need)
        .execute(&mut *c)
        .await?
        .rows_affected());
    if taken > 0 {
        return Ok(Take::Taken);
    }
    // Refused, or no such bucket yet. The read is only for the wait: the decision was the
    // update's.
    let row: Option<(i64, i64)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT milli_tokens, updated_ms FROM rate_buckets WHERE bucket = $1"
    )
    .bind(key)
    .fetch_optional(&mut *c)
    .await?);
    match row {
        None => {
            // A new bucket starts full, less this take. `ON CONFLICT DO NOTHING` rather than a
            // unique violation, which would end a PostgreSQL transaction.
            let created = on_conn!(conn, |c| {
                sqlx::query(
                "INSERT INTO rate_buckets (bucket, milli_tokens, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket) DO NOTHING"
            )
            .bind(key)
            .bind(b.capacity - b.cost)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()
            });
            Ok(if created > 0 {
                Take::Taken
            } else {
                Take::Raced
            })
        }
        Some((tokens, updated_ms)) => {
            let missing = b.need - refilled(tokens, updated_ms, now_ms, b);
            if missing <= 0 {
                // Changed since the update (a larger capacity asked for, say).
                return Ok(Take::Raced);
            }
            if b.rate == 0 {
                return Ok(Take::Refused(Duration::MAX));
            }
            // Whole milliseconds, rounded up, so the bucket has enough when they pass.
            let ms = (missing + b.rate - 1) / b.rate;
            Ok(Take::Refused(Duration::from_millis(
                u64::try_from(ms).unwrap_or(1),
            )))
        }
    }
}
