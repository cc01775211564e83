//! Any bytes: if they are UTF-8, parse them as interface XML; on success translate, write
//! keyfiles, write canonical XML and read the profiles back. Nothing may panic, and the
//! canonical XML must be a fixed point (it parses and writes itself unchanged).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Non-UTF-8 input is the caller's job (the CLI refuses it before parsing).
    if let Ok(text) = std::str::from_utf8(data) {
        common::check(text, common::Depth::FixedPoint);
    }
});
