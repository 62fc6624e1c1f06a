//! Any text through the vPDQ hash-file parser and both matching rules: errors are fine, panics
//! are bugs, and whatever parses must print back to a line that parses to the same feature.
#![no_main]

use hashguard_vpdq::{match_features, parse_features, Feature, MatchRule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(features) = parse_features(text) {
        for f in &features {
            let again: Feature = f.to_string().parse().expect("printed lines parse");
            assert_eq!(again.hash, f.hash);
            assert_eq!(again.frame, f.frame);
        }
        for rule in [MatchRule::Reference, MatchRule::ThreatExchange] {
            let r = match_features(&features, &features, rule, 31, 50);
            assert!((0.0..=100.0).contains(&r.query_percent));
        }
    }
});
