//! The cryptographic suite (suite id 1): ristretto255, RFC 9380 hash-to-group with
//! expand_message_xmd-SHA-512, HKDF-SHA-256, ChaCha20-Poly1305 with single-use keys.
//!
//! Every domain-separation tag of the protocol lives here, so that no two uses of a primitive can
//! collide by accident.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// Suite identifier carried in every voucher and manifest: ristretto255 + H2G-SHA-512,
/// ChaCha20-Poly1305, HKDF-SHA-256.
pub const SUITE_ID: u8 = 1;

/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Domain-separation tags. One per use; every hash-to-group input additionally starts with the
/// table's `build_id` (protocol.md R/E2), so two builds never share a point.
pub mod dst {
    /// H2G of a listed PDQ key.
    pub const KEY: &[u8] = b"PDQTPSI-V1-KEY";
    /// H2G of an exact (file digest) key.
    pub const EXACT: &[u8] = b"PDQTPSI-V1-EXACT";
    /// H2G of an OKVS fill position.
    pub const FILL: &[u8] = b"PDQTPSI-V1-FILL";
    /// OKVS position hash (SHA-512 prefix).
    pub const POS: &[u8] = b"PDQTPSI-V1-POS";
    /// Batched-DLEQ weights.
    pub const DLEQ_W: &[u8] = b"PDQTPSI-V1-DLEQ-W";
    /// Batched-DLEQ challenge.
    pub const DLEQ_C: &[u8] = b"PDQTPSI-V1-DLEQ-C";
    /// Hedged DLEQ nonce.
    pub const NONCE: &[u8] = b"PDQTPSI-V1-NONCE";
    /// DLEQ context prefix.
    pub const DLEQ_CTX: &[u8] = b"PDQTPSI-v1/dleq";
    /// Shard assignment prefix.
    pub const SHARD: &[u8] = b"PDQTPSI-v1/shard";
    /// Build id prefix.
    pub const BUILD: &[u8] = b"PDQTPSI-v1/build";
    /// Key-set digest label (the builder's own record of which shards changed).
    pub const KEY_SET: &[u8] = b"PDQTPSI-v1/key-set";
    /// Fill seed prefix.
    pub const FILL_SEED: &[u8] = b"fill";
}

/// SHA-512 after absorbing `Z_pad` (one all-zero 128-byte block), the constant prefix of every
/// `b_0` in `expand_message_xmd`. Cloning it saves one of the three SHA-512 compressions of a
/// hash-to-group or HashToScalar call; the output is unchanged (the RFC 9380 and RFC 9497
/// known-answer tests check it).
static Z_PAD_STATE: std::sync::LazyLock<Sha512> = std::sync::LazyLock::new(|| {
    let mut h = Sha512::new();
    h.update([0u8; 128]);
    h
});

/// RFC 9380 section 5.3.1 `expand_message_xmd` with SHA-512.
///
/// Returns `None` when the request is outside the RFC's limits (`len > 255 * 64`,
/// `len > 65535` or a DST longer than 255 bytes).
pub fn expand_message_xmd_sha512(msg: &[&[u8]], dst: &[u8], len: usize) -> Option<Vec<u8>> {
    const B: usize = 64;
    let ell = len.div_ceil(B);
    let (Ok(ell_u8), Ok(len_u16), Ok(dst_len)) = (
        u8::try_from(ell),
        u16::try_from(len),
        u8::try_from(dst.len()),
    ) else {
        return None;
    };
    if ell_u8 == 0 {
        return None;
    }
    let dst_len = [dst_len];
    let mut h = Z_PAD_STATE.clone();
    for part in msg {
        h.update(part);
    }
    h.update(len_u16.to_be_bytes());
    h.update([0u8]);
    h.update(dst);
    h.update(dst_len);
    let b0: [u8; 64] = h.finalize().into();
    let mut out = Vec::with_capacity(ell * B);
    let mut prev = [0u8; 64];
    for i in 1..=ell_u8 {
        let mut h = Sha512::new();
        if i == 1 {
            h.update(b0);
        } else {
            let mut x = b0;
            for (a, b) in x.iter_mut().zip(prev.iter()) {
                *a ^= b;
            }
            h.update(x);
        }
        h.update([i]);
        h.update(dst);
        h.update(dst_len);
        prev = h.finalize().into();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    Some(out)
}

fn xmd64(msg: &[&[u8]], dst: &[u8]) -> Zeroizing<[u8; 64]> {
    // The DSTs of this crate are short constants, so the RFC's limits always hold; keep a total
    // function anyway by falling back to an explicit error-free path.
    let v = Zeroizing::new(expand_message_xmd_sha512(msg, dst, 64).unwrap_or_else(|| {
        // Unreachable for the crate's DSTs (all < 255 bytes); hash the DST as RFC 9380 5.3.3.
        let mut h = Sha512::new();
        h.update(b"H2C-OVERSIZE-DST-");
        h.update(dst);
        let short: [u8; 64] = h.finalize().into();
        expand_message_xmd_sha512(msg, &short, 64).unwrap_or_default()
    }));
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&v[..64]);
    out
}

/// RFC 9380 `hash_to_ristretto255`: `from_uniform_bytes(expand_message_xmd_SHA512(msg, dst, 64))`.
///
/// `msg` is given in parts that are concatenated (no separators: callers length-prefix or use
/// fixed-length parts).
pub fn hash_to_group(dst: &[u8], msg: &[&[u8]]) -> RistrettoPoint {
    let u = xmd64(msg, dst);
    RistrettoPoint::from_uniform_bytes(&u)
}

/// RFC 9497 `HashToScalar` for ristretto255: expand_message_xmd to 64 bytes, reduced mod q.
pub fn hash_to_scalar(dst: &[u8], msg: &[&[u8]]) -> Scalar {
    let u = xmd64(msg, dst);
    Scalar::from_bytes_mod_order_wide(&u)
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HKDF-SHA-256 with no salt: `Expand(Extract(0, ikm), info, N)`.
pub fn hkdf<const N: usize>(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    let mut out = Zeroizing::new([0u8; N]);
    // N is at most 255 * 32 for every call in this crate; expand only fails beyond that.
    if hk.expand_multi_info(info, &mut out[..]).is_err() {
        out.zeroize();
    }
    out
}

/// HKDF-SHA-256 with no salt into a caller-sized buffer (at most 255 · 32 bytes).
pub fn hkdf_into(ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    if hk.expand_multi_info(info, out).is_err() {
        out.zeroize();
    }
}

/// Seals `buf` in place under a single-use `key` with nonce 0 and returns the tag.
///
/// Nonce 0 is safe because every key of the protocol encrypts exactly one plaintext
/// (protocol-review.md m7): each key is derived from fresh randomness or a fresh voucher id.
pub fn seal(key: &[u8; 32], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let nonce = Nonce::default();
    match cipher.encrypt_inout_detached(&nonce, aad, buf.into()) {
        Ok(tag) => tag.into(),
        // Only fails for plaintexts longer than 256 GiB, which this crate never seals.
        Err(_) => [0u8; TAG_LEN],
    }
}

/// Opens `buf` in place; on failure `buf` is left unspecified and `false` is returned.
pub fn open(key: &[u8; 32], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let nonce = Nonce::default();
    cipher
        .decrypt_inout_detached(&nonce, aad, buf.into(), &Tag::from(*tag))
        .is_ok()
}

/// Seals `plain` into a new vector `ciphertext ‖ tag`.
pub fn seal_to_vec(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + TAG_LEN);
    out.extend_from_slice(plain);
    let tag = seal(key, aad, &mut out);
    out.extend_from_slice(&tag);
    out
}

/// Opens `ciphertext ‖ tag`; returns the plaintext (zeroized on drop) or `None`.
pub fn open_to_vec(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if ct.len() < TAG_LEN {
        return None;
    }
    let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
    let mut buf = Zeroizing::new(body.to_vec());
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag);
    if open(key, aad, &mut buf, &t) {
        Some(buf)
    } else {
        None
    }
}

/// Which field backend curve25519-dalek runs here (`avx512ifma`, `avx2` or `serial`). It
/// decides at run time, among the backends compiled in, by the same CPU feature tests; this
/// mirrors that rule so that every benchmark figure is printed beside the backend that produced
/// it (the IFMA backend is compiled only with
/// `--cfg curve25519_dalek_backend="avx512"`, set in the workspace's `.cargo/config.toml`,
/// or when the target itself has IFMA).
pub fn field_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let forced_serial = cfg!(any(
            curve25519_dalek_backend = "serial",
            curve25519_dalek_backend = "fiat"
        ));
        let ifma_compiled = cfg!(any(
            curve25519_dalek_backend = "avx512",
            all(target_feature = "avx512ifma", target_feature = "avx512vl")
        ));
        if !forced_serial {
            if ifma_compiled
                && std::is_x86_feature_detected!("avx512ifma")
                && std::is_x86_feature_detected!("avx512vl")
            {
                return "avx512ifma";
            }
            if std::is_x86_feature_detected!("avx2") {
                return "avx2";
            }
        }
    }
    "serial"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 9380 Appendix K.3, expand_message_xmd(SHA-512).
    #[test]
    fn kat_rfc9380_expand_message_xmd_sha512() {
        let dst = b"QUUX-V01-CS02-with-expander-SHA512-256";
        let cases: [(&[u8], usize, &str); 4] = [
            (
                b"",
                32,
                "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba",
            ),
            (
                b"abc",
                32,
                "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc",
            ),
            (
                b"abcdef0123456789",
                32,
                "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
            ),
            (
                b"",
                128,
                "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921\
                 b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e\
                 0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e\
                 b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
            ),
        ];
        for (msg, len, want) in cases {
            let got = expand_message_xmd_sha512(&[msg], dst, len).expect("in range");
            assert_eq!(to_hex(&got), want.replace(' ', ""), "msg {msg:?} len {len}");
        }
        assert!(expand_message_xmd_sha512(&[b""], dst, 255 * 64 + 1).is_none());
    }

    const RFC9497_CONTEXT: &[u8] = b"OPRFV1-\x00-ristretto255-SHA512";

    /// RFC 9497 A.1.1 (ristretto255-SHA512, OPRF mode): `BlindedElement = blind * HashToGroup(input)`
    /// with `HashToGroup` = RFC 9380 hash_to_ristretto255 under DST "HashToGroup-" ‖ contextString.
    #[test]
    fn kat_rfc9497_hash_to_group() {
        let dst = [b"HashToGroup-".as_slice(), RFC9497_CONTEXT].concat();
        let blind_bytes = hex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706");
        let mut b = [0u8; 32];
        b.copy_from_slice(&blind_bytes);
        let blind = Option::<Scalar>::from(Scalar::from_canonical_bytes(b)).expect("canonical");
        let cases = [
            (
                "00",
                "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
            ),
            (
                "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
                "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
            ),
        ];
        for (input, want) in cases {
            let p = hash_to_group(&dst, &[&hex(input)]);
            assert_eq!(to_hex((blind * p).compress().as_bytes()), want);
        }
        // A wrong DST must not reproduce the vector (the test can fail).
        let p = hash_to_group(b"HashToGroup-", &[&hex("00")]);
        assert_ne!(
            to_hex((blind * p).compress().as_bytes()),
            "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c"
        );
    }

    /// RFC 9497 A.1.1: `DeriveKeyPair(seed, info)` is `HashToScalar(seed ‖ I2OSP(len(info),2) ‖
    /// info ‖ I2OSP(0,1), "DeriveKeyPair" ‖ contextString)`; checks `hash_to_scalar`.
    #[test]
    fn kat_rfc9497_hash_to_scalar() {
        let dst = [b"DeriveKeyPair".as_slice(), RFC9497_CONTEXT].concat();
        let seed = hex("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3");
        let info = b"test key";
        let sk = hash_to_scalar(&dst, &[&seed, &[0, info.len() as u8], info, &[0]]);
        assert_eq!(
            to_hex(sk.as_bytes()),
            "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
        );
    }

    /// RFC 5869 A.1 (test case 1), HKDF-SHA-256.
    #[test]
    fn kat_rfc5869_hkdf_case1() {
        let ikm = [0x0bu8; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let (prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
        assert_eq!(
            to_hex(&prk),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        let mut okm = [0u8; 42];
        hk.expand(&info, &mut okm).expect("length ok");
        assert_eq!(
            to_hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    /// RFC 8439 2.8.2, through the crate's own `seal`/`open` wrappers (with the RFC's nonce).
    #[test]
    fn kat_rfc8439_chacha20poly1305() {
        let key: Vec<u8> = (0x80u8..=0x9f).collect();
        let nonce = hex("070000004041424344454647");
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let want_ct = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116";
        let want_tag = "1ae10b594f09e26a7e902ecbd0600691";
        let mut k = [0u8; 32];
        k.copy_from_slice(&key);
        let cipher = ChaCha20Poly1305::new(&Key::from(k));
        let mut n = [0u8; 12];
        n.copy_from_slice(&nonce);
        let mut buf = plain.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(n), &aad, buf.as_mut_slice().into())
            .expect("seal");
        assert_eq!(to_hex(&buf), want_ct);
        assert_eq!(to_hex(&tag), want_tag);
        // And the nonce-0 wrapper round-trips and rejects a flipped bit.
        let ct = seal_to_vec(&k, &aad, plain);
        assert_eq!(
            open_to_vec(&k, &aad, &ct).as_deref().map(|v| v.as_slice()),
            Some(&plain[..])
        );
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert!(open_to_vec(&k, &aad, &bad).is_none());
    }
}
