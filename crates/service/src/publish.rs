//! Building the next epoch's table directory from a key set: the manifest chain, the shards
//! kept from the previous epoch, the build record, and the order files are written in.
//!
//! A table directory holds only public files: `manifest.bin` (the canonical unsigned manifest),
//! `manifest.txt` (its summary), `manifest-EEEEEE.bin` (every epoch's manifest, for the chain),
//! `shard-NNNN.bin` (one blinded OKVS shard each) and `build.json` (which banks and consensus
//! parameters it was built from, so that an organisation holding the lists can recompute the
//! key set and check the proofs). The opening key α is only ever in its own key file; the key
//! set K is never written at all.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::{Manifest, TableDescriptor};
use hashguard_protocol::params::{Params, Policy, Preset};
use hashguard_protocol::table::{
    build_table_after, EpochInput, OpeningKey, PreviousShard, PublicKey, TableShard, TableSpec,
};
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::keyset::{ConsensusSpec, KeySet};
use crate::{hex, unhex32, ServiceError};

/// Keys per shard the default shard count aims at (the size the protocol benchmarks use).
pub const KEYS_PER_SHARD: usize = 16_384;

/// The build record format this version writes.
pub const BUILD_RECORD_FORMAT: u32 = 1;

/// Seconds in a day, for validity windows.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// The longest validity window a build accepts: clients refresh tables far more often, and an
/// expiry years away would keep a withdrawn list usable.
pub const MAX_VALID_DAYS: u64 = 3_650;

/// What a table was built from: enough for an organisation holding the banks to recompute K.
/// Parameters are named by the protocol's names ([`Preset::name`], [`Policy::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// [`BUILD_RECORD_FORMAT`].
    pub format: u32,
    /// The banks the consensus view was taken from.
    pub banks: Vec<String>,
    /// N.
    pub min_organisations: usize,
    /// M.
    pub min_jurisdictions: usize,
    /// d.
    pub distance: u32,
    /// The parameter preset.
    #[serde(with = "preset_name")]
    pub params: Preset,
    /// The policy.
    #[serde(with = "policy_name")]
    pub policy: Policy,
    /// The epoch built.
    pub epoch: u32,
    /// Values in the consensus view.
    pub consensus_values: usize,
    /// Distinct keys of those values.
    pub distinct_keys: usize,
    /// Keys dropped for separation.
    pub pruned_keys: usize,
    /// Of the pruned keys, those of entries related (PDQ ≤ 31) to a kept entry (review m2).
    /// Absent in older records.
    #[serde(default)]
    pub pruned_related: usize,
    /// Of the pruned keys, those of unrelated entries (review m2). Absent in older records.
    #[serde(default)]
    pub pruned_unrelated: usize,
    /// Kept keys closer than sep to another kept key of a related entry. Absent in older
    /// records.
    #[serde(default)]
    pub kept_close: usize,
    /// Pruned keys by PDQ distance to the nearest close kept entry, buckets 0-15, 16-31,
    /// 32-63, 64-95, 96-127, 128+. Absent in older records.
    #[serde(default)]
    pub pruned_histogram: Vec<usize>,
    /// Keys in the table.
    pub keys: u64,
    /// Shards in the table.
    pub shards: u16,
    /// Unix time of the build (the manifest's `not_before`).
    pub created_at: u64,
    /// Per shard, `key_set_digest` of its keys: how the next epoch's build knows, without
    /// keeping K, which shards it may leave unchanged. Keyed by the opening key, so it says
    /// nothing about K to anyone else. Absent in older records: then every shard is rebuilt.
    #[serde(default)]
    pub shard_key_digests: Vec<String>,
    /// The validity window in days. Absent in older records.
    #[serde(default)]
    pub valid_days: Option<u64>,
}

impl BuildRecord {
    /// The consensus options the record names.
    pub fn consensus(&self) -> ConsensusSpec {
        ConsensusSpec {
            banks: self.banks.clone(),
            min_organisations: self.min_organisations,
            min_jurisdictions: self.min_jurisdictions,
            distance: self.distance,
        }
    }

    /// The protocol parameters the record names.
    pub fn protocol_params(&self) -> Params {
        self.params.params(self.policy)
    }
}

mod preset_name {
    use hashguard_protocol::params::Preset;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Preset, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Preset, D::Error> {
        let name = String::deserialize(d)?;
        Preset::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown parameter preset {name:?}")))
    }
}

mod policy_name {
    use hashguard_protocol::params::Policy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Policy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let name = String::deserialize(d)?;
        Policy::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown policy {name:?}")))
    }
}

/// The files of a table directory.
#[derive(Debug, Clone)]
pub struct TableDir {
    dir: PathBuf,
}

impl TableDir {
    /// The table directory at `dir` (nothing is read yet).
    pub fn new(dir: impl Into<PathBuf>) -> TableDir {
        TableDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `manifest.bin`.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.bin")
    }

    /// `manifest.txt`.
    pub fn summary_path(&self) -> PathBuf {
        self.dir.join("manifest.txt")
    }

    /// `build.json`.
    pub fn record_path(&self) -> PathBuf {
        self.dir.join("build.json")
    }

    /// `shard-NNNN.bin`.
    pub fn shard_path(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("shard-{shard:04}.bin"))
    }

    /// `manifest-EEEEEE.bin`: the kept manifest of `epoch`.
    pub fn epoch_manifest_path(&self, epoch: u32) -> PathBuf {
        self.dir.join(format!("manifest-{epoch:06}.bin"))
    }

    /// The current manifest, or `None` for a directory without one.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, ServiceError> {
        let path = self.manifest_path();
        if !path.exists() {
            return Ok(None);
        }
        read_manifest_file(&path).map(Some)
    }

    /// The build record.
    pub fn read_record(&self) -> Result<BuildRecord, ServiceError> {
        let path = self.record_path();
        let bytes = std::fs::read(&path).map_err(ServiceError::io("cannot read", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ServiceError::bad_file(&path, format!("not a build record: {e}")))
    }

    /// Every shard the manifest's PDQ table lists, decoded.
    pub fn read_shards(&self, table: &TableDescriptor) -> Result<Vec<TableShard>, ServiceError> {
        (0..table.shards().len())
            .map(|i| {
                let path = self.shard_path(i);
                let bytes = std::fs::read(&path).map_err(ServiceError::io("cannot read", &path))?;
                TableShard::decode(&bytes).map_err(|e| ServiceError::bad_file(&path, e))
            })
            .collect()
    }
}

/// Reads and strictly decodes a manifest file.
pub fn read_manifest_file(path: &Path) -> Result<Manifest, ServiceError> {
    let bytes = std::fs::read(path).map_err(ServiceError::io("cannot read", path))?;
    Manifest::decode(&bytes).map_err(|e| ServiceError::bad_file(path, e))
}

/// A ChaCha20 generator seeded from the operating system.
pub fn os_rng() -> Result<rand_chacha::ChaCha20Rng, ServiceError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| ServiceError::Randomness(e.to_string()))?;
    Ok(rand_chacha::ChaCha20Rng::from_seed(*seed))
}

/// Reads the opening key from its file.
pub fn read_opening_key(path: &Path) -> Result<OpeningKey, ServiceError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(ServiceError::io("cannot read the key file", path))?,
    );
    let bytes = zeroize::Zeroizing::new(
        unhex32(&text).map_err(|e| ServiceError::bad_file(path, format!("key file: {e}")))?,
    );
    OpeningKey::from_bytes(&bytes)
        .map_err(|e| ServiceError::bad_file(path, format!("key file: {e}")))
}

/// Reads the opening key, or creates it (readable by the owner only) if the file is missing;
/// says whether it was created.
pub fn opening_key(
    path: &Path,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<(OpeningKey, bool), ServiceError> {
    if path.exists() {
        return Ok((read_opening_key(path)?, false));
    }
    let key = OpeningKey::generate(rng);
    let text = zeroize::Zeroizing::new(format!("{}\n", hex(key.to_bytes().as_ref())));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(ServiceError::io("cannot create the key file", path))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(ServiceError::io("cannot write the key file", path))?;
    Ok((key, true))
}

/// Unix time now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The table spec and epoch input of a build: the next epoch of `previous` (same deployment
/// id, shard salt and shard count, chained to its manifest), or epoch 1 of a new deployment
/// (random id and salt); the beacon given, or a random one.
pub fn next_epoch(
    previous: Option<&Manifest>,
    params: &Params,
    public_key: PublicKey,
    shard_count: u16,
    beacon: Option<[u8; 32]>,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<(TableSpec, EpochInput), String> {
    let (deployment_id, shard_salt, epoch, prev_manifest_hash) = match previous {
        Some(m) => {
            if *m.public_key() != public_key {
                return Err(
                    "it was built with another opening key; use its key or another directory"
                        .into(),
                );
            }
            let t = m
                .table(TableKind::Pdq)
                .ok_or("the previous manifest has no PDQ table")?;
            if t.shard_count() != shard_count {
                return Err(format!(
                    "the previous epoch has {} shards; a deployment keeps its shard count",
                    t.shard_count()
                ));
            }
            let epoch = m.epoch().checked_add(1).ok_or("epoch overflow")?;
            (*m.deployment_id(), *t.shard_salt(), epoch, m.hash())
        }
        None => {
            let mut id = [0u8; 16];
            let mut salt = [0u8; 32];
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut salt);
            (id, salt, 1, [0u8; 32])
        }
    };
    let beacon = beacon.unwrap_or_else(|| {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        b
    });
    let spec = TableSpec::new(
        deployment_id,
        TableKind::Pdq,
        params.clone(),
        public_key,
        shard_count,
        shard_salt,
    )
    .map_err(|e| e.to_string())?;
    let epoch = EpochInput {
        epoch,
        prev_manifest_hash,
        beacon,
    };
    Ok((spec, epoch))
}

/// Why the previous epoch's shards cannot be reused (every shard is rebuilt then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoReuse {
    /// build.json has no key digests for the previous epoch.
    NoDigests {
        /// The previous epoch.
        epoch: u32,
        /// The record's path.
        record: PathBuf,
    },
    /// A shard file is missing or unreadable.
    UnreadableShard(PathBuf),
}

impl std::fmt::Display for NoReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoReuse::NoDigests { epoch, record } => write!(
                f,
                "no key digests for epoch {epoch} in {}: every shard is rebuilt",
                record.display()
            ),
            NoReuse::UnreadableShard(path) => write!(
                f,
                "{} is missing or unreadable: every shard is rebuilt",
                path.display()
            ),
        }
    }
}

/// The previous epoch's shards as `build_table_after` can reuse them: the spec the manifest
/// describes, and per shard its file, manifest entry and recorded key digest.
pub fn previous_shards(
    dir: &TableDir,
    m: &Manifest,
) -> Result<Result<(TableSpec, Vec<PreviousShard>), NoReuse>, ServiceError> {
    let Some(t) = m.table(TableKind::Pdq) else {
        return Err(ServiceError::bad_file(
            &dir.manifest_path(),
            "the previous manifest has no PDQ table",
        ));
    };
    let digests = match dir.read_record() {
        Ok(r) if r.epoch == m.epoch() && r.shard_key_digests.len() == t.shards().len() => {
            r.shard_key_digests
        }
        _ => {
            return Ok(Err(NoReuse::NoDigests {
                epoch: m.epoch(),
                record: dir.record_path(),
            }))
        }
    };
    let mut shards = Vec::with_capacity(t.shards().len());
    for (i, (entry, digest)) in t.shards().iter().zip(&digests).enumerate() {
        let path = dir.shard_path(i);
        let shard = std::fs::read(&path)
            .ok()
            .and_then(|bytes| TableShard::decode(&bytes).ok());
        let Some(shard) = shard else {
            return Ok(Err(NoReuse::UnreadableShard(path)));
        };
        let key_digest = unhex32(digest).map_err(|e| {
            ServiceError::bad_file(&dir.record_path(), format!("shard_key_digests: {e}"))
        })?;
        shards.push(PreviousShard {
            shard,
            entry: *entry,
            key_digest,
        });
    }
    let spec = m
        .table_spec(TableKind::Pdq)
        .ok_or_else(|| ServiceError::bad_file(&dir.manifest_path(), "invalid PDQ table spec"))?;
    Ok(Ok((spec, shards)))
}

/// How to build the next epoch.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The parameter preset.
    pub preset: Preset,
    /// The policy.
    pub policy: Policy,
    /// The shard count (default: the previous epoch's, or one per [`KEYS_PER_SHARD`] keys).
    pub shards: Option<u16>,
    /// Shards built at once; the table does not depend on it.
    pub threads: usize,
    /// Days the manifest is valid for (1 to [`MAX_VALID_DAYS`]).
    pub valid_days: u64,
    /// A public beacon fixed after the list was frozen; default random.
    pub beacon: Option<[u8; 32]>,
}

/// What a build did.
#[derive(Debug)]
pub struct Published {
    /// The new manifest (written).
    pub manifest: Manifest,
    /// The build record (written).
    pub record: BuildRecord,
    /// Shards kept byte for byte from the previous epoch.
    pub kept: usize,
    /// Keys in the rebuilt shards.
    pub rebuilt_keys: u64,
    /// Time spent building shards.
    pub elapsed: Duration,
    /// Why the previous epoch's shards could not be reused, if they could not.
    pub no_reuse: Option<NoReuse>,
}

/// Builds the next epoch of the table in `dir` (or its first) from `key_set`, and writes it:
/// shards first, then the build record, the summary and the kept epoch manifest, and the
/// manifest last, so a directory with a new manifest has its shards. A kept shard's file is
/// left as it is, so mirrors and clients see it unchanged.
pub fn publish(
    dir: &TableDir,
    secret: &OpeningKey,
    key_set: &KeySet,
    consensus: &ConsensusSpec,
    options: &BuildOptions,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<Published, ServiceError> {
    if key_set.keys.is_empty() {
        return Err(ServiceError::EmptyKeySet {
            banks: key_set.banks.len(),
        });
    }
    if !(1..=MAX_VALID_DAYS).contains(&options.valid_days) {
        return Err(ServiceError::Invalid(format!(
            "the validity window must be 1 to {MAX_VALID_DAYS} days"
        )));
    }
    let params = options.preset.params(options.policy);
    std::fs::create_dir_all(dir.path()).map_err(ServiceError::io("cannot create", dir.path()))?;
    let previous = dir.read_manifest()?;
    let shard_count = match options.shards {
        Some(0) => {
            return Err(ServiceError::Invalid(
                "the shard count must be at least 1".into(),
            ))
        }
        Some(s) => s,
        // A deployment keeps its shard count: the next epoch takes the previous one's.
        None => match previous.as_ref().and_then(|m| m.table(TableKind::Pdq)) {
            Some(t) => t.shard_count(),
            None => u16::try_from(key_set.keys.len().div_ceil(KEYS_PER_SHARD).max(1))
                .unwrap_or(u16::MAX),
        },
    };
    let (spec, epoch_input) = next_epoch(
        previous.as_ref(),
        &params,
        secret.public_key(),
        shard_count,
        options.beacon,
        rng,
    )
    .map_err(|reason| ServiceError::Chain {
        dir: dir.path().to_path_buf(),
        reason,
    })?;
    let epoch = epoch_input.epoch;
    let (reusable, no_reuse) = match &previous {
        Some(m) => match previous_shards(dir, m)? {
            Ok(r) => (Some(r), None),
            Err(why) => (None, Some(why)),
        },
        None => (None, None),
    };
    let started = Instant::now();
    let built = build_table_after(
        &spec,
        secret,
        &key_set.keys,
        &epoch_input,
        reusable.as_ref().map(|(s, p)| (s, &p[..])),
        options.threads,
        rng,
    )?;
    let elapsed = started.elapsed();
    let created_at = now();
    let not_after = options
        .valid_days
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|window| created_at.checked_add(window))
        .ok_or_else(|| {
            ServiceError::Invalid("the validity window reaches past the end of time".into())
        })?;
    let manifest = Manifest::for_table(&built, &epoch_input, created_at, not_after)?;
    let (mut kept, mut rebuilt_keys) = (0usize, 0u64);
    for (i, s) in built.shards.iter().enumerate() {
        let unchanged = reusable
            .as_ref()
            .and_then(|(_, p)| p.get(i))
            .is_some_and(|p| p.entry == s.entry);
        if unchanged {
            kept += 1;
            continue;
        }
        rebuilt_keys += u64::from(s.entry.n_keys);
        let path = dir.shard_path(i);
        std::fs::write(&path, s.shard.encode()).map_err(ServiceError::io("cannot write", &path))?;
    }
    let record = BuildRecord {
        format: BUILD_RECORD_FORMAT,
        banks: key_set.banks.clone(),
        min_organisations: consensus.min_organisations,
        min_jurisdictions: consensus.min_jurisdictions,
        distance: consensus.distance,
        params: options.preset,
        policy: options.policy,
        epoch,
        consensus_values: key_set.consensus_values,
        distinct_keys: key_set.distinct,
        pruned_keys: key_set.pruned,
        pruned_related: key_set.pruned_related,
        pruned_unrelated: key_set.pruned_unrelated,
        kept_close: key_set.kept_close,
        pruned_histogram: key_set.pruned_histogram.to_vec(),
        keys: built.n_keys(),
        shards: shard_count,
        created_at,
        shard_key_digests: built.shards.iter().map(|s| hex(&s.key_digest())).collect(),
        valid_days: Some(options.valid_days),
    };
    let write = |path: PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(ServiceError::io("cannot write", &path))
    };
    let record_json = serde_json::to_string_pretty(&record)
        .map_err(|e| ServiceError::Invalid(format!("cannot encode the build record: {e}")))?;
    write(dir.record_path(), (record_json + "\n").as_bytes())?;
    write(dir.summary_path(), manifest.to_string().as_bytes())?;
    // Every epoch's manifest is kept, so that verification can walk the chain back to epoch 1.
    write(dir.epoch_manifest_path(epoch), &manifest.encode())?;
    write(dir.manifest_path(), &manifest.encode())?;
    Ok(Published {
        manifest,
        record,
        kept,
        rebuilt_keys,
        elapsed,
        no_reuse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_records_name_parameters_by_the_protocol_names() {
        let record = BuildRecord {
            format: BUILD_RECORD_FORMAT,
            banks: vec!["a".into()],
            min_organisations: 2,
            min_jurisdictions: 2,
            distance: 10,
            params: Preset::Lite,
            policy: Policy::Silent,
            epoch: 3,
            consensus_values: 5,
            distinct_keys: 5,
            pruned_keys: 1,
            pruned_related: 1,
            pruned_unrelated: 0,
            kept_close: 0,
            pruned_histogram: vec![1, 0, 0, 0, 0, 0],
            keys: 4,
            shards: 1,
            created_at: 100,
            shard_key_digests: vec![],
            valid_days: Some(30),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["params"], "lite");
        assert_eq!(json["policy"], "silent");
        let back: BuildRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.protocol_params(), Params::lite(Policy::Silent));
        let mut unknown = json;
        unknown["params"] = "v9".into();
        let err = serde_json::from_value::<BuildRecord>(unknown).unwrap_err();
        assert!(
            err.to_string().contains("unknown parameter preset \"v9\""),
            "{err}"
        );
    }

    #[test]
    fn opening_key_files_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let (key, created) = opening_key(&path, &mut rng).unwrap();
        assert!(created);
        let (again, created) = opening_key(&path, &mut rng).unwrap();
        assert!(!created);
        assert_eq!(again.public_key(), key.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex\n").unwrap();
        assert!(matches!(
            read_opening_key(&path),
            Err(ServiceError::BadFile { .. })
        ));
    }
}
