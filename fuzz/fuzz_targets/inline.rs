//! Fuzz target: the inline XBRL reader must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xbrl::inline::parse_inline("fuzz.htm", data);
});
