//! `hashguard demo`: the product's story over the real service, in one command with no setup.
//!
//! A whole deployment starts on loopback (`hashguard_server::sandbox`: a temporary SQLite
//! database with the two bundled stand-in organisations' lists, the private table published,
//! the server running); two people register with the reference messenger
//! (`hashguard-messenger`, OpenMLS over the service's delivery endpoints, files through the
//! client SDK), form an end-to-end encrypted group, and the demo narrates in plain sentences
//! what happens to an ordinary photo, a listed picture, the consented check, a chance match
//! and a listed video, then what the service stored.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hashguard_client::media::analyse;
use hashguard_client::{prepare_analysed, Intervention, PinnedParams};
use hashguard_messenger::{Checked, Event, FileSent, Messenger, Options};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};
use sha2::Digest;

/// The demo's files, built into the binary so the demo runs from anywhere.
const PHOTO: (&str, &[u8]) = (
    "blocks.webp",
    include_bytes!("../../../assets/demo/blocks.webp"),
);
const LISTED: (&str, &[u8]) = (
    "hills-recompressed.jpg",
    include_bytes!("../../../assets/demo/hills-recompressed.jpg"),
);
const LISTED_ORIGINAL: &[u8] = include_bytes!("../../../assets/demo/hills.png");
const CLIP: (&str, &[u8]) = ("clip.mp4", include_bytes!("../../../assets/demo/clip.mp4"));
/// The size of a table's visual-derivative blob the SDK fills at v1 (docs/client.md).
const VD_CAPACITY: usize = 4076;
/// How many bits of the listed picture's fingerprint the simulated chance match changes
/// (outside the key bits): far from the listed picture by any measure.
const COLLISION_FLIPS: usize = 70;
/// The group's name.
const GROUP: &str = "holiday";

/// Arguments of `hashguard demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The service's database: an empty PostgreSQL database (postgres://...) or a SQLite file
    /// [default: a fresh SQLite file in a temporary folder].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // OpenMLS's processing is deep; threads of our own give it room whatever the platform's
    // main-thread stack is.
    std::thread::Builder::new()
        .name("demo".into())
        .stack_size(16 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(demo(args))
        })
        .context("cannot start a thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the demo thread panicked"))?
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_string(&sha2::Sha256::digest(bytes))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `dir/name` and returns the path.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A harmless picture made on the spot (a colour pattern, 160 x 120, as a BMP file): the
/// unrelated image of the simulated chance match.
fn pattern_bmp() -> Vec<u8> {
    const W: u32 = 160;
    const H: u32 = 120;
    let pixels = W * H * 3;
    let mut out = Vec::with_capacity(54 + pixels as usize);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(54 + pixels).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&W.to_le_bytes());
    out.extend_from_slice(&H.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&pixels.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    // Rows of 480 bytes need no padding (a multiple of 4). Blue, green, red.
    for y in 0..H {
        for x in 0..W {
            let checker = if (x / 20 + y / 20) % 2 == 0 { 60 } else { 0 };
            out.push(((x * 255 / W) as u8).saturating_add(checker));
            out.push((y * 255 / H) as u8);
            out.push((((x + y) * 3) % 256) as u8);
        }
    }
    out
}

/// Prints the intervention exactly as `hashguard chat` shows it to the sender.
fn print_intervention(intervention: &Intervention) -> anyhow::Result<()> {
    outln!("   ----- what the sender's app shows -----")?;
    outln!("   {} Nobody in the group got it.", intervention.reason)?;
    for part in [
        &intervention.what_happens,
        &intervention.check_offer,
        &intervention.appeal_how,
    ] {
        outln!()?;
        outln!("   {part}")?;
    }
    if !intervention.help.is_empty() {
        outln!()?;
        outln!("   You are not in trouble for asking for help. People you can talk to:")?;
        for h in &intervention.help {
            outln!("     - {}: {}", h.name, h.url)?;
            outln!("       {}", h.description)?;
        }
    }
    outln!()?;
    outln!("   Your case number is {}.", intervention.case_id)?;
    outln!("   ---------------------------------------")?;
    Ok(())
}

/// What the recipient's app received: the files saved (none for a held upload).
async fn received_files(recipient: &mut Messenger) -> anyhow::Result<Vec<PathBuf>> {
    let events = recipient
        .receive()
        .await
        .context("the recipient could not receive")?;
    Ok(events
        .into_iter()
        .filter_map(|e| match e {
            Event::File { path, .. } => Some(path),
            _ => None,
        })
        .collect())
}

/// The second check's result in the words the service recorded for case `case`.
async fn second_check_recorded(db: &str, case: &str) -> anyhow::Result<String> {
    let store = hashguard_store::Store::open_location(
        &hashguard_store::DatabaseLocation::parse(db),
        hashguard_store::OpenMode::Read,
    )
    .await?;
    let id = case.parse().context("the case id")?;
    let record = store.case(&id).await;
    store.close().await;
    let record = record?.context("the case is not in the database")?;
    let detail: serde_json::Value = serde_json::from_str(&record.detail)?;
    Ok(detail["second_hash"]
        .as_str()
        .unwrap_or("not recorded")
        .to_string())
}

/// Receives one file and checks it is bit-identical to `sent`.
async fn expect_delivery(recipient: &mut Messenger, name: &str, sent: &[u8]) -> anyhow::Result<()> {
    let files = received_files(recipient).await?;
    let [path] = files.as_slice() else {
        anyhow::bail!(
            "the recipient should have received exactly one file, got {}",
            files.len()
        );
    };
    let got = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        got == sent,
        "the received {name} differs from what was sent"
    );
    let saved = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    outln!("   The recipient received it and saved it in its folder as received/{saved}.")?;
    outln!(
        "   It is bit-identical to what the sender sent: both have the SHA-256 fingerprint {}.",
        sha256_hex(&got)
    )?;
    Ok(())
}

/// Checks that nothing reached the recipient.
async fn expect_nothing(recipient: &mut Messenger) -> anyhow::Result<()> {
    let files = received_files(recipient).await?;
    anyhow::ensure!(
        files.is_empty(),
        "a held file reached the recipient: {files:?}"
    );
    outln!("   The recipient's app checked for new messages: nothing arrived.")?;
    Ok(())
}

/// Sends and expects the service to hold the file; returns the intervention.
fn held(sent: FileSent, what: &str) -> anyhow::Result<Intervention> {
    match sent {
        FileSent::Held(intervention) => Ok(intervention),
        other => anyhow::bail!("{what} should have been held, but: {other:?}"),
    }
}

/// Files under `dir`, recursively (bounded by what is there; links are not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Whether a 16-byte run says something about the file it comes from: runs of few distinct
/// byte values (zeros, padding, the boxes of a video container) are in many files.
fn distinctive(window: &[u8]) -> bool {
    let mut seen = [false; 256];
    window.iter().for_each(|&b| seen[usize::from(b)] = true);
    seen.iter().filter(|&&s| s).count() >= 8
}

/// The files under `dir` that hold any distinctive 16-byte run of any of `plaintexts`.
fn plaintext_found_in(dir: &Path, plaintexts: &[&[u8]]) -> anyhow::Result<Vec<PathBuf>> {
    let windows: HashSet<&[u8]> = plaintexts
        .iter()
        .flat_map(|p| p.windows(16))
        .filter(|w| distinctive(w))
        .collect();
    let mut found = Vec::new();
    for path in files_under(dir) {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.windows(16).any(|w| windows.contains(w)) {
            found.push(path);
        }
    }
    Ok(found)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let temp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let service_dir = temp.path().join("service");
    let sender_files = temp.path().join("sender-files");
    std::fs::create_dir_all(&sender_files)
        .with_context(|| format!("cannot create {}", sender_files.display()))?;

    outln!("hashguard demo: two people in an end-to-end encrypted chat. A picture on the")?;
    outln!("organisations' lists is stopped at the moment it is sent; everything else is seen by")?;
    outln!(
        "nobody but the people in the chat. Everything runs on this computer, in {}",
        temp.path().display()
    )?;
    outln!("(deleted at the end).")?;
    outln!()?;

    // The video's keyframes go on both stand-in lists, so that the clip counts as listed.
    let frames = analyse(CLIP.1, VD_CAPACITY)
        .context("cannot analyse the demo clip")?
        .frames;
    let clip_lines: String = frames
        .iter()
        .flatten()
        .map(|f| format!("pdq {}\n", f.hash))
        .collect();
    anyhow::ensure!(
        !clip_lines.is_empty(),
        "the demo clip has no keyframe to list"
    );
    let mut options = SandboxOptions::new(&service_dir);
    options.db = args.db.clone();
    for list in &mut options.lists {
        list.text.push_str(&clip_lines);
    }
    outln!("Setting up")?;
    for list in &options.lists {
        outln!(
            " - {} ({}) gave the service its list of pictures to stop. It is a stand-in, not a real",
            list.organisation,
            list.jurisdiction
        )?;
        outln!("   list: random values plus one harmless picture (hills.png).")?;
    }
    outln!(
        " - For this demo, both organisations also list a harmless test video (clip.mp4, a moving"
    )?;
    outln!(
        "   test pattern): the fingerprints of its {} key frames were added to their lists.",
        frames.iter().flatten().count()
    )?;
    let sandbox = Sandbox::start(options)
        .await
        .context("the service did not start")?;
    let database = match &args.db {
        Some(db) if db.starts_with("postgres") => "a PostgreSQL database".to_string(),
        Some(db) => format!("the SQLite file {db}"),
        None => "a temporary SQLite file".to_string(),
    };
    outln!(
        " - The service is running at {}, keeping its records in {database}.",
        sandbox.base_url()
    )?;
    outln!(
        " - It published its private table: only what both organisations list (two organisations"
    )?;
    outln!("   in two countries) is in it, in a form that lets an app notice a listed picture at")?;
    outln!(
        "   upload without the service learning anything about the pictures that are not listed."
    )?;

    let messenger_options = Options {
        pinned: PinnedParams::exactly(sandbox.params().clone()),
        trust: Some(sandbox.trust_anchors()),
        ..Options::default()
    };
    let mut sender = Messenger::register(
        sandbox.base_url(),
        &temp.path().join("sender"),
        messenger_options.clone(),
    )
    .await
    .context("the sender could not register")?;
    let mut recipient = Messenger::register(
        sandbox.base_url(),
        &temp.path().join("recipient"),
        messenger_options,
    )
    .await
    .context("the recipient could not register")?;
    outln!(
        " - Two people installed the messenger: the sender (account {}) and the",
        sender.account_id()
    )?;
    outln!(
        "   recipient (account {}). Each app keeps its keys in its own folder.",
        recipient.account_id()
    )?;
    sender.create_group(GROUP).await?;
    sender.invite(GROUP, &recipient.account_id()).await?;
    let joined = recipient.receive().await?;
    anyhow::ensure!(
        recipient.groups() == vec![GROUP.to_string()],
        "the recipient did not join the group: {joined:?}"
    );
    outln!(
        " - The sender created the chat {GROUP:?} and added the recipient. The chat is end-to-end"
    )?;
    outln!("   encrypted (MLS): the service passes the messages on but cannot read them.")?;
    let database = sender.safety_database().await?;
    outln!(" - The sender's app downloaded the private table and checked it before using it: the")?;
    outln!(
        "   service signed it, both organisations co-signed it, and it is in the public log that"
    )?;
    outln!("   two independent witnesses vouch for, so every app gets the same one. Its settings")?;
    outln!("   screen shows:")?;
    outln!("   {database}")?;

    // 1. An ordinary photo.
    outln!()?;
    outln!("Step 1. The sender sends an ordinary photo ({}).", PHOTO.0)?;
    let path = write_file(&sender_files, PHOTO.0, PHOTO.1)?;
    match sender.send_file(GROUP, &path).await? {
        FileSent::Sent { .. } => {}
        other => anyhow::bail!("the ordinary photo should have been delivered, but: {other:?}"),
    }
    outln!(
        "   It was delivered: the app encrypted it before uploading, so the service stored only"
    )?;
    outln!(
        "   scrambled bytes, and the key to unscramble it went to the chat, end-to-end encrypted."
    )?;
    expect_delivery(&mut recipient, PHOTO.0, PHOTO.1).await?;

    // 2. The listed picture, re-encoded.
    outln!()?;
    outln!(
        "Step 2. The sender sends a picture on both lists, saved again as a smaller JPEG ({}).",
        LISTED.0
    )?;
    let path = write_file(&sender_files, LISTED.0, LISTED.1)?;
    let intervention = held(sender.send_file(GROUP, &path).await?, "the listed picture")?;
    outln!(
        "   It was held: it did not reach the chat. This is what the sender sees, word for word:"
    )?;
    outln!()?;
    print_intervention(&intervention)?;
    outln!()?;
    expect_nothing(&mut recipient).await?;

    // 3. The consented check.
    outln!()?;
    outln!("Step 3. The sender agrees to the automatic check.")?;
    match sender.check(&intervention.case_id).await? {
        Checked::BlockedForReview { message } => {
            outln!("   The check confirmed the match: the picture stays blocked, and its case waits for a")?;
            // What the service recorded about the check, read from its own database.
            let second = second_check_recorded(sandbox.db(), &intervention.case_id).await?;
            if second == "matches the same listed entry" {
                outln!(
                    "   person to review it (case {}). Two checks agreed on the",
                    intervention.case_id
                )?;
                outln!(
                    "   same listed picture: its full fingerprint, and a second fingerprint of its small"
                )?;
                outln!("   grey copy that only the service computes. The service says:")?;
            } else {
                outln!(
                    "   person to review it (case {}; the second fingerprint: {second}).",
                    intervention.case_id
                )?;
                outln!("   The service says:")?;
            }
            outln!("   {message}")?;
        }
        Checked::Released { .. } => {
            anyhow::bail!("the listed picture should have stayed blocked after the check")
        }
    }
    expect_nothing(&mut recipient).await?;

    // 4. A chance match.
    outln!()?;
    outln!(
        "Step 4. A chance match, simulated. Very rarely an unrelated picture looks like a listed"
    )?;
    outln!("   one to the app's quick test. The demo makes one: a harmless colour pattern")?;
    outln!(
        "   (pattern.bmp) whose fingerprint is made to share the listed picture's key part, while"
    )?;
    outln!(
        "   differing from it in {COLLISION_FLIPS} of its 256 bits (what a real chance match looks like)."
    )?;
    let other = pattern_bmp();
    write_file(&sender_files, "pattern.bmp", &other)?;
    let mut analysed = analyse(&other, VD_CAPACITY).context("cannot analyse the pattern")?;
    let listed_pdq = analyse(LISTED_ORIGINAL, VD_CAPACITY)
        .context("cannot analyse the listed picture")?
        .frames
        .into_iter()
        .next()
        .flatten()
        .context("the listed picture has no fingerprint")?;
    let keys = sandbox.params().key_positions().to_vec();
    let mut far = listed_pdq.hash;
    let mut flipped = 0;
    for bit in 0..=255u8 {
        if flipped < COLLISION_FLIPS && !keys.contains(&bit) {
            far = far.with_bit_flipped(usize::from(bit));
            flipped += 1;
        }
    }
    let mut collision = listed_pdq;
    collision.hash = far;
    analysed.frames = vec![Some(collision)];
    let prepared = prepare_analysed(analysed, &other, Some("pattern.bmp".into()))?;
    let chance = held(
        sender.send_prepared(GROUP, &prepared).await?,
        "the chance match",
    )?;
    outln!(
        "   It was held too (case {}), with the same words as in step 2.",
        chance.case_id
    )?;
    outln!("   The sender agrees to the automatic check.")?;
    match sender.check(&chance.case_id).await? {
        Checked::Released { .. } => {
            outln!("   The check found it was a mistake and released it at once: it was sent to the chat.")?;
        }
        Checked::BlockedForReview { message } => {
            anyhow::bail!("the chance match should have been released, but: {message}")
        }
    }
    expect_delivery(&mut recipient, "pattern.bmp", &other).await?;

    // 5. The listed video.
    outln!()?;
    outln!(
        "Step 5. The sender sends the video both organisations list for this demo ({}).",
        CLIP.0
    )?;
    let path = write_file(&sender_files, CLIP.0, CLIP.1)?;
    let video = held(sender.send_file(GROUP, &path).await?, "the listed video")?;
    outln!(
        "   The video was held too (case {}): the sender sees the same words and help as in step 2.",
        video.case_id
    )?;
    outln!("   The service says: {}", video.reason)?;
    expect_nothing(&mut recipient).await?;

    // 6. What the service stored.
    let mut sandbox = sandbox;
    let data_dir = sandbox.data_dir().to_path_buf();
    sandbox.stop().await.context("the service did not stop")?;
    drop(sender);
    drop(recipient);
    let blobs = files_under(&data_dir);
    let total: u64 = blobs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let sent: [&[u8]; 4] = [PHOTO.1, LISTED.1, &other, CLIP.1];
    let found = plaintext_found_in(&service_dir, &sent)?;
    outln!()?;
    outln!("What the service stored")?;
    outln!(
        "   {} files ({} bytes in all) in its data folder {}: the uploaded files, encrypted.",
        blobs.len(),
        total,
        data_dir.display()
    )?;
    let searched = if args
        .db
        .as_deref()
        .is_some_and(|d| d.starts_with("postgres"))
    {
        "its data folder and table (the PostgreSQL database is not a file here and was not searched)"
    } else {
        "its data folder, its database and its table"
    };
    anyhow::ensure!(
        found.is_empty(),
        "the service stored plaintext of a sent file in {found:?}"
    );
    // The search is honest: it finds every file in the sender's own folder.
    for (i, plain) in sent.iter().enumerate() {
        let found = plaintext_found_in(&sender_files, &[plain])?;
        anyhow::ensure!(
            !found.is_empty(),
            "the search for plaintext does not work: it missed sent file {i} in the sender's folder"
        );
    }
    outln!(
        "   No plaintext stored: none of the {} files the sender sent can be found in {searched}",
        sent.len()
    )?;
    outln!(
        "   (every run of 16 bytes of each file with at least 8 different byte values was searched"
    )?;
    outln!("   for; the same search finds each of them in the sender's own folder).")?;

    outln!()?;
    outln!("Where to look next")?;
    outln!("   docs/client.md   the client library a messenger links into its app")?;
    outln!(
        "   docs/chat.md     the reference messenger; try it yourself with `hashguard chat --help`"
    )?;
    outln!("   docs/serve.md    running the service")?;
    outln!()?;
    outln!(
        "The demo finished in {:.1} seconds.",
        started.elapsed().as_secs_f64()
    )?;
    Ok(ExitCode::SUCCESS)
}
