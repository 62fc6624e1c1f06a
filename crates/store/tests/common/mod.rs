//! The harness shared by the store's test files: a fresh database per test, on SQLite (a
//! temporary file) and on PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, in a fresh schema per test that is dropped
//! afterwards), and the `suite!` macro that runs each check on both. When PostgreSQL is
//! unreachable the PostgreSQL tests print `SKIPPED` and pass, unless
//! `HASHGUARD_REQUIRE_POSTGRES=1`, where they fail.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashguard_store::Store;
use sqlx::AnyPool;

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
pub static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Says something that `cargo test` does not capture (it captures only the print macros).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub enum Cleanup {
    File(std::path::PathBuf),
    Schema { admin: AnyPool, schema: String },
}

pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub cleanup: Cleanup,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let (url, cleanup) = TestDb::empty_sqlite();
        let store = Store::open(&url).await.unwrap();
        TestDb {
            store,
            url,
            cleanup,
        }
    }

    /// A URL for a new SQLite database, not opened yet.
    pub fn empty_sqlite() -> (String, Cleanup) {
        // The checks reach the database behind the store's back through `sqlx::AnyPool`.
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("hashguard-store-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = Store::sqlite_url(&dir.join("test.db"));
        (url, Cleanup::File(dir))
    }

    pub async fn postgres(test: &str) -> Option<TestDb> {
        let (url, cleanup) = TestDb::empty_postgres(test).await?;
        let store = Store::open(&url).await.unwrap();
        Some(TestDb {
            store,
            url,
            cleanup,
        })
    }

    /// A URL for a new, empty PostgreSQL schema, not migrated yet.
    pub async fn empty_postgres(test: &str) -> Option<(String, Cleanup)> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
        let required = std::env::var("HASHGUARD_REQUIRE_POSTGRES").as_deref() == Ok("1");
        sqlx::any::install_default_drivers();
        let admin = match tokio::time::timeout(Duration::from_secs(5), AnyPool::connect(&url)).await
        {
            Ok(Ok(pool)) => pool,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                if required {
                    panic!("PostgreSQL at {url} is unreachable ({why}) and HASHGUARD_REQUIRE_POSTGRES=1");
                }
                say(&format!(
                    "SKIPPED postgres::{test}: PostgreSQL at {url} is unreachable ({why}); set HASHGUARD_REQUIRE_POSTGRES=1 to fail instead"
                ));
                return None;
            }
        };
        // The schema name is ours (digits and underscores), never user data; identifiers
        // cannot be bind parameters.
        let schema = format!("hashguard_test_{}", unique());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}options[search_path]={schema}");
        Some((url, Cleanup::Schema { admin, schema }))
    }

    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { admin, schema } => {
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }
}

/// Runs `check` against `db`, cleans up even when the check panics, then re-raises the panic.
pub async fn run<F, Fut>(db: TestDb, check: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let result = tokio::spawn(check(db.store.clone(), db.url.clone())).await;
    db.finish().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Defines each named check `name(store, url)` as two tests, `sqlite::name` and
/// `postgres::name`, each on a fresh database that is removed afterwards.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    assert_eq!(db.store.backend(), hashguard_store::Backend::Sqlite);
                    super::run(db, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres(stringify!($name)).await else { return };
                    assert_eq!(db.store.backend(), hashguard_store::Backend::Postgres);
                    super::run(db, super::$name).await;
                }
            )*
        }
    };
}
