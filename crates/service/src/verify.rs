//! Every check of a table directory that can be made without signatures, each returning what
//! it found (`Ok(detail)`) or why it failed (`Err(reason)`), so a caller can report them one by
//! one; and the organisations' check that the shards encode exactly the key set they rebuild.

use hashguard_protocol::keys::{KeyBytes, TableKind};
use hashguard_protocol::manifest::{Manifest, TableDescriptor};
use hashguard_protocol::table::{
    key_set_digest, verify_shard_for_org, ClientTable, OpeningKey, TableError, TableShard,
    TableSpec,
};

use crate::hex;
use crate::keyset::KeySet;
use crate::publish::{BuildRecord, TableDir, BUILD_RECORD_FORMAT, SECONDS_PER_DAY};

/// What one check found, or why it failed.
pub type CheckResult = Result<String, String>;

/// What every client checks of the shards: roots, layouts, counts, every point valid and not
/// the identity. The parameters are pinned as published and the manifest is checked at the
/// start of its window: the window and the chain are separate checks ([`check_window`],
/// [`check_chain`]), so one expired epoch is reported once, as expired.
pub fn check_client(manifest: &Manifest, shards: &[TableShard]) -> CheckResult {
    ClientTable::check_shards(manifest, TableKind::Pdq, shards, u64::MAX)
        .map(|_| format!("{} shards, roots, layouts, points", shards.len()))
        .map_err(|e| e.to_string())
}

/// The opening key must be the table's.
pub fn check_opening_key(secret: &OpeningKey, manifest: &Manifest) -> CheckResult {
    (secret.public_key() == *manifest.public_key())
        .then(String::new)
        .ok_or_else(|| "it is not the key of this table".to_string())
}

/// Each shard's DLEQ proof against the keys of the rebuilt key set that fall in it (the
/// organisations' check that the table encodes exactly the consensus list), on `pool`; the
/// failures, in shard order.
pub fn check_proofs(
    pool: &rayon::ThreadPool,
    spec: &TableSpec,
    table: &TableDescriptor,
    shards: &[TableShard],
    keys: &[KeyBytes],
) -> Vec<(u16, TableError)> {
    use rayon::prelude::*;
    let mut per_shard: Vec<Vec<KeyBytes>> = vec![Vec::new(); shards.len()];
    for k in keys {
        if let Some(v) = per_shard.get_mut(usize::from(spec.shard_of(k))) {
            v.push(k.clone());
        }
    }
    // Shards are independent: check them in parallel.
    let results: Vec<Result<(), TableError>> = pool.install(|| {
        shards
            .par_iter()
            .zip(table.shards())
            .zip(&per_shard)
            .map(|((shard, entry), ks)| verify_shard_for_org(spec, shard, entry, ks))
            .collect()
    });
    shards
        .iter()
        .zip(results)
        .filter_map(|(shard, r)| r.err().map(|e| (shard.header.shard, e)))
        .collect()
}

/// manifest.txt must be the summary of manifest.bin, byte for byte.
pub fn check_summary(dir: &TableDir, manifest: &Manifest) -> CheckResult {
    let path = dir.summary_path();
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text == manifest.to_string().as_bytes() {
        Ok(String::new())
    } else {
        Err("it does not say what manifest.bin says".into())
    }
}

/// The manifest must be valid now, as clients check it.
pub fn check_window(manifest: &Manifest, now: u64) -> CheckResult {
    if now < manifest.not_before() {
        Err(format!(
            "not valid before {} (now {now})",
            manifest.not_before()
        ))
    } else if now >= manifest.not_after() {
        Err(format!("expired at {} (now {now})", manifest.not_after()))
    } else {
        // Whole days rounded up: a table built a second ago for 30 days says 30, not 29.
        Ok(format!(
            "{} more day(s)",
            (manifest.not_after() - now).div_ceil(SECONDS_PER_DAY)
        ))
    }
}

/// The kept manifests from `manifest`'s epoch down to epoch 1 must form one chain: each the
/// previous epoch of the same deployment and key, its hash the next one's
/// `prev_manifest_hash`. manifest.bin must be the kept manifest of its epoch.
pub fn check_chain(dir: &TableDir, manifest: &Manifest) -> CheckResult {
    let read = |epoch: u32| -> Result<Manifest, String> {
        let path = dir.epoch_manifest_path(epoch);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {} (every epoch's manifest is kept to check the chain): {e}",
                path.display()
            )
        })?;
        Manifest::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    if &read(manifest.epoch())? != manifest {
        return Err(format!(
            "manifest.bin differs from {}",
            dir.epoch_manifest_path(manifest.epoch()).display()
        ));
    }
    let mut later = manifest.clone();
    while later.epoch() > 1 {
        let earlier = read(later.epoch() - 1)?;
        if earlier.hash() != *later.prev_manifest_hash() {
            return Err(format!(
                "epoch {}'s prev_manifest_hash is not the hash of epoch {}",
                later.epoch(),
                earlier.epoch()
            ));
        }
        if earlier.deployment_id() != later.deployment_id()
            || earlier.public_key() != later.public_key()
        {
            return Err(format!(
                "epoch {} belongs to another deployment or key than epoch {}",
                earlier.epoch(),
                later.epoch()
            ));
        }
        if earlier.not_before() > later.not_before() {
            return Err(format!(
                "epoch {} starts before epoch {}",
                later.epoch(),
                earlier.epoch()
            ));
        }
        later = earlier;
    }
    Ok(format!("epochs 1 to {}", manifest.epoch()))
}

/// The build record's fields that the manifest also states must agree with it.
pub fn check_record(record: &BuildRecord, manifest: &Manifest) -> CheckResult {
    let table = manifest
        .table(TableKind::Pdq)
        .ok_or("the manifest has no PDQ table")?;
    let mut wrong = Vec::new();
    if record.format != BUILD_RECORD_FORMAT {
        wrong.push(format!(
            "format {} (this version writes {BUILD_RECORD_FORMAT})",
            record.format
        ));
    }
    if record.protocol_params() != *manifest.params() {
        wrong.push("params or policy".to_string());
    }
    if record.epoch != manifest.epoch() {
        wrong.push(format!(
            "epoch {} (the manifest's is {})",
            record.epoch,
            manifest.epoch()
        ));
    }
    if record.shards != table.shard_count() {
        wrong.push(format!(
            "shards {} (the manifest has {})",
            record.shards,
            table.shard_count()
        ));
    }
    if record.keys != table.n_keys() {
        wrong.push(format!(
            "keys {} (the manifest has {})",
            record.keys,
            table.n_keys()
        ));
    }
    if record.distinct_keys.checked_sub(record.pruned_keys) != usize::try_from(record.keys).ok() {
        wrong.push("distinct_keys - pruned_keys is not keys".to_string());
    }
    if record.created_at != manifest.not_before() {
        wrong.push(format!(
            "created_at {} (the manifest's not_before is {})",
            record.created_at,
            manifest.not_before()
        ));
    }
    if let Some(days) = record.valid_days {
        if days.checked_mul(SECONDS_PER_DAY) != Some(manifest.not_after() - manifest.not_before()) {
            wrong.push(format!("valid_days {days} (not the manifest's window)"));
        }
    }
    if !record.shard_key_digests.is_empty()
        && record.shard_key_digests.len() != usize::from(table.shard_count())
    {
        wrong.push(format!(
            "{} shard_key_digests for {} shards",
            record.shard_key_digests.len(),
            table.shard_count()
        ));
    }
    if wrong.is_empty() {
        Ok(String::new())
    } else {
        Err(format!("disagrees with the manifest: {}", wrong.join(", ")))
    }
}

/// The build record's counts must be those of the key set rebuilt from the banks.
pub fn check_record_counts(record: &BuildRecord, key_set: &KeySet) -> CheckResult {
    let mut wrong = Vec::new();
    if record.banks != key_set.banks {
        wrong.push(format!(
            "banks {:?} (the key set comes from {:?})",
            record.banks, key_set.banks
        ));
    }
    for (what, recorded, rebuilt) in [
        (
            "consensus_values",
            record.consensus_values,
            key_set.consensus_values,
        ),
        ("distinct_keys", record.distinct_keys, key_set.distinct),
        ("pruned_keys", record.pruned_keys, key_set.pruned),
        (
            "pruned_related",
            record.pruned_related,
            key_set.pruned_related,
        ),
        (
            "pruned_unrelated",
            record.pruned_unrelated,
            key_set.pruned_unrelated,
        ),
        ("kept_close", record.kept_close, key_set.kept_close),
    ] {
        if recorded != rebuilt {
            wrong.push(format!("{what} {recorded} (rebuilt: {rebuilt})"));
        }
    }
    // A record from before the histogram existed has none: it must then have nothing to show.
    let histogram: &[usize] = if record.pruned_histogram.is_empty() {
        &[0; 6]
    } else {
        &record.pruned_histogram
    };
    if histogram != key_set.pruned_histogram {
        wrong.push(format!(
            "pruned_histogram {:?} (rebuilt: {:?})",
            record.pruned_histogram, key_set.pruned_histogram
        ));
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} consensus values, {} distinct keys, {} pruned",
            key_set.consensus_values, key_set.distinct, key_set.pruned
        ))
    } else {
        Err(wrong.join(", "))
    }
}

/// Each shard's recorded key digest must be the digest of its rebuilt keys under the key.
pub fn check_key_digests(
    record: &BuildRecord,
    spec: &TableSpec,
    secret: &OpeningKey,
    keys: &[KeyBytes],
) -> CheckResult {
    if record.shard_key_digests.is_empty() {
        return Err("build.json records none".into());
    }
    let mut per_shard: Vec<Vec<KeyBytes>> = vec![Vec::new(); record.shard_key_digests.len()];
    for k in keys {
        if let Some(v) = per_shard.get_mut(usize::from(spec.shard_of(k))) {
            v.push(k.clone());
        }
    }
    let bad: Vec<String> = record
        .shard_key_digests
        .iter()
        .zip(&per_shard)
        .enumerate()
        .filter(|(i, (recorded, ks))| {
            let shard = u16::try_from(*i).unwrap_or(u16::MAX);
            recorded.as_str() != hex(&key_set_digest(secret, spec, shard, ks))
        })
        .map(|(i, _)| i.to_string())
        .collect();
    if bad.is_empty() {
        Ok(format!("{} shards", per_shard.len()))
    } else {
        Err(format!("wrong for shard(s) {}", bad.join(", ")))
    }
}
