//! Sends a photo through a whole local deployment and fetches it back as a recipient would:
//!
//! ```text
//! cargo run -p hashguard-client --example send_photo [PHOTO]
//! ```
//!
//! Starts the service on a temporary SQLite database with the bundled stand-in lists (benign:
//! they list `assets/demo/hills.png`), registers a sender and a recipient, and sends PHOTO
//! (default `assets/demo/blocks.webp`). Try `assets/demo/hills-recompressed.jpg` to see an
//! upload held.

use std::path::PathBuf;

use hashguard_client::{SendOutcome, Session, SessionOptions};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let photo = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo/blocks.webp")
        });
    let dir = tempfile::tempdir()?;
    let service = Sandbox::start(SandboxOptions::new(dir.path())).await?;
    // An app pins the keys and parameters it was built to trust; here, the sandbox's.
    let trust = service.trust_anchors();

    let mut sender =
        Session::register(service.base_url(), trust.clone(), SessionOptions::default()).await?;
    let recipient = Session::register(service.base_url(), trust, SessionOptions::default()).await?;
    sender.refresh_table().await?;

    let bytes = std::fs::read(&photo)?;
    let prepared = sender.prepare(&bytes, None)?;
    println!("prepared {} in {:?}", photo.display(), prepared.timings);
    match sender.send(&prepared).await? {
        SendOutcome::Delivered(pointer) => {
            // In a messenger the pointer travels inside the end-to-end encrypted message.
            let fetched = recipient.fetch(&pointer).await?;
            println!(
                "delivered as {}; the recipient fetched {} bytes, identical: {}",
                pointer.attachment_id,
                fetched.len(),
                fetched == bytes
            );
        }
        SendOutcome::Held(held) => {
            let words = &held.intervention;
            println!(
                "held (case {})\n{}\n{}",
                words.case_id, words.reason, words.what_happens
            );
            for help in &words.help {
                println!("  {}: {}", help.name, help.url);
            }
        }
        SendOutcome::RateLimited { message, .. } | SendOutcome::Rejected { message, .. } => {
            println!("not sent: {message}");
        }
    }
    Ok(())
}
