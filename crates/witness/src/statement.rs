//! The witness's published statement: the promise its cosignatures carry.

use hashguard_transparency::cosignature::CosignatureVerifier;
use hashguard_transparency::note::NoteVerifier as _;

use crate::logs::KnownLogs;

/// The statement text (served at `GET /`).
pub(crate) fn statement(
    key: &CosignatureVerifier,
    logs: &KnownLogs,
    organisation: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "hashguard witness");
    let _ = writeln!(s);
    let _ = writeln!(s, "name: {}", key.name());
    let _ = writeln!(s, "vkey: {}", key.to_vkey());
    if let Some(org) = organisation {
        let _ = writeln!(s, "operated by: {org}");
    }
    let _ = writeln!(
        s,
        "protocol: https://c2sp.org/tlog-witness (POST /add-checkpoint)"
    );
    let _ = writeln!(
        s,
        "cosignatures: https://c2sp.org/tlog-cosignature (cosignature/v1, Ed25519, timestamped)"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Statement. This witness cosigns a checkpoint of a log below only if:"
    );
    let _ = writeln!(
        s,
        "1. the checkpoint carries a valid signature of a key listed for the log's origin;"
    );
    let _ = writeln!(
        s,
        "2. a consistency proof shows that its tree extends the latest tree this witness cosigned"
    );
    let _ = writeln!(
        s,
        "   for that log, so it is consistent with every checkpoint it cosigned before;"
    );
    let _ = writeln!(
        s,
        "3. it never cosigned another tree of the same size: it never cosigns two different trees"
    );
    let _ = writeln!(s, "   of one size for one log;");
    let _ = writeln!(
        s,
        "4. the new latest tree is persisted, in the same atomic step that checked the old one,"
    );
    let _ = writeln!(s, "   before the cosignature is released.");
    let _ = writeln!(
        s,
        "A cosignature's timestamp is the time it was made. Every cosigned checkpoint is kept. A"
    );
    let _ = writeln!(
        s,
        "log-signed checkpoint naming a cosigned size with another root, received by"
    );
    let _ = writeln!(
        s,
        "add-checkpoint or by POST /gossip, is refused with 409 and kept as fork evidence."
    );
    if let Some(org) = organisation {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "As a hashguard organisation, {org} co-signs a list manifest (SHA-256(\"PDQTPSI-v1/cosign\""
        );
        let _ = writeln!(
            s,
            "|| manifest_core)) only after rebuilding the key set and checking every list commitment,"
        );
        let _ = writeln!(
            s,
            "count, shard root, build id and proof, and only if it co-signed no other manifest for"
        );
        let _ = writeln!(
            s,
            "that epoch and the manifest's prev_manifest_hash is the last manifest it co-signed"
        );
        let _ = writeln!(s, "(protocol.md, section R, E11).");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "logs:");
    for (origin, keys) in logs.iter() {
        for k in keys {
            let _ = writeln!(s, "log {origin} {}", k.to_vkey());
        }
    }
    s
}
