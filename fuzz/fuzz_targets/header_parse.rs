#![no_main]
//! Parsers never panic, and the header format is canonical: whatever parses re-encodes to
//! exactly the bytes it was parsed from (so do contexts and stanzas on their own).
use custodia_envelope::{Context, Header, Profile, Stanza};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Profile::from_prefix(data);
    if let Ok(context) = Context::from_bytes(data) {
        assert_eq!(context.to_bytes(), data, "context did not round trip");
    }
    if let Ok(stanza) = Stanza::from_bytes(data) {
        assert_eq!(stanza.to_bytes(), data, "stanza did not round trip");
    }
    if let Ok(header) = Header::parse(data) {
        let (bytes, size) = (header.to_bytes(), header.profile().header_size());
        assert_eq!(bytes, data[..size], "header did not round trip");
        assert_eq!(Header::parse(&bytes), Ok(header), "re-parse differs");
    }
});
