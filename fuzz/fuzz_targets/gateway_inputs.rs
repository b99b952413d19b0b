#![no_main]
//! The gateway's parsers of untrusted input never panic: Range headers (and their
//! resolution against any length), request paths, object keys (the key grammar), mailbox
//! ids (the canonical form), store listings (XML from the store), configuration files and
//! bulk-job checkpoint files; what parses keeps its invariants.
use custodia_gateway::http_front::split_path;
use custodia_gateway::objects::RangeSpec;
use custodia_gateway::store::s3::parse_listing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (len_bytes, rest) = data.split_at(data.len().min(8));
    let mut len = [0u8; 8];
    len[..len_bytes.len()].copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len);
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok(Some(spec)) = RangeSpec::parse(text)
            && let Ok(r) = spec.resolve(len)
        {
            assert!(r.start < r.end && r.end <= len, "{spec:?} on {len} gave {r:?}");
        }
        if let Ok((bucket, key)) = split_path(text) {
            assert!(!bucket.is_empty() && !key.is_empty());
            assert!(!key.split('/').any(|s| s == ".." || s == "."));
        }
        if custodia_gateway::routes::check_key(text).is_ok() {
            assert!(!text.split('/').any(|s| s.is_empty() || s == ".." || s == "."));
            assert!(!text.chars().any(char::is_control));
        }
        if let Ok(id) = custodia_envelope::canonical_mailbox(text) {
            // Canonical means a fixed point: lowercase, ASCII, no longer than the limit.
            assert!(id.len() <= custodia_envelope::MAX_MAILBOX && id.is_ascii());
            assert_eq!(id, id.to_ascii_lowercase());
            assert_eq!(custodia_envelope::canonical_mailbox(&id), Ok(id.clone()));
        }
        let _ = custodia_gateway::Config::parse(text);
    }
    if let Ok(ck) = custodia_gateway::ops::checkpoint::Checkpoint::parse(rest) {
        assert!(ck.retry.len() <= custodia_gateway::ops::checkpoint::MAX_RETRY);
    }
    if let Ok(page) = parse_listing(rest) {
        assert!(page.objects.len() <= rest.len());
    }
});
