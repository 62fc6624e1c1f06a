//! A fresh PostgreSQL schema per test, so tests on one server never see each other's rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The server CI and this machine kind run (trust authentication on loopback).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A database URL whose `search_path` is a new, empty schema, or `None` (after one `SKIPPED`
/// line naming `test`) when PostgreSQL is unreachable and `HASHGUARD_REQUIRE_POSTGRES` is not
/// `1`. With it set, an unreachable server fails the test: CI must not skip silently.
pub async fn fresh_schema(test: &str) -> Option<String> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let required = std::env::var("HASHGUARD_REQUIRE_POSTGRES").as_deref() == Ok("1");
    sqlx::any::install_default_drivers();
    let connect = tokio::time::timeout(Duration::from_secs(5), sqlx::AnyPool::connect(&url));
    let admin = match connect.await {
        Ok(Ok(pool)) => pool,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_string(),
            };
            assert!(
                !required,
                "PostgreSQL at {url} is unreachable ({why}) and HASHGUARD_REQUIRE_POSTGRES=1"
            );
            eprintln!("SKIPPED postgres::{test}: PostgreSQL at {url} is unreachable ({why})");
            return None;
        }
    };
    // Our own identifier (digits and underscores), never user data.
    let schema = format!(
        "hashguard_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options[search_path]={schema}"))
}
