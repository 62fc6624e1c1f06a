//! What travels inside an MLS application message: a small versioned JSON object with exactly
//! one of `text`, `attachment` (the SDK's pointer, with the attachment's key) or `group_name`
//! (the creator's name for the group, sent once after each invitation).

use hashguard_client::AttachmentPointer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::MessengerError;

/// The envelope version this messenger writes and reads.
pub const VERSION: u32 = 1;
/// The longest text accepted (the service takes messages up to 256 KiB).
pub const MAX_TEXT: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentPointer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

impl Envelope {
    pub fn text(text: &str) -> Envelope {
        Envelope {
            v: VERSION,
            text: Some(text.to_string()),
            attachment: None,
            group_name: None,
        }
    }

    pub fn attachment(pointer: AttachmentPointer) -> Envelope {
        Envelope {
            v: VERSION,
            text: None,
            attachment: Some(pointer),
            group_name: None,
        }
    }

    pub fn group_name(name: &str) -> Envelope {
        Envelope {
            v: VERSION,
            text: None,
            attachment: None,
            group_name: Some(name.to_string()),
        }
    }

    /// The plaintext of the MLS message (it holds an attachment key: zeroized when dropped).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, MessengerError> {
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
            return Err(MessengerError::InvalidArgument(format!(
                "the text is longer than {MAX_TEXT} bytes: send it as a file or in parts"
            )));
        }
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| MessengerError::Protocol(format!("cannot encode a message: {e}")))
    }

    /// Reads an envelope; the reason is shown to the user when it fails.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(bytes)
            .map_err(|_| "a message that is not a hashguard chat message".to_string())?;
        if version.v != VERSION {
            return Err(format!(
                "a message of version {} (this program reads version {VERSION}): update hashguard",
                version.v
            ));
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| format!("a damaged message ({e})"))?;
        let fields = usize::from(envelope.text.is_some())
            + usize::from(envelope.attachment.is_some())
            + usize::from(envelope.group_name.is_some());
        if fields != 1 {
            return Err("a damaged message (it must carry exactly one thing)".into());
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_refuse_other_versions() {
        let bytes = Envelope::text("hi").encode().expect("encode");
        assert_eq!(bytes.as_slice(), br#"{"v":1,"text":"hi"}"#);
        assert_eq!(
            Envelope::decode(&bytes).expect("decode").text.as_deref(),
            Some("hi")
        );
        assert!(Envelope::decode(br#"{"v":2,"text":"hi"}"#)
            .unwrap_err()
            .contains("version 2"));
        assert!(Envelope::decode(br#"{"v":1}"#).is_err());
        assert!(Envelope::decode(br#"{"v":1,"text":"a","group_name":"b"}"#).is_err());
        assert!(Envelope::decode(b"\x00garbage").is_err());
    }
}
