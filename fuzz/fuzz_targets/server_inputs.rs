#![no_main]
//! What the server decodes itself from clients and operators: the configuration file, ids in
//! paths, and the consented check's JSON body. Never panic; a parsed id prints back as it was.
use hashguard_server::api::{consent_reveal, CheckRequest};
use hashguard_server::config::ConfigFile;
use hashguard_store::{AccountId, AttachmentId, CaseId, DeviceId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<ConfigFile>(text);
    if let Ok(id) = text.parse::<AccountId>() {
        assert_eq!(id.to_string(), text);
    }
    if let Ok(id) = text.parse::<CaseId>() {
        assert_eq!(id.to_string(), text);
    }
    let _ = text.parse::<AttachmentId>();
    let _ = text.parse::<DeviceId>();
    if let Ok(request) = serde_json::from_str::<CheckRequest>(text) {
        if let Ok(reveal) = consent_reveal(&request) {
            assert_eq!(hex::encode(reveal.voucher_id), request.voucher_id.to_lowercase());
        }
    }
});
