//! The runtime metrics of a Node app (Kelpie's shim and PM2's SDK report them under the same
//! PM2 metric ids) shown first among its code metrics, each with what it means (PM2 shows the
//! bare names, and its users ask what they mean: PM2 issue #4875), then the app's own; and the
//! page faults and context switches the daemon reads for any app.

use super::super::format::sdk_metric;
use kelpie_proto::ProcessInfo;
use serde_json::{Map, Value};
use std::io::Write;

/// Each runtime metric's PM2 id and its meaning in one line, in the order they are shown.
pub(in crate::render) const MEANINGS: [(&str, &str); 19] = [
    (
        "internal/libuv/utilization",
        "share of time the event loop was busy; near 100 % it cannot keep up",
    ),
    (
        "internal/libuv/latency/p50",
        "median wait of a ready callback for the event loop",
    ),
    (
        "internal/libuv/latency/p95",
        "1 callback in 20 waited longer: something blocks the loop",
    ),
    (
        "internal/http/builtin/reqs",
        "HTTP requests answered in the last minute",
    ),
    (
        "internal/http/builtin/latency/p50",
        "mean time to answer an HTTP request (last 30-60 s)",
    ),
    (
        "internal/http/builtin/latency/p95",
        "1 HTTP request in 20 took longer than this",
    ),
    (
        "internal/https/builtin/reqs",
        "HTTPS requests answered in the last minute",
    ),
    (
        "internal/https/builtin/latency/p50",
        "mean time to answer an HTTPS request (last 30-60 s)",
    ),
    (
        "internal/https/builtin/latency/p95",
        "1 HTTPS request in 20 took longer than this",
    ),
    (
        "internal/v8/heap/used",
        "heap holding objects; a climb that never comes down is a leak",
    ),
    (
        "internal/v8/heap/total",
        "heap V8 has reserved (used heap plus room to grow)",
    ),
    ("internal/v8/heap/usage", "used heap over heap size"),
    (
        "internal/v8/gc/new/pause/p50",
        "median pause to collect young objects (minor GC, last minute)",
    ),
    (
        "internal/v8/gc/new/pause/p95",
        "1 minor GC pause in 20 was longer than this",
    ),
    (
        "internal/v8/gc/old/pause/p50",
        "median pause to collect the whole heap (major GC, last minute)",
    ),
    (
        "internal/v8/gc/old/pause/p95",
        "1 major GC pause in 20 was longer than this",
    ),
    (
        "internal/libuv/handles",
        "servers, sockets and timers keeping the process alive",
    ),
    (
        "internal/libuv/requests",
        "file system and DNS calls in flight",
    ),
    (
        "internal/libuv/latency/p99",
        "1 callback in 100 waited longer than this",
    ),
];

/// The meaning of a metric entry, and its place in [`MEANINGS`], when it is a runtime metric.
pub(in crate::render) fn meaning(entry: &Value) -> Option<(usize, &'static str)> {
    let id = entry.get("type")?.as_str()?;
    MEANINGS
        .iter()
        .position(|(known, _)| *known == id)
        .map(|at| (at, MEANINGS[at].1))
}

/// The metrics: the runtime's first, in [`MEANINGS`]'s order, with their meaning; then the
/// app's own, by name.
pub(in crate::render) fn ordered(
    monitor: &Map<String, Value>,
) -> Vec<(&str, &Value, Option<&'static str>)> {
    let mut list: Vec<(usize, &str, &Value, Option<&'static str>)> = monitor
        .iter()
        .map(|(name, entry)| match meaning(entry) {
            Some((at, meaning)) => (at, name.as_str(), entry, Some(meaning)),
            None => (MEANINGS.len(), name.as_str(), entry, None),
        })
        .collect();
    // Stable: the app's own keep their name order.
    list.sort_by_key(|(at, ..)| *at);
    list.into_iter()
        .map(|(_, name, entry, meaning)| (name, entry, meaning))
        .collect()
}

/// The "Code metrics" section's lines: name, value with its unit, meaning.
pub(super) fn write_code_metrics(
    out: &mut impl Write,
    monitor: &Map<String, Value>,
) -> std::io::Result<()> {
    let rows: Vec<(&str, String, Option<&str>)> = ordered(monitor)
        .into_iter()
        .map(|(name, entry, meaning)| (name, sdk_metric(entry), meaning))
        .collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (name, value, meaning) in rows {
        match meaning {
            Some(meaning) => writeln!(out, "  {name:<width$}  {value:<value_width$}  {meaning}")?,
            None => writeln!(out, "  {name:<width$}  {value}")?,
        }
    }
    Ok(())
}

/// What the runtime shim of a Bun or Deno app cannot read (docs/observability.md), said rather
/// than shown as zero.
pub(super) fn write_unavailable(
    out: &mut impl Write,
    spec: &kelpie_core::AppSpec,
) -> std::io::Result<()> {
    use kelpie_core::JsRuntime;
    let runtime = match spec.js_runtime() {
        Some(runtime @ (JsRuntime::Bun | JsRuntime::Deno)) => runtime,
        _ => return Ok(()),
    };
    let http = match runtime {
        JsRuntime::Deno => ", HTTP of node:http servers (Deno.serve's are counted)",
        _ => "",
    };
    writeln!(
        out,
        "  not available under {}: Event Loop Utilization, Active handles and requests, GC pauses{http}",
        runtime.name()
    )
}

/// The `page faults` row: minor and major since the process started.
pub(super) fn faults(p: &ProcessInfo) -> String {
    p.counters.map_or_else(
        || "-".into(),
        |c| {
            format!(
                "{} minor (from memory), {} major (read from disk)",
                c.minor_faults, c.major_faults
            )
        },
    )
}

/// The `context switches` row: voluntary and involuntary, of the main thread.
pub(super) fn switches(p: &ProcessInfo) -> String {
    p.counters.map_or_else(
        || "-".into(),
        |c| {
            format!(
                "{} voluntary (waited), {} involuntary (preempted), main thread",
                c.voluntary_switches, c.involuntary_switches
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_metrics_come_first_with_their_meaning_and_the_app_s_after() {
        let monitor: Map<String, Value> = serde_json::from_str(
            r#"{
                "Active handles": {"value": 4, "type": "internal/libuv/handles"},
                "Orders": {"value": 3, "unit": "orders"},
                "Event Loop Utilization": {"value": 12.5, "unit": "%", "type": "internal/libuv/utilization"},
                "A queue": {"value": 1}
            }"#,
        )
        .expect("json");
        let names: Vec<&str> = ordered(&monitor).iter().map(|(n, ..)| *n).collect();
        assert_eq!(
            names,
            [
                "Event Loop Utilization",
                "Active handles",
                "A queue",
                "Orders"
            ]
        );
        let mut text = Vec::new();
        write_code_metrics(&mut text, &monitor).expect("write");
        let text = String::from_utf8(text).expect("utf-8");
        let first = text.lines().next().expect("a line");
        assert!(
            first.contains("12.5 %") && first.contains("event loop was busy"),
            "{text}"
        );
    }
}
