//! Attachments as a messenger sends them: padded to a size bucket, encrypted under a fresh
//! random key, stored by the service as ciphertext only, and described to the recipients by a
//! pointer that travels inside the end-to-end encrypted message (Signal's attachment pointer,
//! Matrix's `EncryptedFile`). The pointer's SHA-256 of the ciphertext is also the voucher's
//! binding input (protocol.md R/E4) and the recipient's integrity check.

use hashguard_protocol::suite::{open, seal, TAG_LEN};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::SdkError;

/// The associated data of every attachment ciphertext: a ciphertext made for something else
/// (a voucher's part, say) never opens as an attachment.
const ATTACHMENT_AAD: &[u8] = b"hashguard/attachment/v1";

/// The smallest padded size: below it every attachment looks the same.
const MIN_PADDED: u64 = 541;

/// The padded size of a `size`-byte attachment: the next step of a geometric ladder with
/// ratio 1.05 (at least 541 bytes), as Signal pads attachments. The service and anyone on the
/// path see only which of about 290 buckets between 541 bytes and 1 GiB an attachment falls
/// in, and padding costs at most 5%.
pub fn padded_size(size: u64) -> u64 {
    if size <= MIN_PADDED {
        return MIN_PADDED;
    }
    // The ladder is floor(1.05^k); stepping it exactly avoids floating-point drift at bucket
    // edges (an f64 power is inexact, a product rounded down each step is what we define).
    let mut step = MIN_PADDED as f64;
    loop {
        let bucket = step.floor() as u64;
        if bucket >= size {
            return bucket;
        }
        step *= 1.05;
    }
}

/// What a file is, as the pointer tells the recipient's app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    /// A still image.
    Image,
    /// A video.
    Video,
}

impl MediaType {
    /// The name the upload form uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Video => "video",
        }
    }
}

/// The secret half of an attachment, carried only inside the end-to-end encrypted message:
/// whoever holds it can fetch and decrypt the attachment, and check that it is the one the
/// sender sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentPointer {
    /// The service's id for the ciphertext (unguessable; a capability for download).
    pub attachment_id: String,
    /// The ChaCha20-Poly1305 key (hex), fresh for this attachment.
    #[serde(with = "hex_key")]
    pub key: Zeroizing<[u8; 32]>,
    /// SHA-256 of the ciphertext (hex).
    #[serde(with = "hex::serde")]
    pub ciphertext_sha256: [u8; 32],
    /// The file's size before padding.
    pub size: u64,
    /// Image or video.
    pub media: MediaType,
    /// The MIME type the sender's app recognised (`image/jpeg`, `video/mp4`, ...).
    pub content_type: String,
    /// Width in pixels, when known.
    pub width: Option<u32>,
    /// Height in pixels, when known.
    pub height: Option<u32>,
    /// The file's name as the sender chose to share it, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl std::fmt::Debug for AttachmentPointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentPointer")
            .field("attachment_id", &self.attachment_id)
            .field("key", &"<secret>")
            .field("size", &self.size)
            .field("media", &self.media)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(key: &Zeroizing<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(key.as_ref())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<[u8; 32]>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.as_bytes(), key.as_mut())
            .map_err(|_| serde::de::Error::custom("the key must be 64 hex digits"))?;
        Ok(key)
    }
}

/// A file encrypted for upload: the ciphertext and what its pointer will say.
pub struct Sealed {
    /// `ChaCha20-Poly1305(key, nonce 0, padded file, aad) ‖ tag`.
    pub ciphertext: Vec<u8>,
    /// The single-use key.
    pub key: Zeroizing<[u8; 32]>,
    /// SHA-256 of `ciphertext`.
    pub ciphertext_sha256: [u8; 32],
    /// The file's size before padding.
    pub size: u64,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Pads `file` to its bucket and encrypts it under a fresh random key. The key encrypts this
/// one plaintext only, so nonce 0 is safe (the protocol's suite states the same rule).
pub fn seal_file(file: &[u8]) -> Result<Sealed, SdkError> {
    let size = file.len() as u64;
    let padded = usize::try_from(padded_size(size)).map_err(|_| SdkError::TooLarge { size })?;
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|e| SdkError::Random(e.to_string()))?;
    let mut buffer = Vec::with_capacity(padded + TAG_LEN);
    buffer.extend_from_slice(file);
    buffer.resize(padded, 0);
    let tag = seal(&key, ATTACHMENT_AAD, &mut buffer);
    buffer.extend_from_slice(&tag);
    let ciphertext_sha256 = Sha256::digest(&buffer).into();
    Ok(Sealed {
        ciphertext: buffer,
        key,
        ciphertext_sha256,
        size,
    })
}

/// Checks a downloaded ciphertext against its pointer (the digest first, so a substituted
/// file is refused before any decryption) and returns the file.
pub fn open_file(pointer: &AttachmentPointer, ciphertext: &[u8]) -> Result<Vec<u8>, SdkError> {
    let digest: [u8; 32] = Sha256::digest(ciphertext).into();
    if !bool::from(digest.ct_eq(&pointer.ciphertext_sha256)) {
        return Err(SdkError::Tampered(
            "the downloaded attachment is not the one the sender sent (its SHA-256 differs)",
        ));
    }
    let body_len = ciphertext
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(SdkError::Tampered("the attachment is shorter than its tag"))?;
    if (body_len as u64) < pointer.size || body_len as u64 != padded_size(pointer.size) {
        return Err(SdkError::Tampered(
            "the attachment's length does not fit the size its pointer states",
        ));
    }
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&ciphertext[body_len..]);
    let mut plain = ciphertext[..body_len].to_vec();
    if !open(&pointer.key, ATTACHMENT_AAD, &mut plain, &tag) {
        plain.zeroize();
        return Err(SdkError::Tampered(
            "the attachment does not decrypt with the key in its pointer",
        ));
    }
    // `size` ≤ body_len was checked above.
    plain.truncate(pointer.size as usize);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(sealed: &Sealed) -> AttachmentPointer {
        AttachmentPointer {
            attachment_id: "a".repeat(32),
            key: sealed.key.clone(),
            ciphertext_sha256: sealed.ciphertext_sha256,
            size: sealed.size,
            media: MediaType::Image,
            content_type: "image/png".into(),
            width: Some(1),
            height: Some(1),
            file_name: None,
        }
    }

    #[test]
    fn padding_is_a_monotone_ladder_within_five_percent() {
        assert_eq!(padded_size(0), 541);
        assert_eq!(padded_size(541), 541);
        assert_eq!(padded_size(542), 568);
        for size in (0..2_000_000u64).step_by(997) {
            let p = padded_size(size);
            assert!(p >= size, "{size} -> {p}");
            assert!(
                size < 541 || p as f64 <= size as f64 * 1.05 + 1.0,
                "{size} -> {p}"
            );
        }
        // Walking the ladder bucket by bucket: 541 bytes to 2 MB is ln(3697)/ln(1.05) ≈ 168
        // steps, each strictly larger than the last.
        let (mut size, mut buckets) = (0u64, 0);
        while size < 2_000_000 {
            let p = padded_size(size);
            assert!(p >= size);
            assert_eq!(padded_size(p), p, "a bucket is its own padded size");
            size = p + 1;
            buckets += 1;
        }
        assert!((165..=172).contains(&buckets), "{buckets} buckets");
        assert_eq!(padded_size(padded_size(123_456)), padded_size(123_456));
    }

    #[test]
    fn sealed_files_open_with_their_pointer_only() {
        let file: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sealed = seal_file(&file).expect("seal");
        assert_eq!(
            sealed.ciphertext.len() as u64,
            padded_size(10_000) + TAG_LEN as u64
        );
        // The plaintext appears nowhere in the ciphertext.
        assert!(!sealed.ciphertext.windows(64).any(|w| w == &file[..64]));
        let p = pointer(&sealed);
        assert_eq!(open_file(&p, &sealed.ciphertext).expect("open"), file);

        // One flipped bit anywhere is refused (digest), as is a matching digest with another
        // key (the service swapped pointer and file).
        let mut flipped = sealed.ciphertext.clone();
        flipped[5000] ^= 1;
        assert!(matches!(
            open_file(&p, &flipped),
            Err(SdkError::Tampered(_))
        ));
        let mut wrong_key = p.clone();
        wrong_key.key[0] ^= 1;
        assert!(matches!(
            open_file(&wrong_key, &sealed.ciphertext),
            Err(SdkError::Tampered(_))
        ));
        let mut wrong_size = p.clone();
        wrong_size.size = 20_000;
        assert!(matches!(
            open_file(&wrong_size, &sealed.ciphertext),
            Err(SdkError::Tampered(_))
        ));
        // Two sealings of one file share nothing: fresh key each time.
        let again = seal_file(&file).expect("seal");
        assert_ne!(again.ciphertext, sealed.ciphertext);
        assert_ne!(*again.key, *sealed.key);
    }

    #[test]
    fn pointers_round_trip_through_json_without_showing_the_key_in_debug() {
        let sealed = seal_file(b"hello").expect("seal");
        let p = pointer(&sealed);
        let json = serde_json::to_string(&p).expect("json");
        let back: AttachmentPointer = serde_json::from_str(&json).expect("parse");
        assert!(back == p);
        assert!(!format!("{p:?}").contains(&hex::encode(sealed.key.as_ref())));
        let bad = json.replace(&hex::encode(sealed.key.as_ref()), "zz");
        assert!(serde_json::from_str::<AttachmentPointer>(&bad).is_err());
    }
}
