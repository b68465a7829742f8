//! Fuzz target: the XBRL instance reader must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xbrl::instance::parse_instance("fuzz.xml", data);
});
