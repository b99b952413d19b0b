#![no_main]
//! The opener never panics, and nothing but the original body opens under the fixture's
//! header, however it is cut into pieces. Input: `n: u8`, then `n % 8` piece-size bytes, then
//! the stored body. The whole input is also opened as a stored object.
use custodia_envelope::open_with_keys;
use custodia_fuzz::{fixture, open_in_pieces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (sizes, body) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let opened = open_in_pieces(&f.unlocked, sizes, body);
    if let Ok(plain) = &opened {
        assert_eq!(plain, &f.sample.plaintext, "a forged body opened");
    }
    if body == f.body() {
        assert_eq!(opened.as_ref(), Ok(&f.sample.plaintext), "original refused");
    }
    // Forging a whole object takes real sealing to the recipient's key: never by chance.
    if let Ok((plain, _)) = open_with_keys(data, &f.sample.secrets, &f.sample.binding) {
        assert_eq!(plain, f.sample.plaintext, "a forged object opened");
    }
});
