//! The protocol's key set K from the consensus view of the PDQ block banks (protocol.md 3.5
//! steps 1-2): the view's values, their keys, and the keys kept after separation.

use hashguard_hashlist::{consensus, BankEntries, BankKind, ConsensusParams, SignalType};
use hashguard_protocol::keys::{separate_related_with_threads, KeyBytes};
use hashguard_protocol::params::Params;
use hashguard_store::{LoadedBank, Store};

use crate::ServiceError;

/// Which banks form the consensus view, and the rule: values supported by at least N
/// organisations in at least M jurisdictions, support meaning a hash within distance d.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusSpec {
    /// Only these PDQ block banks (empty: every enabled one).
    pub banks: Vec<String>,
    /// N: minimum number of supporting organisations.
    pub min_organisations: usize,
    /// M: minimum number of supporting jurisdictions.
    pub min_jurisdictions: usize,
    /// d: distance within which two organisations support the same item.
    pub distance: u32,
}

/// The key set K of a table, and how it was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// The banks it came from, in load order.
    pub banks: Vec<String>,
    /// Values in the consensus view.
    pub consensus_values: usize,
    /// Distinct keys of those values.
    pub distinct: usize,
    /// The keys kept after separation: K.
    pub keys: Vec<KeyBytes>,
    /// Keys dropped for separation.
    pub pruned: usize,
    /// Of those, keys of entries related (PDQ ≤ 31) to a kept key's entry (protocol-review m2).
    pub pruned_related: usize,
    /// Of those, keys of unrelated entries: distinct pictures that cannot open for their copies.
    pub pruned_unrelated: usize,
    /// Kept keys closer than sep to another kept key (related entries kept catchable under
    /// `intervene`, keys.rs `separate_related`).
    pub kept_close: usize,
    /// Pruned keys by PDQ distance to the nearest close kept entry
    /// (`keys::PRUNED_DISTANCE_BUCKETS`).
    pub pruned_histogram: [usize; 6],
}

/// K from banks already loaded (each with its live entries). The key separation's near-key
/// lookups run on up to `threads` threads; K does not depend on it.
pub fn key_set(
    loaded: &[LoadedBank],
    spec: &ConsensusSpec,
    params: &Params,
    threads: usize,
) -> Result<KeySet, ServiceError> {
    let pdq = |l: &&LoadedBank| l.bank.signal_type() == SignalType::Pdq && l.bank.enabled();
    for name in &spec.banks {
        if !loaded
            .iter()
            .filter(pdq)
            .any(|l| l.bank.name().as_str() == name)
        {
            return Err(ServiceError::NoSuchBank(name.clone()));
        }
    }
    let chosen: Vec<&LoadedBank> = loaded
        .iter()
        .filter(pdq)
        .filter(|l| l.bank.kind() == BankKind::Block)
        .filter(|l| spec.banks.is_empty() || spec.banks.iter().any(|n| n == l.bank.name().as_str()))
        .collect();
    let names = chosen.iter().map(|l| l.bank.name().to_string()).collect();
    let banks: Vec<BankEntries<'_>> = chosen.iter().copied().map(BankEntries::from).collect();
    let rule = ConsensusParams::new(
        spec.min_organisations,
        spec.min_jurisdictions,
        spec.distance,
    )
    .map_err(|e| ServiceError::Consensus(e.to_string()))?;
    let view = consensus(SignalType::Pdq, &banks, &rule);
    let hashes: Vec<_> = view
        .iter()
        .filter_map(|c| c.value.as_pdq())
        .copied()
        .collect();
    let pruned = separate_related_with_threads(&hashes, params, threads);
    let distinct = pruned.kept.len() + pruned.removed();
    let kept = pruned
        .kept
        .iter()
        .map(|&k| KeyBytes::from_pdq_key(k, params.k()))
        .collect();
    Ok(KeySet {
        banks: names,
        consensus_values: view.len(),
        distinct,
        keys: kept,
        pruned: pruned.removed(),
        pruned_related: pruned.pruned_related.len(),
        pruned_unrelated: pruned.pruned_unrelated.len(),
        kept_close: pruned.kept_close,
        pruned_histogram: pruned.pruned_histogram,
    })
}

/// K from the store's enabled PDQ banks ([`key_set`]).
pub async fn load_key_set(
    store: &Store,
    spec: &ConsensusSpec,
    params: &Params,
    threads: usize,
) -> Result<KeySet, ServiceError> {
    let loaded = store.load_enabled(Some(SignalType::Pdq)).await?;
    key_set(&loaded, spec, params, threads)
}
