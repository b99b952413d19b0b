#![no_main]
//! ring and RustCrypto `aes-gcm` agree on AES-256-GCM under the STREAM nonce: the same
//! ciphertext and tag, each opens the other's output, and one flipped bit fails in both.
//! Input: key[32] || counter:u64be || last:u8 || flip:u16be || plaintext.
use custodia_envelope::StreamNonce;
use custodia_fuzz::gcm::{rc_open, rc_seal, ring_open, ring_seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, plain)) = data.split_at_checked(43) else {
        return;
    };
    let key: [u8; 32] = head[..32].try_into().unwrap();
    let counter = u64::from_be_bytes(head[32..40].try_into().unwrap());
    let nonce = StreamNonce::new(counter, head[40] & 1 == 1).bytes();
    let rc = |sealed: &[u8]| rc_open(&key, nonce, sealed);
    let ring = |sealed: &[u8]| ring_open(&key, nonce, sealed);
    let mut sealed = ring_seal(&key, nonce, plain);
    assert_eq!(sealed, rc_seal(&key, nonce, plain), "outputs differ");
    assert_eq!(rc(&sealed).as_deref(), Some(plain), "aes-gcm refused");
    assert_eq!(ring(&sealed).as_deref(), Some(plain), "ring refused");
    let bit = usize::from(u16::from_be_bytes([head[41], head[42]])) % (sealed.len() * 8);
    sealed[bit / 8] ^= 1 << (bit % 8);
    assert_eq!(rc(&sealed), None, "aes-gcm opened a flipped bit");
    assert_eq!(ring(&sealed), None, "ring opened a flipped bit");
});
