//! The Node runtime's metrics in base units under prom-client's names (`nodejs_*`), so that the
//! stock Grafana Node dashboards read them, and each instance's page faults and context
//! switches. The runtime's are found by the PM2 metric id (`type`) of each `axm_monitor` entry,
//! not by who sent it: Kelpie's shim and the real `@pm2/io` use the same ids, so both get the
//! same families. Each family appears once even with no sample (its HELP and TYPE), so a
//! dashboard's query is valid before the first Node app reports.

use super::{sdk_number, Family, Named};
use crate::supervisor_channel::InstanceMetrics;
use serde_json::Value;

/// A gauge read from one PM2 metric id: family, help, id, and to base units (multiplied by
/// the first, divided by the second: ms / 1000 gives 0.18 s, where × 0.001 gives
/// 0.18000000000000002).
type Gauge = (&'static str, &'static str, &'static str, (f64, f64));

const MIB: (f64, f64) = (1024.0 * 1024.0, 1.0);
const MS: (f64, f64) = (1.0, 1000.0);
const PERCENT: (f64, f64) = (1.0, 100.0);
const PLAIN: (f64, f64) = (1.0, 1.0);

const GAUGES: [Gauge; 9] = [
    (
        "nodejs_heap_size_total_bytes",
        "V8 heap reserved by the instance's Node process, in bytes (PM2's Heap Size).",
        "internal/v8/heap/total",
        MIB,
    ),
    (
        "nodejs_heap_size_used_bytes",
        "V8 heap in use by the instance's Node process, in bytes (PM2's Used Heap Size).",
        "internal/v8/heap/used",
        MIB,
    ),
    (
        "nodejs_eventloop_lag_p50_seconds",
        "Median delay of the instance's event loop, in seconds (PM2's Event Loop Latency).",
        "internal/libuv/latency/p50",
        MS,
    ),
    (
        "nodejs_eventloop_lag_p95_seconds",
        "95th percentile delay of the instance's event loop, in seconds (PM2's Event Loop Latency p95).",
        "internal/libuv/latency/p95",
        MS,
    ),
    (
        "nodejs_eventloop_utilization_ratio",
        "Share of the last report's time the instance's event loop was busy, 0 to 1.",
        "internal/libuv/utilization",
        PERCENT,
    ),
    (
        "nodejs_active_handles_total",
        "Handles keeping the instance's event loop alive: servers, sockets, timers (PM2's Active handles).",
        "internal/libuv/handles",
        PLAIN,
    ),
    (
        "nodejs_active_requests_total",
        "Requests in flight in the instance's libuv: file system and DNS calls (PM2's Active requests).",
        "internal/libuv/requests",
        PLAIN,
    ),
    (
        "kelpie_node_http_server_latency_mean_seconds",
        "Mean time the instance's Node HTTP servers took to answer over the last 30-60 s, by scheme, in seconds (PM2's HTTP Mean Latency; @pm2/io sends its median under this id).",
        "internal/http/builtin/latency/p50",
        MS,
    ),
    (
        "kelpie_node_http_server_latency_p95_seconds",
        "95th percentile time the instance's Node HTTP servers took to answer over the last 30-60 s, by scheme, in seconds (PM2's HTTP P95 Latency).",
        "internal/http/builtin/latency/p95",
        MS,
    ),
];

/// An HTTPS id as its HTTP twin, and the scheme's slot (0: http, 1: https).
fn by_scheme(kind: &str) -> (usize, std::borrow::Cow<'_, str>) {
    match kind.strip_prefix("internal/https/builtin/") {
        Some(rest) => (1, format!("internal/http/builtin/{rest}").into()),
        None => (0, kind.into()),
    }
}

/// The runtime figures of one instance, found in one pass over its `axm_monitor`.
#[derive(Default)]
struct Runtime<'a> {
    /// By [`GAUGES`] index, and for the two HTTP latencies by scheme (http, https).
    gauges: [[Option<f64>; 2]; GAUGES.len()],
    /// Cumulative requests, http and https.
    requests: [Option<f64>; 2],
    /// GC histograms, minor then major.
    gc: [Option<&'a Value>; 2],
}

impl<'a> Runtime<'a> {
    fn of(m: &'a InstanceMetrics) -> Option<Runtime<'a>> {
        let mut found = Runtime::default();
        let mut any = false;
        for entry in m.info.sdk.monitor.values() {
            let Some(kind) = entry.get("type").and_then(Value::as_str) else {
                continue;
            };
            let (scheme, id) = by_scheme(kind);
            let value = || entry.get("value").and_then(sdk_number);
            if let Some(index) = GAUGES.iter().position(|gauge| gauge.2 == id) {
                found.gauges[index][scheme] =
                    value().map(|v| v * GAUGES[index].3 .0 / GAUGES[index].3 .1);
                any = true;
            } else if id == "internal/http/builtin/reqs" {
                found.requests[scheme] = entry.get("total").and_then(sdk_number);
                any = true;
            } else if let Some(space) = kind.strip_prefix("internal/v8/gc/") {
                let slot = match space {
                    "new/pause/p50" => 0,
                    "old/pause/p50" => 1,
                    _ => continue,
                };
                found.gc[slot] = entry.get("histogram");
                any = true;
            }
        }
        any.then_some(found)
    }
}

/// The runtime families, for every instance whose SDK reported any of them.
pub(super) fn runtime_families(text: &mut String, named: &[Named]) {
    let found: Vec<(&Named, Runtime)> = named
        .iter()
        .filter(|(m, _)| !m.info.sdk.monitor.is_empty())
        .filter_map(|n| Runtime::of(n.0).map(|r| (n, r)))
        .collect();
    for (index, (name, help, id, _)) in GAUGES.iter().enumerate() {
        let http = id.starts_with("internal/http/");
        let mut family = Family::new(text, name, "gauge", help);
        for ((_, [app, namespace, pm_id]), runtime) in &found {
            for (slot, scheme) in ["http", "https"].iter().enumerate() {
                let Some(value) = runtime.gauges[index][slot] else {
                    continue;
                };
                match http {
                    true => {
                        family.sample(name, &[*app, *namespace, *pm_id, ("scheme", scheme)], value)
                    }
                    false => family.sample(name, &[*app, *namespace, *pm_id], value),
                }
            }
        }
    }
    let name = "kelpie_node_http_server_requests_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Requests the instance's Node HTTP servers answered since its process started, by scheme (http, https).",
    );
    for ((_, [app, namespace, pm_id]), runtime) in &found {
        for (slot, scheme) in ["http", "https"].iter().enumerate() {
            if let Some(total) = runtime.requests[slot] {
                family.sample(name, &[*app, *namespace, *pm_id, ("scheme", scheme)], total);
            }
        }
    }
    gc_family(text, &found);
}

/// `nodejs_gc_duration_seconds`: prom-client's histogram of GC pauses, by kind (minor: new
/// space, major: old space), from the cumulative buckets the shim sends.
fn gc_family(text: &mut String, found: &[(&Named, Runtime)]) {
    let name = "nodejs_gc_duration_seconds";
    let mut family = Family::new(
        text,
        name,
        "histogram",
        "Garbage collection pauses of the instance's Node process since it started, by kind (minor: new space, major: old space), in seconds.",
    );
    for ((_, [app, namespace, pm_id]), runtime) in found {
        for (slot, kind) in ["minor", "major"].iter().enumerate() {
            let Some((buckets, count, sum)) = runtime.gc[slot].and_then(histogram) else {
                continue;
            };
            let labels = [*app, *namespace, *pm_id, ("kind", *kind)];
            for (le, cumulative) in buckets {
                let le = super::number(le);
                let mut with_le = labels.to_vec();
                with_le.push(("le", le.as_str()));
                family.sample("nodejs_gc_duration_seconds_bucket", &with_le, cumulative);
            }
            let mut inf = labels.to_vec();
            inf.push(("le", "+Inf"));
            family.sample("nodejs_gc_duration_seconds_bucket", &inf, count);
            family.sample("nodejs_gc_duration_seconds_sum", &labels, sum);
            family.sample("nodejs_gc_duration_seconds_count", &labels, count);
        }
    }
}

/// Cumulative buckets (upper bound, count), the count and the sum.
type Histogram = (Vec<(f64, f64)>, f64, f64);

/// A histogram as the shim sends it (`{le: [...], counts: [...], count, sum}`: cumulative
/// counts, seconds), or `None` when it is not one (lengths differ, bounds not rising, counts
/// falling or over the total): a malformed one is left out rather than shown wrong.
fn histogram(value: &Value) -> Option<Histogram> {
    let numbers = |key: &str| -> Option<Vec<f64>> {
        value
            .get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_f64().filter(|f| f.is_finite()))
            .collect()
    };
    let (le, counts) = (numbers("le")?, numbers("counts")?);
    let count = value.get("count").and_then(sdk_number)?;
    let sum = value.get("sum").and_then(sdk_number)?;
    let rising = le.windows(2).all(|w| w[0] < w[1]);
    let cumulative = counts.windows(2).all(|w| w[0] <= w[1]);
    let within = counts.last().is_none_or(|last| *last <= count);
    (le.len() == counts.len() && rising && cumulative && within)
        .then(|| (le.into_iter().zip(counts).collect(), count, sum))
}

/// `kelpie_app_page_faults_total` and `kelpie_app_context_switches_total`, for every
/// instance whose process's counters were read (any language).
pub(super) fn counter_families(text: &mut String, named: &[Named]) {
    let name = "kelpie_app_page_faults_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Page faults of the instance's main process since it started, by kind (minor: served from memory, major: read from disk).",
    );
    for (m, [app, namespace, pm_id]) in named {
        if let Some(c) = &m.info.counters {
            for (kind, value) in [("minor", c.minor_faults), ("major", c.major_faults)] {
                family.sample(
                    name,
                    &[*app, *namespace, *pm_id, ("kind", kind)],
                    value as f64,
                );
            }
        }
    }
    let name = "kelpie_app_context_switches_total";
    let mut family = Family::new(
        text,
        name,
        "counter",
        "Context switches of the instance's main thread since its process started, by kind (voluntary: it waited, involuntary: the kernel took the CPU from it).",
    );
    for (m, [app, namespace, pm_id]) in named {
        if let Some(c) = &m.info.counters {
            let kinds = [
                ("voluntary", c.voluntary_switches),
                ("involuntary", c.involuntary_switches),
            ];
            for (kind, value) in kinds {
                family.sample(
                    name,
                    &[*app, *namespace, *pm_id, ("kind", kind)],
                    value as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_taken_only_when_it_is_one() {
        let good =
            serde_json::json!({"le": [0.001, 0.01], "counts": [1, 3], "count": 4, "sum": 0.02});
        let (buckets, count, sum) = histogram(&good).expect("a histogram");
        assert_eq!(buckets, [(0.001, 1.0), (0.01, 3.0)]);
        assert_eq!((count, sum), (4.0, 0.02));
        for bad in [
            serde_json::json!({"le": [0.001, 0.01], "counts": [1], "count": 4, "sum": 0.02}),
            serde_json::json!({"le": [0.01, 0.001], "counts": [1, 3], "count": 4, "sum": 0.02}),
            serde_json::json!({"le": [0.001, 0.01], "counts": [3, 1], "count": 4, "sum": 0.02}),
            serde_json::json!({"le": [0.001, 0.01], "counts": [1, 5], "count": 4, "sum": 0.02}),
            serde_json::json!({"le": [0.001, 0.01], "counts": [1, 3], "sum": 0.02}),
            serde_json::json!("12"),
        ] {
            assert!(histogram(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn https_ids_read_as_their_http_twins() {
        assert_eq!(
            by_scheme("internal/https/builtin/latency/p95"),
            (1, "internal/http/builtin/latency/p95".into())
        );
        assert_eq!(
            by_scheme("internal/http/builtin/reqs"),
            (0, "internal/http/builtin/reqs".into())
        );
    }
}
