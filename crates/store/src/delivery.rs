//! MLS delivery (migration `0007_delivery.sql`): key packages claimed exactly once, groups
//! whose epoch only an accepted commit moves (compare-and-swap), and per-device queues with
//! acknowledgement. The store never parses MLS; it keeps opaque bytes, who is in which group,
//! and who gets what.
//!
//! Every write that depends on what it read is one transaction that locks first: on SQLite the
//! `BEGIN IMMEDIATE` write lock, on PostgreSQL the group's row (`FOR UPDATE` for a commit, `FOR
//! SHARE` for a message, so messages to one group run side by side but never beside a commit)
//! and each recipient device's row (the UPDATE of its queue counter). Device rows are always
//! locked in ascending id order, so two deliveries never wait for each other in a cycle.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::banks::begin_write;
use crate::error::{busy_or, corrupt, StoreError};
use crate::pool::{on_conn, Conn};
use crate::rows::hex;
use crate::state::{from_db, hex_vec, is_unique_violation, parse_col, to_db, AccountId, DeviceId};
use crate::{Backend, Store};

/// The most key packages a device may hold unclaimed.
pub const MAX_KEY_PACKAGES_PER_DEVICE: u64 = 1_000;
/// The longest MLS group id, in bytes.
pub const MAX_GROUP_ID_BYTES: usize = 64;

/// An MLS group id: the 1 to 64 bytes the client chose. Its text form is lowercase hex, which
/// is also how the database stores it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(Vec<u8>);

/// The error of a group id that is empty, longer than [`MAX_GROUP_ID_BYTES`], or (as text) not
/// lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdError;

impl fmt::Display for GroupIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a group id is 1 to {MAX_GROUP_ID_BYTES} bytes (2 to {} hex digits)",
            2 * MAX_GROUP_ID_BYTES
        )
    }
}

impl std::error::Error for GroupIdError {}

impl GroupId {
    /// The group id of these bytes, or [`GroupIdError`] if there are none or more than
    /// [`MAX_GROUP_ID_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<GroupId, GroupIdError> {
        if bytes.is_empty() || bytes.len() > MAX_GROUP_ID_BYTES {
            return Err(GroupIdError);
        }
        Ok(GroupId(bytes))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({self})")
    }
}

impl FromStr for GroupId {
    type Err = GroupIdError;

    /// Lowercase hex only: the database compares ids as text, so one id has one spelling.
    fn from_str(text: &str) -> Result<GroupId, GroupIdError> {
        GroupId::new(hex_vec(text).ok_or(GroupIdError)?)
    }
}

/// What a queue entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    /// A commit of the group the recipient was a member of.
    Commit,
    /// A welcome into a group the recipient was added to.
    Welcome,
    /// An application message.
    Application,
}

impl DeliveryKind {
    /// The text the database stores and the API shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Commit => "commit",
            DeliveryKind::Welcome => "welcome",
            DeliveryKind::Application => "application",
        }
    }
}

impl fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryKind {
    type Err = String;

    fn from_str(text: &str) -> Result<DeliveryKind, String> {
        match text {
            "commit" => Ok(DeliveryKind::Commit),
            "welcome" => Ok(DeliveryKind::Welcome),
            "application" => Ok(DeliveryKind::Application),
            other => Err(format!(
                "not a delivery kind: {:?}",
                other.chars().take(20).collect::<String>()
            )),
        }
    }
}

/// One entry of a device's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its number in the device's queue (from 1, increasing, never reused).
    pub seq: u64,
    /// What it is.
    pub kind: DeliveryKind,
    /// The group.
    pub group: GroupId,
    /// The epoch it belongs to: a commit's old epoch, a welcome's new one, an application
    /// message's.
    pub epoch: u64,
    /// The device that sent it.
    pub sender: DeviceId,
    /// The MLS message, as sent.
    pub body: Vec<u8>,
    /// When the server accepted it (Unix seconds).
    pub received_at: i64,
}

/// The answer of [`Store::publish_key_packages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPackagesPublished {
    /// Stored; the device now holds this many unclaimed.
    Published {
        /// Unclaimed key packages of the device.
        available: u64,
    },
    /// Nothing stored: the device would hold more than [`MAX_KEY_PACKAGES_PER_DEVICE`].
    TooMany {
        /// Unclaimed key packages of the device (unchanged).
        available: u64,
    },
    /// Nothing stored: the device is revoked (or unknown).
    Revoked,
}

/// The key packages of one account's devices, one each, claimed by
/// [`Store::claim_key_packages`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimedKeyPackages {
    /// One key package per active device that had one, in device order.
    pub key_packages: Vec<(DeviceId, Vec<u8>)>,
    /// The active devices that had none left.
    pub exhausted: Vec<DeviceId>,
}

/// A group as its members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The current epoch.
    pub epoch: u64,
    /// The member devices, in id order (revoked ones included: they stay in the MLS group
    /// until a commit removes them).
    pub members: Vec<DeviceId>,
    /// The group info the last commit carried, if it carried one.
    pub group_info: Option<Vec<u8>>,
}

/// A commit with what goes with it, accepted or refused as one (the atomic bundle).
#[derive(Debug, Clone, Copy)]
pub struct CommitBundle<'a> {
    /// The group.
    pub group: &'a GroupId,
    /// The committing device.
    pub sender: DeviceId,
    /// The epoch the commit was made in: it must be the group's current one.
    pub epoch: u64,
    /// The MLS commit, for every member of the old epoch but the sender.
    pub commit: &'a [u8],
    /// The MLS welcome, for every added device: present exactly when devices are added.
    pub welcome: Option<&'a [u8]>,
    /// The group info of the new epoch, if the client publishes one.
    pub group_info: Option<&'a [u8]>,
    /// Devices the commit adds: active, and not members.
    pub added: &'a [DeviceId],
    /// Devices the commit removes: members, and not the sender.
    pub removed: &'a [DeviceId],
    /// Now (Unix seconds).
    pub now: i64,
}

/// Why a commit's membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitRefusal {
    /// A device is named twice among the added and removed ones.
    Repeated(DeviceId),
    /// The commit removes its own sender (MLS forbids it: another member removes it).
    RemovesSender,
    /// Devices are added without a welcome, or a welcome comes without added devices.
    WelcomeMismatch {
        /// Whether devices were added.
        added: bool,
    },
    /// An added device is unknown or revoked.
    NotActive(DeviceId),
    /// An added device is a member already.
    AlreadyMember(DeviceId),
    /// A removed device is not a member.
    NotAMember(DeviceId),
}

impl CommitRefusal {
    /// Whether the refusal depends on the server's state (the group's members, the devices'
    /// revocations) rather than on the request alone.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            CommitRefusal::NotActive(_)
                | CommitRefusal::AlreadyMember(_)
                | CommitRefusal::NotAMember(_)
        )
    }
}

impl fmt::Display for CommitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitRefusal::Repeated(d) => write!(
                f,
                "device {d} is named more than once in added_devices and removed_devices"
            ),
            CommitRefusal::RemovesSender => f.write_str(
                "removed_devices names the committing device; another member must remove it",
            ),
            CommitRefusal::WelcomeMismatch { added: true } => {
                f.write_str("added_devices is not empty, so the welcome is required")
            }
            CommitRefusal::WelcomeMismatch { added: false } => {
                f.write_str("a welcome is only sent with added_devices")
            }
            CommitRefusal::NotActive(d) => {
                write!(f, "added device {d} is unknown or revoked")
            }
            CommitRefusal::AlreadyMember(d) => {
                write!(f, "added device {d} is a member of the group already")
            }
            CommitRefusal::NotAMember(d) => {
                write!(f, "removed device {d} is not a member of the group")
            }
        }
    }
}

/// The answer of [`Store::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Accepted: the group is at this epoch now.
    Accepted {
        /// The new epoch.
        epoch: u64,
    },
    /// No such group, or the sender is not a member (the same answer, so a non-member learns
    /// nothing about the group).
    NotMember,
    /// The group is at another epoch: another commit won. Nothing was written.
    Stale {
        /// The group's epoch.
        current_epoch: u64,
    },
    /// The membership change is refused. Nothing was written.
    Refused(CommitRefusal),
}

/// The answer of [`Store::send_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Enqueued for this many devices.
    Sent {
        /// The recipients: every active member but the sender.
        recipients: u64,
    },
    /// No such group, or the sender is not a member.
    NotMember,
    /// The group is at another epoch. Nothing was written.
    Stale {
        /// The group's epoch.
        current_epoch: u64,
    },
}

/// One message to put in queues: everything but the recipient and its seq.
struct Outgoing<'a> {
    kind: DeliveryKind,
    group: &'a GroupId,
    epoch: i64,
    sender: &'a DeviceId,
    body: &'a str,
    size: i64,
    now: i64,
}

const QUEUE_TABLE: &str = "mls_queue";

impl Store {
    /// Stores key packages of `device` for others to claim, all or none: none when the device
    /// would then hold more than [`MAX_KEY_PACKAGES_PER_DEVICE`] unclaimed, or is revoked.
    pub async fn publish_key_packages(
        &self,
        device: &DeviceId,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<KeyPackagesPublished, StoreError> {
        let count = to_db(key_packages.len() as u64, "key package count")?;
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        // Locks the device's row: concurrent publishers of one device take turns, so the
        // count below stays true until the commit.
        let updated = on_conn!(&mut conn, |c| sqlx::query(
            "UPDATE devices SET mls_key_package_seq = mls_key_package_seq + $2 \
             WHERE id = $1 AND revoked_at IS NULL"
        )
        .bind(device.to_string())
        .bind(count)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        if updated == 0 {
            return Ok(KeyPackagesPublished::Revoked);
        }
        let (last, held): (i64, i64) = on_conn!(&mut conn, |c| sqlx::query_as(
            "SELECT mls_key_package_seq, \
             (SELECT COUNT(*) FROM mls_key_packages WHERE device = $1) \
             FROM devices WHERE id = $1"
        )
        .bind(device.to_string())
        .fetch_one(&mut *c)
        .await?);
        let available = from_db("mls_key_packages", held)?;
        if available + key_packages.len() as u64 > MAX_KEY_PACKAGES_PER_DEVICE {
            tx.rollback().await?;
            return Ok(KeyPackagesPublished::TooMany { available });
        }
        for (i, kp) in key_packages.iter().enumerate() {
            let seq = last - count + 1 + i as i64;
            on_conn!(&mut conn, |c| sqlx::query(
                "INSERT INTO mls_key_packages (device, seq, key_package, created_at) \
                 VALUES ($1, $2, $3, $4)"
            )
            .bind(device.to_string())
            .bind(seq)
            .bind(STANDARD.encode(kp))
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        }
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(KeyPackagesPublished::Published {
            available: available + key_packages.len() as u64,
        })
    }

    /// How many unclaimed key packages `device` holds.
    pub async fn key_packages_available(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM mls_key_packages WHERE device = $1"
        )
        .bind(device.to_string())
        .fetch_one(&mut *c)
        .await?);
        from_db("mls_key_packages", n)
    }

    /// Claims one key package of each active device of `account`, deleting it in the same
    /// transaction: two claimers never get the same one. `None` if there is no such account.
    pub async fn claim_key_packages(
        &self,
        account: &AccountId,
    ) -> Result<Option<ClaimedKeyPackages>, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let exists: Option<String> = on_conn!(&mut conn, |c| sqlx::query_scalar(
            "SELECT id FROM accounts WHERE id = $1"
        )
        .bind(account.to_string())
        .fetch_optional(&mut *c)
        .await?);
        if exists.is_none() {
            return Ok(None);
        }
        let ids: Vec<String> = on_conn!(&mut conn, |c| sqlx::query_scalar(
            "SELECT id FROM devices WHERE account = $1 AND revoked_at IS NULL"
        )
        .bind(account.to_string())
        .fetch_all(&mut *c)
        .await?);
        let mut devices = ids
            .iter()
            .map(|id| parse_col::<DeviceId>("devices", id))
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort();
        let mut claimed = ClaimedKeyPackages::default();
        for device in devices {
            // The device's row lock makes claims of one device take turns (PostgreSQL; SQLite
            // holds the write lock already): the oldest key package goes to exactly one.
            if !lock_active_device(self, &mut conn, &device).await? {
                continue;
            }
            let oldest: Option<(i64, String)> = on_conn!(&mut conn, |c| sqlx::query_as(
                "SELECT seq, key_package FROM mls_key_packages WHERE device = $1 \
                 ORDER BY seq LIMIT 1"
            )
            .bind(device.to_string())
            .fetch_optional(&mut *c)
            .await?);
            let Some((seq, text)) = oldest else {
                claimed.exhausted.push(device);
                continue;
            };
            let deleted = on_conn!(&mut conn, |c| sqlx::query(
                "DELETE FROM mls_key_packages WHERE device = $1 AND seq = $2"
            )
            .bind(device.to_string())
            .bind(seq)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| self.write_error(e))?;
            if deleted != 1 {
                return Err(corrupt(
                    "mls_key_packages",
                    format!("a locked key package of device {device} vanished"),
                ));
            }
            let bytes = STANDARD
                .decode(&text)
                .map_err(|e| corrupt("mls_key_packages", e))?;
            claimed.key_packages.push((device, bytes));
        }
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(Some(claimed))
    }

    /// Creates a group at epoch 0 whose only member is `device`. Fails with
    /// [`StoreError::Duplicate`] if the id is taken.
    pub async fn create_group(
        &self,
        group: &GroupId,
        device: &DeviceId,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let created = on_conn!(&mut conn, |c| {
            sqlx::query(
            "INSERT INTO mls_groups (id, epoch, group_info, created_by, created_at, updated_at) \
             VALUES ($1, 0, NULL, $2, $3, $3)"
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ())
        });
        match created {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate {
                    table: "mls_groups",
                    key: "id",
                })
            }
            Err(e) => return Err(self.write_error(e)),
        }
        on_conn!(&mut conn, |c| sqlx::query(
            "INSERT INTO mls_members (group_id, device, since) VALUES ($1, $2, 0)"
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))?;
        tx.commit().await.map_err(|e| self.write_error(e))
    }

    /// The group as `device` sees it, if it is a member (`None` otherwise, and for a group
    /// that does not exist).
    pub async fn group(
        &self,
        group: &GroupId,
        device: &DeviceId,
    ) -> Result<Option<GroupView>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        // One statement, so the epoch and the members are of one moment.
        let rows: Vec<(i64, Option<String>, String)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT g.epoch, g.group_info, m.device FROM mls_groups g \
                 JOIN mls_members m ON m.group_id = g.id WHERE g.id = $1"
            )
            .bind(group.to_string())
            .fetch_all(&mut *c)
            .await?);
        let Some((epoch, group_info, _)) = rows.first() else {
            return Ok(None);
        };
        let mut members = rows
            .iter()
            .map(|(_, _, d)| parse_col::<DeviceId>("mls_members", d))
            .collect::<Result<Vec<_>, _>>()?;
        if !members.contains(device) {
            return Ok(None);
        }
        members.sort();
        Ok(Some(GroupView {
            epoch: from_db("mls_groups", *epoch)?,
            members,
            group_info: group_info
                .as_deref()
                .map(|t| STANDARD.decode(t).map_err(|e| corrupt("mls_groups", e)))
                .transpose()?,
        }))
    }

    /// Accepts `bundle` if its sender is a member and its epoch is the group's current one, in
    /// one transaction: the epoch moves on by one, the members change, the commit is queued
    /// for every member of the old epoch but the sender (removed ones included, so they learn
    /// they are out; revoked ones excepted), the welcome for every added device, and the group
    /// info replaces the last one. Anything else writes nothing.
    pub async fn commit(&self, bundle: &CommitBundle<'_>) -> Result<CommitOutcome, StoreError> {
        if let Some(refusal) = structural_refusal(bundle) {
            return Ok(CommitOutcome::Refused(refusal));
        }
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let Some(epoch) = lock_group(self, &mut conn, bundle.group, true).await? else {
            return Ok(CommitOutcome::NotMember);
        };
        let members = members_of(&mut conn, bundle.group).await?;
        if !members.contains(&bundle.sender) {
            return Ok(CommitOutcome::NotMember);
        }
        if epoch != bundle.epoch {
            return Ok(CommitOutcome::Stale {
                current_epoch: epoch,
            });
        }
        let refusal = bundle
            .removed
            .iter()
            .find(|d| !members.contains(d))
            .map(|d| CommitRefusal::NotAMember(*d))
            .or_else(|| {
                bundle
                    .added
                    .iter()
                    .find(|d| members.contains(d))
                    .map(|d| CommitRefusal::AlreadyMember(*d))
            });
        let refusal = match refusal {
            Some(r) => Some(r),
            None => first_inactive(&mut conn, bundle.added).await?,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await?;
            return Ok(CommitOutcome::Refused(refusal));
        }
        let old = to_db(epoch, "epoch")?;
        let new = old
            .checked_add(1)
            .ok_or(StoreError::OutOfRange { what: "epoch" })?;
        let moved = on_conn!(&mut conn, |c| sqlx::query(
            "UPDATE mls_groups SET epoch = $2, group_info = $3, updated_at = $4 \
             WHERE id = $1 AND epoch = $5"
        )
        .bind(bundle.group.to_string())
        .bind(new)
        .bind(bundle.group_info.map(|g| STANDARD.encode(g)))
        .bind(bundle.now)
        .bind(old)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        if moved != 1 {
            // The row is locked and was read at `old`: only a bug gets here.
            return Err(corrupt("mls_groups", "a locked group's epoch moved"));
        }
        for device in bundle.removed {
            on_conn!(&mut conn, |c| sqlx::query(
                "DELETE FROM mls_members WHERE group_id = $1 AND device = $2"
            )
            .bind(bundle.group.to_string())
            .bind(device.to_string())
            .execute(&mut *c)
            .await
            .map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        }
        for device in bundle.added {
            on_conn!(&mut conn, |c| sqlx::query(
                "INSERT INTO mls_members (group_id, device, since) VALUES ($1, $2, $3)"
            )
            .bind(bundle.group.to_string())
            .bind(device.to_string())
            .bind(new)
            .execute(&mut *c)
            .await
            .map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        }
        let commit_text = STANDARD.encode(bundle.commit);
        let commit = Outgoing {
            kind: DeliveryKind::Commit,
            group: bundle.group,
            epoch: old,
            sender: &bundle.sender,
            body: &commit_text,
            size: to_db(bundle.commit.len() as u64, "commit size")?,
            now: bundle.now,
        };
        let welcome_text = bundle.welcome.map(|w| STANDARD.encode(w));
        let welcome = match (&welcome_text, bundle.welcome) {
            (Some(text), Some(bytes)) => Some(Outgoing {
                kind: DeliveryKind::Welcome,
                group: bundle.group,
                epoch: new,
                sender: &bundle.sender,
                body: text,
                size: to_db(bytes.len() as u64, "welcome size")?,
                now: bundle.now,
            }),
            _ => None,
        };
        // Every recipient in one ascending pass (the lock order); added devices are not
        // members, so nobody is named twice.
        let mut recipients: Vec<(DeviceId, &Outgoing<'_>)> = members
            .iter()
            .filter(|d| **d != bundle.sender)
            .map(|d| (*d, &commit))
            .collect();
        if let Some(welcome) = &welcome {
            recipients.extend(bundle.added.iter().map(|d| (*d, welcome)));
        }
        recipients.sort_by_key(|(d, _)| *d);
        for (device, message) in recipients {
            enqueue(self, &mut conn, &device, message).await?;
        }
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(CommitOutcome::Accepted {
            epoch: from_db("mls_groups", new)?,
        })
    }

    /// Queues an application message of `sender`, made in `epoch`, for every active member of
    /// the group but the sender, if the sender is a member and `epoch` is current.
    pub async fn send_message(
        &self,
        group: &GroupId,
        sender: &DeviceId,
        epoch: u64,
        message: &[u8],
        now: i64,
    ) -> Result<SendOutcome, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let Some(current) = lock_group(self, &mut conn, group, false).await? else {
            return Ok(SendOutcome::NotMember);
        };
        let members = members_of(&mut conn, group).await?;
        if !members.contains(sender) {
            return Ok(SendOutcome::NotMember);
        }
        if current != epoch {
            return Ok(SendOutcome::Stale {
                current_epoch: current,
            });
        }
        let text = STANDARD.encode(message);
        let outgoing = Outgoing {
            kind: DeliveryKind::Application,
            group,
            epoch: to_db(epoch, "epoch")?,
            sender,
            body: &text,
            size: to_db(message.len() as u64, "message size")?,
            now,
        };
        let mut recipients = 0u64;
        // `members` is in ascending order: the lock order.
        for device in members.iter().filter(|d| *d != sender) {
            if enqueue(self, &mut conn, device, &outgoing).await? {
                recipients += 1;
            }
        }
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(SendOutcome::Sent { recipients })
    }

    /// The entries of `device`'s queue after `after`, in order: at most `limit`, and no more
    /// than `max_bytes` of bodies in all (but always the first, whatever its size).
    pub async fn receive(
        &self,
        device: &DeviceId,
        after: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        // Numbers beyond the database's never exist, so nothing comes after them.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let mut pooled = self.pool.acquire().await?;
        // Sizes first, so a page of large entries is cut before their bodies are read.
        let sizes: Vec<(i64, i64)> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT seq, size FROM mls_queue WHERE device = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        )
        .bind(device.to_string())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        let mut total = 0u64;
        let mut last = None;
        for (seq, size) in sizes {
            let size = from_db(QUEUE_TABLE, size)?;
            if last.is_some() && total.saturating_add(size) > max_bytes {
                break;
            }
            total = total.saturating_add(size);
            last = Some(seq);
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        type Row = (i64, String, String, i64, String, String, i64);
        let rows: Vec<Row> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT seq, kind, group_id, epoch, sender, body, received_at FROM mls_queue \
             WHERE device = $1 AND seq > $2 AND seq <= $3 ORDER BY seq"
        )
        .bind(device.to_string())
        .bind(after)
        .bind(last)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter()
            .map(|(seq, kind, group, epoch, sender, body, received_at)| {
                Ok(Delivery {
                    seq: from_db(QUEUE_TABLE, seq)?,
                    kind: parse_col(QUEUE_TABLE, &kind)?,
                    group: parse_col(QUEUE_TABLE, &group)?,
                    epoch: from_db(QUEUE_TABLE, epoch)?,
                    sender: parse_col(QUEUE_TABLE, &sender)?,
                    body: STANDARD
                        .decode(&body)
                        .map_err(|e| corrupt(QUEUE_TABLE, e))?,
                    received_at,
                })
            })
            .collect()
    }

    /// Deletes the entries of `device`'s queue up to `up_to` included; returns how many.
    pub async fn acknowledge(&self, device: &DeviceId, up_to: u64) -> Result<u64, StoreError> {
        let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
        let mut pooled = self.pool.acquire().await?;
        let removed = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM mls_queue WHERE device = $1 AND seq <= $2"
        )
        .bind(device.to_string())
        .bind(up_to)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        Ok(removed)
    }
}

/// The refusals that need no database: a device named twice, the sender removing itself, a
/// welcome without added devices or the reverse.
fn structural_refusal(bundle: &CommitBundle<'_>) -> Option<CommitRefusal> {
    let mut seen = std::collections::HashSet::new();
    for d in bundle.added.iter().chain(bundle.removed) {
        if !seen.insert(*d) {
            return Some(CommitRefusal::Repeated(*d));
        }
    }
    if bundle.removed.contains(&bundle.sender) {
        return Some(CommitRefusal::RemovesSender);
    }
    if bundle.added.is_empty() == bundle.welcome.is_some() {
        return Some(CommitRefusal::WelcomeMismatch {
            added: !bundle.added.is_empty(),
        });
    }
    None
}

/// Locks the group's row for the rest of the transaction and returns its epoch, or `None` if
/// there is no such group. PostgreSQL: `FOR UPDATE` (`exclusive`, a commit) or `FOR SHARE` (a
/// message); SQLite holds the write lock since `BEGIN IMMEDIATE`.
async fn lock_group(
    store: &Store,
    conn: &mut Conn<'_>,
    group: &GroupId,
    exclusive: bool,
) -> Result<Option<u64>, StoreError> {
    let epoch: Option<i64> = match conn {
        Conn::Sqlite(c) => sqlx::query_scalar("SELECT epoch FROM mls_groups WHERE id = $1")
            .bind(group.to_string())
            .fetch_optional(&mut **c)
            .await
            .map_err(|e| store.write_error(e))?,
        Conn::Postgres(c) => sqlx::query_scalar(if exclusive {
            "SELECT epoch FROM mls_groups WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT epoch FROM mls_groups WHERE id = $1 FOR SHARE"
        })
        .bind(group.to_string())
        .fetch_optional(&mut **c)
        .await
        .map_err(|e| busy_or(e, Backend::Postgres, store.options.busy_timeout()))?,
    };
    epoch.map(|e| from_db("mls_groups", e)).transpose()
}

/// Locks an active device's row for the rest of the transaction (PostgreSQL; SQLite holds the
/// write lock); `false` if it is revoked or unknown.
async fn lock_active_device(
    store: &Store,
    conn: &mut Conn<'_>,
    device: &DeviceId,
) -> Result<bool, StoreError> {
    let found: Option<String> = match conn {
        Conn::Sqlite(c) => {
            sqlx::query_scalar("SELECT id FROM devices WHERE id = $1 AND revoked_at IS NULL")
                .bind(device.to_string())
                .fetch_optional(&mut **c)
                .await
                .map_err(|e| store.write_error(e))?
        }
        Conn::Postgres(c) => sqlx::query_scalar(
            "SELECT id FROM devices WHERE id = $1 AND revoked_at IS NULL FOR UPDATE",
        )
        .bind(device.to_string())
        .fetch_optional(&mut **c)
        .await
        .map_err(|e| busy_or(e, Backend::Postgres, store.options.busy_timeout()))?,
    };
    Ok(found.is_some())
}

/// The group's members in ascending id order.
async fn members_of(conn: &mut Conn<'_>, group: &GroupId) -> Result<Vec<DeviceId>, StoreError> {
    let ids: Vec<String> = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT device FROM mls_members WHERE group_id = $1"
    )
    .bind(group.to_string())
    .fetch_all(&mut *c)
    .await?);
    let mut members = ids
        .iter()
        .map(|d| parse_col::<DeviceId>("mls_members", d))
        .collect::<Result<Vec<_>, _>>()?;
    members.sort();
    Ok(members)
}

/// The first of `devices` that is unknown or revoked, as a refusal.
async fn first_inactive(
    conn: &mut Conn<'_>,
    devices: &[DeviceId],
) -> Result<Option<CommitRefusal>, StoreError> {
    for device in devices {
        let found: Option<String> = on_conn!(conn, |c| sqlx::query_scalar(
            "SELECT id FROM devices WHERE id = $1 AND revoked_at IS NULL"
        )
        .bind(device.to_string())
        .fetch_optional(&mut *c)
        .await?);
        if found.is_none() {
            return Ok(Some(CommitRefusal::NotActive(*device)));
        }
    }
    Ok(None)
}

/// Appends `message` to `device`'s queue under the next seq; `false` (and nothing written) if
/// the device is revoked. The UPDATE locks the device's row until the transaction ends, so the
/// device's entries become visible in the order of their seqs, and a concurrent revocation
/// either waits for this delivery (and then deletes it) or makes it skip the device.
async fn enqueue(
    store: &Store,
    conn: &mut Conn<'_>,
    device: &DeviceId,
    message: &Outgoing<'_>,
) -> Result<bool, StoreError> {
    let counted = on_conn!(conn, |c| sqlx::query(
        "UPDATE devices SET mls_queue_seq = mls_queue_seq + 1 \
         WHERE id = $1 AND revoked_at IS NULL"
    )
    .bind(device.to_string())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(|e| store.write_error(e))?;
    if counted == 0 {
        return Ok(false);
    }
    let seq: i64 = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT mls_queue_seq FROM devices WHERE id = $1"
    )
    .bind(device.to_string())
    .fetch_one(&mut *c)
    .await?);
    on_conn!(conn, |c| sqlx::query(
        "INSERT INTO mls_queue \
         (device, seq, kind, group_id, epoch, sender, body, size, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(device.to_string())
    .bind(seq)
    .bind(message.kind.as_str())
    .bind(message.group.to_string())
    .bind(message.epoch)
    .bind(message.sender.to_string())
    .bind(message.body)
    .bind(message.size)
    .bind(message.now)
    .execute(&mut *c)
    .await
    .map(|_| ()))
    .map_err(|e| store.write_error(e))?;
    Ok(true)
}
