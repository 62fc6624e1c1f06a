//! The device's MLS side over OpenMLS 0.9: one ciphersuite, basic credentials naming
//! `account:device`, welcomes that carry the ratchet tree (no separate tree fetch), and the
//! storage kept in OpenMLS's memory store and snapshotted whole into `state.json`.
//!
//! Why a snapshot of the memory store and not OpenMLS's SQLite store: `openmls_sqlite_storage`
//! links rusqlite's bundled SQLite (libsqlite3-sys 0.35), which cannot be linked next to the
//! workspace's sqlx (libsqlite3-sys 0.30; Cargo allows one crate per native library). A
//! device's MLS state is small (kilobytes per group), so one file replaced atomically is the
//! simplest robust store, and it makes the MLS state and the queue position one commit point.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, GroupId, KeyPackage, KeyPackageIn, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProcessedMessageContent, ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::MessengerError;

/// X25519, AES-128-GCM, SHA-256, Ed25519: MLS's mandatory-to-implement suite.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

#[derive(Default)]
struct Provider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &MemoryStorage {
        &self.storage
    }

    fn crypto(&self) -> &RustCrypto {
        &self.crypto
    }

    fn rand(&self) -> &RustCrypto {
        &self.crypto
    }
}

/// A commit adding members, ready to post as one bundle.
pub struct AddBundle {
    /// The epoch the commit was made in.
    pub epoch: u64,
    pub commit: Vec<u8>,
    pub welcome: Vec<u8>,
    pub group_info: Option<Vec<u8>>,
}

/// What an incoming handshake or application message came to.
pub enum Processed {
    Commit { removed: bool, members: Vec<String> },
    Application { from: String, plaintext: Vec<u8> },
    Other,
}

pub struct Mls {
    provider: Provider,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

fn mls_err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> MessengerError + '_ {
    move |e| MessengerError::Mls(format!("{context}: {e}"))
}

fn group_id(id: &str) -> Result<GroupId, MessengerError> {
    let bytes = hex::decode(id)
        .map_err(|_| MessengerError::Protocol(format!("{id:?} is not a group id")))?;
    Ok(GroupId::from_slice(&bytes))
}

fn identity_text(credential: &openmls::prelude::Credential) -> Option<String> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    String::from_utf8(basic.identity().to_vec()).ok()
}

fn account_of(identity: &str) -> String {
    identity
        .split_once(':')
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| identity.to_string())
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .build()
}

impl Mls {
    /// A new signature key for `identity`, stored in a fresh storage.
    pub fn generate(identity: &str) -> Result<Mls, MessengerError> {
        let provider = Provider::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .map_err(|e| mls_err("signature key")(&format!("{e:?}")))?;
        signer
            .store(provider.storage())
            .map_err(|e| mls_err("storing the signature key")(&e))?;
        Ok(Mls::with(provider, signer, identity))
    }

    fn with(provider: Provider, signer: SignatureKeyPair, identity: &str) -> Mls {
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Mls {
            provider,
            signer,
            credential,
        }
    }

    /// The storage saved by [`Mls::snapshot`], with the signature key whose public half is
    /// `public`.
    pub fn restore(
        entries: &[(String, String)],
        public: &[u8],
        identity: &str,
    ) -> Result<Mls, MessengerError> {
        let provider = Provider::default();
        {
            let mut values = provider
                .storage
                .values
                .write()
                .map_err(|_| MessengerError::Mls("the storage lock is poisoned".into()))?;
            for (k, v) in entries {
                let decode = |s: &str| {
                    B64.decode(s)
                        .map_err(|_| MessengerError::Corrupt("an MLS entry is not base64".into()))
                };
                values.insert(decode(k)?, decode(v)?);
            }
        }
        let signer = SignatureKeyPair::read(
            provider.storage(),
            public,
            CIPHERSUITE.signature_algorithm(),
        )
        .ok_or_else(|| {
            MessengerError::Corrupt("the signature key is missing from the state".into())
        })?;
        Ok(Mls::with(provider, signer, identity))
    }

    pub fn signature_public(&self) -> &[u8] {
        self.signer.public()
    }

    /// The whole storage as base64 pairs, in key order (so equal states write equal files).
    pub fn snapshot(&self) -> Result<Vec<(String, String)>, MessengerError> {
        let values = self
            .provider
            .storage
            .values
            .read()
            .map_err(|_| MessengerError::Mls("the storage lock is poisoned".into()))?;
        let mut entries: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (B64.encode(k), B64.encode(v)))
            .collect();
        entries.sort();
        Ok(entries)
    }

    /// `count` new key packages (their private keys stay in the storage), serialized.
    pub fn key_packages(&self, count: usize) -> Result<Vec<Vec<u8>>, MessengerError> {
        (0..count)
            .map(|_| {
                let bundle = KeyPackage::builder()
                    .build(
                        CIPHERSUITE,
                        &self.provider,
                        &self.signer,
                        self.credential.clone(),
                    )
                    .map_err(|e| mls_err("key package")(&e))?;
                bundle
                    .key_package()
                    .tls_serialize_detached()
                    .map_err(|e| mls_err("key package")(&e))
            })
            .collect()
    }

    /// A key package the service handed out for `expected` (`account:device`): valid, of
    /// our ciphersuite, and naming that device (the service could otherwise slip in
    /// someone else).
    pub fn verify_key_package(
        &self,
        bytes: &[u8],
        expected: &str,
    ) -> Result<KeyPackage, MessengerError> {
        let package = KeyPackageIn::tls_deserialize_exact(bytes)
            .map_err(|e| mls_err("a claimed key package is malformed")(&e))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| mls_err("a claimed key package is invalid")(&e))?;
        if package.ciphersuite() != CIPHERSUITE {
            return Err(MessengerError::Mls(
                "a claimed key package uses another ciphersuite".into(),
            ));
        }
        let named = identity_text(package.leaf_node().credential());
        if named.as_deref() != Some(expected) {
            return Err(MessengerError::Protocol(format!(
                "the service handed out a key package of {} for device {expected}: not adding it",
                named.unwrap_or_else(|| "an unknown credential".into())
            )));
        }
        Ok(package)
    }

    pub fn create_group(&self, id: &str) -> Result<(), MessengerError> {
        MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &create_config(),
            group_id(id)?,
            self.credential.clone(),
        )
        .map_err(|e| mls_err("creating the group")(&e))?;
        Ok(())
    }

    fn load(&self, id: &str) -> Result<MlsGroup, MessengerError> {
        MlsGroup::load(self.provider.storage(), &group_id(id)?)
            .map_err(|e| mls_err("loading the group")(&e))?
            .ok_or_else(|| MessengerError::Protocol("this device is not in that group".into()))
    }

    /// `account:device` of every member.
    pub fn member_identities(&self, id: &str) -> Result<Vec<String>, MessengerError> {
        let group = self.load(id)?;
        Ok(group
            .members()
            .filter_map(|m| identity_text(&m.credential))
            .collect())
    }

    /// The accounts in the group.
    pub fn members(&self, id: &str) -> Result<Vec<String>, MessengerError> {
        let mut accounts: Vec<String> = self
            .member_identities(id)?
            .iter()
            .map(|i| account_of(i))
            .collect();
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }

    pub fn add_members(
        &self,
        id: &str,
        packages: &[KeyPackage],
    ) -> Result<AddBundle, MessengerError> {
        let mut group = self.load(id)?;
        let epoch = group.epoch().as_u64();
        let (commit, welcome, group_info) = group
            .add_members(&self.provider, &self.signer, packages)
            .map_err(|e| mls_err("adding members")(&e))?;
        let ser = |m: &MlsMessageOut| {
            m.tls_serialize_detached()
                .map_err(|e| mls_err("serializing")(&e))
        };
        Ok(AddBundle {
            epoch,
            commit: ser(&commit)?,
            welcome: ser(&welcome)?,
            group_info: group_info
                .map(|g| ser(&MlsMessageOut::from(g)))
                .transpose()?,
        })
    }

    /// The epoch of the group's pending commit, if one is pending.
    pub fn pending_epoch(&self, id: &str) -> Result<Option<u64>, MessengerError> {
        let group = self.load(id)?;
        Ok(group.pending_commit().map(|_| group.epoch().as_u64()))
    }

    pub fn merge_pending(&self, id: &str) -> Result<(), MessengerError> {
        let mut group = self.load(id)?;
        group
            .merge_pending_commit(&self.provider)
            .map_err(|e| mls_err("merging our commit")(&e))
    }

    pub fn clear_pending(&self, id: &str) -> Result<(), MessengerError> {
        let mut group = self.load(id)?;
        group
            .clear_pending_commit(self.provider.storage())
            .map_err(|e| mls_err("dropping our commit")(&e))
    }

    /// An application message for the group's current epoch.
    pub fn encrypt(&self, id: &str, plaintext: &[u8]) -> Result<(u64, Vec<u8>), MessengerError> {
        let mut group = self.load(id)?;
        if !group.is_active() {
            return Err(MessengerError::Protocol(
                "you were removed from this group".into(),
            ));
        }
        let message = group
            .create_message(&self.provider, &self.signer, plaintext)
            .map_err(|e| mls_err("encrypting")(&e))?;
        let bytes = message
            .tls_serialize_detached()
            .map_err(|e| mls_err("serializing")(&e))?;
        Ok((group.epoch().as_u64(), bytes))
    }

    /// Joins the group a welcome is for; returns its id (hex).
    pub fn join(&self, bytes: &[u8]) -> Result<String, MessengerError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|e| mls_err("a malformed welcome")(&e))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(MessengerError::Mls(
                "a welcome entry that is no welcome".into(),
            ));
        };
        let group = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .map_err(|e| mls_err("a welcome this device cannot use")(&e))?
            .into_group(&self.provider)
            .map_err(|e| mls_err("joining")(&e))?;
        Ok(hex::encode(group.group_id().as_slice()))
    }

    /// Processes a commit or an application message of the group `id`.
    pub fn process(&self, id: &str, bytes: &[u8]) -> Result<Processed, MessengerError> {
        let mut group = self.load(id)?;
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|e| mls_err("a malformed message")(&e))?
            .try_into_protocol_message()
            .map_err(|e| mls_err("not a group message")(&e))?;
        if message.group_id() != group.group_id() {
            return Err(MessengerError::Protocol(
                "a message of another group in this group's queue entry".into(),
            ));
        }
        let processed = group
            .process_message(&self.provider, message)
            .map_err(|e| mls_err("cannot decrypt")(&e))?;
        let from = identity_text(processed.credential())
            .map(|i| account_of(&i))
            .unwrap_or_else(|| "an unknown sender".into());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => Ok(Processed::Application {
                from,
                plaintext: m.into_bytes(),
            }),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                group
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(|e| mls_err("applying a commit")(&e))?;
                let members = if removed {
                    Vec::new()
                } else {
                    self.members(id)?
                };
                Ok(Processed::Commit { removed, members })
            }
            _ => Ok(Processed::Other),
        }
    }
}
