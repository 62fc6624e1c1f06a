//! How a [`Store`](crate::Store) connects: pool size and time limits.

use std::num::NonZeroU32;
use std::time::Duration;

/// Connection settings of a [`Store`](crate::Store), for
/// [`Store::open_with_options`](crate::Store::open_with_options) and
/// [`Store::open_read_only_with_options`](crate::Store::open_read_only_with_options);
/// [`Store::open`](crate::Store::open) uses [`StoreOptions::default`].
///
/// ```
/// use std::time::Duration;
/// use hashguard_store::StoreOptions;
/// let options = StoreOptions::default()
///     .with_max_connections(std::num::NonZeroU32::new(8).unwrap())
///     .with_busy_timeout(Duration::from_secs(60));
/// assert_eq!(options.max_connections().get(), 8);
/// assert_eq!(options.connect_timeout(), StoreOptions::DEFAULT_CONNECT_TIMEOUT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    max_connections: NonZeroU32,
    busy_timeout: Duration,
    connect_timeout: Duration,
}

impl StoreOptions {
    /// The default pool size: 4 connections (an in-memory SQLite database always has 1, since
    /// each connection to one would be a database of its own).
    pub const DEFAULT_MAX_CONNECTIONS: NonZeroU32 = match NonZeroU32::new(4) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    };
    /// The default busy timeout: 30 s, long enough for another import of a few million
    /// entries to finish.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default connect timeout: 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The same options with at most `n` pooled connections.
    pub fn with_max_connections(mut self, n: NonZeroU32) -> StoreOptions {
        self.max_connections = n;
        self
    }

    /// The same options with this busy timeout: how long a writer waits for another writer's
    /// lock before it fails with [`StoreError::Busy`](crate::StoreError::Busy). On SQLite it is
    /// the connection's busy timeout (a writer waits for the database's write lock, which an
    /// import holds from its first statement on); on PostgreSQL it is the session's
    /// `lock_timeout` (a writer waits for the bank's row lock).
    pub fn with_busy_timeout(mut self, timeout: Duration) -> StoreOptions {
        self.busy_timeout = timeout;
        self
    }

    /// The same options with this connect timeout: how long opening the database, and taking a
    /// connection from the pool, may take before it fails with
    /// [`StoreError::ConnectTimeout`](crate::StoreError::ConnectTimeout) (or the pool's timeout
    /// error).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> StoreOptions {
        self.connect_timeout = timeout;
        self
    }

    /// The largest number of pooled connections.
    pub fn max_connections(&self) -> NonZeroU32 {
        self.max_connections
    }

    /// How long a writer waits for another writer's lock.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// How long connecting may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

impl Default for StoreOptions {
    /// [`StoreOptions::DEFAULT_MAX_CONNECTIONS`], [`StoreOptions::DEFAULT_BUSY_TIMEOUT`] and
    /// [`StoreOptions::DEFAULT_CONNECT_TIMEOUT`].
    fn default() -> StoreOptions {
        StoreOptions {
            max_connections: StoreOptions::DEFAULT_MAX_CONNECTIONS,
            busy_timeout: StoreOptions::DEFAULT_BUSY_TIMEOUT,
            connect_timeout: StoreOptions::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}
