//! Cron expressions as `JobBuilder::cron` takes them, and the next firings the scheduler computes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 256 {
        return;
    }
    let firings = lookout_cleanup::__fuzz::cron(text);
    assert!(firings <= 3);
});
