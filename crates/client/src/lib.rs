//! The hashguard client SDK: what a messenger links into its app so that known abuse images
//! and videos are stopped at upload while nobody, the service included, learns anything about
//! anything else a person shares.
//!
//! For each attachment the SDK
//! - hashes it on the device (an image: PDQ; a video: up to 16 vPDQ keyframes),
//! - pads it to a size bucket and encrypts it under a fresh key ([`attachment`]),
//! - builds the private-matching vouchers against a table it has verified completely
//!   ([`table`]; protocol.md R/E3),
//! - uploads ciphertext and vouchers and turns the service's answer into a [`SendOutcome`]:
//!   delivered (an [`AttachmentPointer`] to put in the end-to-end encrypted message), held
//!   (an [`Intervention`] to show, with the automatic check by consent and the appeal), rate
//!   limited or rejected. A table that moved on is refreshed and the vouchers rebuilt
//!   transparently.
//!
//! The SDK depends on hashing and the protocol only: no store, no index, no hash list.
//!
//! ```no_run
//! use hashguard_client::{PinnedParams, Session, SessionOptions, SendOutcome, TrustAnchors};
//! use hashguard_protocol::params::{Policy, Preset};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // What the app was built to trust: the deployment's service, organisation, log and
//! // witness keys (its trust file) and the table parameters; any other table is refused.
//! let pinned = PinnedParams::exactly(Preset::V1.params(Policy::Intervene));
//! let trust = TrustAnchors::parse(include_str!("../../../assets/demo/example-trust.txt"), pinned)?;
//! let mut session =
//!     Session::register("http://127.0.0.1:8640", trust, SessionOptions::default()).await?;
//! session.refresh_table().await?;
//! let photo = std::fs::read("photo.jpg")?;
//! let prepared = session.prepare(&photo, Some("photo.jpg".into()))?;
//! match session.send(&prepared).await? {
//!     SendOutcome::Delivered(pointer) => {
//!         // Put `pointer` (it holds the key) in the end-to-end encrypted message.
//!         println!("{}", serde_json::to_string(&pointer).expect("a pointer serializes"));
//!     }
//!     SendOutcome::Held(held) => {
//!         // Show every word of `held.intervention`, offer the check and the appeal.
//!         println!("{}", held.intervention.reason);
//!     }
//!     SendOutcome::RateLimited { retry_after, .. } => println!("wait {retry_after:?}"),
//!     SendOutcome::Rejected { message, .. } => println!("{message}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `examples/send_photo.rs` runs the same against a whole local deployment:
//! `cargo run -p hashguard-client --example send_photo`.

pub mod attachment;
mod error;
pub mod media;
mod outcome;
mod session;
pub mod table;

pub use attachment::{AttachmentPointer, MediaType};
pub use error::SdkError;
pub use hashguard_protocol::acceptance::TrustAnchors;
pub use hashguard_protocol::params::PinnedParams;
pub use outcome::{
    AppealStatus, CaseStatus, CheckOutcome, HeldUpload, HelpResource, Intervention, SendOutcome,
};
pub use session::{
    prepare_analysed, prepare_file, Credentials, PrepareTimings, PreparedAttachment, Session,
    SessionOptions, DEFAULT_TWO_PHASE_ABOVE,
};
pub use table::{GossipReport, Refreshed, TableCache};
