//! The SDK's one error type. Answers the service gives by design (held, rate limited, stale
//! table) are not errors: they are [`crate::SendOutcome`]s an app shows.

/// Why an SDK call failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The service could not be reached or the connection broke.
    #[error("cannot reach the service: {0}")]
    Network(#[from] reqwest::Error),
    /// The service answered something this SDK does not understand (a bug on one side).
    #[error("the service answered {status} unexpectedly: {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The service's message, or what was wrong with its answer.
        message: String,
    },
    /// The service refused the request (malformed, unauthorized, not found ...).
    #[error("the service refused: {message} ({code}, HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The service's stable error code.
        code: String,
        /// The service's words.
        message: String,
    },
    /// The table the service offers failed verification: no voucher is built from it.
    #[error("the service's table is not trustworthy: {0}")]
    UntrustedTable(String),
    /// The table expired and no fresh one could be fetched.
    #[error("the table expired and the service offers no newer one")]
    TableExpired,
    /// No verified table is loaded yet (call `refresh_table`).
    #[error("no verified table yet")]
    NoTable,
    /// The file is not something this SDK sends.
    #[error("{0}")]
    UnsupportedFile(String),
    /// An argument the app passed is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The file is larger than the SDK can pad and encrypt.
    #[error("a file of {size} bytes is too large")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// A downloaded attachment is not what its pointer describes.
    #[error("{0}")]
    Tampered(&'static str),
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The voucher could not be built.
    #[error("cannot build the voucher: {0}")]
    Voucher(#[from] hashguard_protocol::sender::ClientError),
    /// The table's parameters ask for something this SDK does not compute (e.g. dihedral
    /// variants other than the ones it hashes); nothing was sent.
    #[error("this SDK cannot serve the table's parameters: {0}")]
    UnsupportedParameters(String),
    /// Local state could not be read or written.
    #[error("local state: {0}")]
    Io(#[from] std::io::Error),
    /// Saved state is corrupt.
    #[error("saved state is unreadable: {0}")]
    CorruptState(String),
}
