#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ossbridge_fuzz::oss_events(data);
});
