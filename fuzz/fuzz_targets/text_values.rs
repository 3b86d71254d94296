//! The small parsers of user text: sizes, durations, listen addresses, date formats,
//! notify-socket lines, `scale` counts, time zone names, web tokens and `kelpie start` flags.
//! The first byte picks the parser, the rest is its text.
#![no_main]

mod common;

use kelpie_config::{parse_bytes, parse_duration_ms, ScriptOptions};
use kelpie_core::forensics::{parse_notify_line, NotifyLine, METRICS_MAX, STATUS_MAX_BYTES};
use kelpie_core::{DateFormat, ListenAddress, Published};
use kelpie_proto::ScaleCount;

/// `kelpie start <script> --flag value...`: the text split on NUL bytes gives the script,
/// then the flags' values in turn (an empty one is a flag not given).
fn start_flags(text: &str) {
    let mut parts = text.split('\0');
    let script = parts.next().unwrap_or_default();
    let mut next = || parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let opts = ScriptOptions {
        name: next(),
        instances: next(),
        kill_timeout: next(),
        max_memory_restart: next(),
        kill_signal: next(),
        port: next(),
        ready_pattern: next(),
        max_cpu: next(),
        nice: next(),
        cron_restart: next(),
        cron_timezone: next(),
        log_rotate_interval: next(),
        log_date_format: next(),
        interpreter_args: next(),
        health: kelpie_config::HealthFlags {
            health_http: next(),
            health_interval: next(),
            ..kelpie_config::HealthFlags::default()
        },
        watchdog: next(),
        user: next(),
        watch: next().into_iter().collect(),
        ignore_watch: next().into_iter().collect(),
        stop_exit_codes: next().into_iter().collect(),
        args: next().into_iter().collect(),
        ..ScriptOptions::default()
    };
    let _ = kelpie_config::from_script(script, &opts, &common::project().ctx);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    if choice % 10 == 5 {
        // Notify lines are bytes, not text.
        let mut published = Published::default();
        for line in rest.split(|&b| b == b'\n') {
            let Some(parsed) = parse_notify_line(line) else {
                continue;
            };
            match &parsed {
                NotifyLine::Status(text) => assert!(text.len() <= STATUS_MAX_BYTES),
                NotifyLine::Metric(_, Some(value)) => assert!(value.is_finite()),
                _ => {}
            }
            let _ = published.apply(&parsed);
            assert!(published.metrics.len() <= METRICS_MAX);
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match choice % 10 {
        0 => {
            let _ = parse_bytes(text);
        }
        1 => {
            let _ = parse_duration_ms(text);
        }
        2 => {
            if let Ok(ListenAddress::Tcp { port, .. }) = ListenAddress::parse(text) {
                assert!(port > 0);
            }
        }
        3 => {
            // Date formats are written at the start, the end and the extremes of time.
            let format = DateFormat::parse(text);
            for (ms, offset) in [
                (0, 0),
                (1_709_210_096_789, 3600),
                (-8_640_000_000_000_000, -50_400),
                (8_640_000_000_000_000, 50_400),
                (i64::MIN, i32::MIN),
                (i64::MAX, i32::MAX),
                (-1, i32::MIN),
                (1, i32::MAX),
            ] {
                let mut out = Vec::new();
                format.write(ms, offset, &mut out);
                assert!(std::str::from_utf8(&out).is_ok());
            }
        }
        4 => {
            let _ = ScaleCount::parse(text);
        }
        6 => {
            let _ = kelpie_core::cron::time_zone(Some(text));
        }
        7 => {
            let _ = kelpie_config::check_token(text);
        }
        _ => start_flags(text),
    }
});
