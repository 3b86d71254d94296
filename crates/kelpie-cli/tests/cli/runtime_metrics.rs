//! Runtime metrics where users look (issue 50): a Node app's `axm:monitor` report under PM2's
//! metric ids becomes prom-client's families in base units in `/metrics` (mapped by id, so the
//! real `@pm2/io`'s reports get them too), `describe` shows the runtime's first with what each
//! means, and every app, in any language, gets its page faults and context switches, read by
//! the daemon.

use super::kelpie;
use super::monit::{kelpie_bin, list_rows, Tmux};
use super::monitoring::{http_get, http_get_with, low_port, metrics_problems, promtool, scrape};
use kelpie_testkit::Kelpie;
use std::net::TcpStream;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// A Node app that reports what Kelpie's shim reports, as PM2's SDK does it (`process.send`
/// of an `axm:monitor` message): PM2's names, units and ids, every half second. Started with
/// `--no-pmx`, so the shim's own report does not mix in.
pub(super) const RUNTIME_APP: &str = r#"
const m = (value, unit, type, extra) => Object.assign({ value, unit, type, historic: true }, extra);
const buckets = (counts, count, sum) => ({ histogram: { le: [0.001, 0.01, 0.1, 1, 2, 5], counts, count, sum } });
const report = () => process.send({ type: 'axm:monitor', data: {
  'Heap Size': m(64, 'MiB', 'internal/v8/heap/total'),
  'Used Heap Size': m(32.5, 'MiB', 'internal/v8/heap/used'),
  'Heap Usage': m(50.78, '%', 'internal/v8/heap/usage'),
  'Active handles': m(4, '', 'internal/libuv/handles'),
  'Active requests': m(1, '', 'internal/libuv/requests'),
  'Event Loop Latency': m(1.5, 'ms', 'internal/libuv/latency/p50'),
  'Event Loop Latency p95': m(180, 'ms', 'internal/libuv/latency/p95'),
  'Event Loop Utilization': m(12.5, '%', 'internal/libuv/utilization'),
  'HTTP': m(1000, 'req/min', 'internal/http/builtin/reqs', { total: 1234 }),
  'HTTP Mean Latency': m(20, 'ms', 'internal/http/builtin/latency/p50'),
  'HTTP P95 Latency': m(45, 'ms', 'internal/http/builtin/latency/p95'),
  'HTTPS': m(6, 'req/min', 'internal/https/builtin/reqs', { total: 7 }),
  'HTTPS Mean Latency': m(30, 'ms', 'internal/https/builtin/latency/p50'),
  'HTTPS P95 Latency': m(90, 'ms', 'internal/https/builtin/latency/p95'),
  'GC New Space Pause': m(0.5, 'ms', 'internal/v8/gc/new/pause/p50', buckets([10, 20, 20, 20, 20, 20], 21, 0.05)),
  'GC New Space Pause p95': m(2, 'ms', 'internal/v8/gc/new/pause/p95'),
  'GC Old Space Pause': m(12, 'ms', 'internal/v8/gc/old/pause/p50', buckets([0, 1, 3, 3, 3, 3], 3, 0.036)),
  'GC Old Space Pause p95': m(20, 'ms', 'internal/v8/gc/old/pause/p95'),
  'Orders': m(3, 'orders'),
} });
report();
setInterval(report, 500);
"#;

/// Start `web` on a free low port and wait until it answers; the port.
fn web(k: &Kelpie) -> u16 {
    let port = low_port();
    k.ok(&["web", "--port", &port.to_string()]);
    k.wait_for("the web server", 10 * SECS, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    port
}

/// The value of the sample `series` (name and labels as written) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_node_app_s_runtime_report_becomes_prom_client_families_in_base_units() {
    let Some(promtool) = promtool() else { return };
    let k = kelpie();
    let app = k.write("runtime.js", RUNTIME_APP);
    k.ok(&["start", &app, "--name", "api", "--no-pmx"]);
    let port = web(&k);
    let labels = "app=\"api\",namespace=\"default\",pm_id=\"0\"";
    let mut text = String::new();
    k.wait_for("the runtime families", 15 * SECS, || {
        text = scrape(&k, port);
        text.contains("nodejs_gc_duration_seconds_count{")
    });
    let http = |scheme: &str| format!("{labels},scheme=\"{scheme}\"");
    let gc = |kind: &str, le: &str| format!("{labels},kind=\"{kind}\",le=\"{le}\"");
    let wanted: Vec<(String, f64)> = vec![
        (
            format!("nodejs_heap_size_total_bytes{{{labels}}}"),
            64.0 * 1048576.0,
        ),
        (
            format!("nodejs_heap_size_used_bytes{{{labels}}}"),
            32.5 * 1048576.0,
        ),
        (
            format!("nodejs_eventloop_lag_p50_seconds{{{labels}}}"),
            0.0015,
        ),
        (
            format!("nodejs_eventloop_lag_p95_seconds{{{labels}}}"),
            0.18,
        ),
        (
            format!("nodejs_eventloop_utilization_ratio{{{labels}}}"),
            0.125,
        ),
        (format!("nodejs_active_handles_total{{{labels}}}"), 4.0),
        (format!("nodejs_active_requests_total{{{labels}}}"), 1.0),
        (
            format!("kelpie_node_http_server_requests_total{{{}}}", http("http")),
            1234.0,
        ),
        (
            format!(
                "kelpie_node_http_server_requests_total{{{}}}",
                http("https")
            ),
            7.0,
        ),
        (
            format!(
                "kelpie_node_http_server_latency_mean_seconds{{{}}}",
                http("http")
            ),
            0.02,
        ),
        (
            format!(
                "kelpie_node_http_server_latency_p95_seconds{{{}}}",
                http("http")
            ),
            0.045,
        ),
        (
            format!(
                "kelpie_node_http_server_latency_mean_seconds{{{}}}",
                http("https")
            ),
            0.03,
        ),
        (
            format!(
                "kelpie_node_http_server_latency_p95_seconds{{{}}}",
                http("https")
            ),
            0.09,
        ),
        (
            format!(
                "nodejs_gc_duration_seconds_bucket{{{}}}",
                gc("minor", "0.001")
            ),
            10.0,
        ),
        (
            format!(
                "nodejs_gc_duration_seconds_bucket{{{}}}",
                gc("minor", "0.01")
            ),
            20.0,
        ),
        (
            format!(
                "nodejs_gc_duration_seconds_bucket{{{}}}",
                gc("minor", "+Inf")
            ),
            21.0,
        ),
        (
            format!("nodejs_gc_duration_seconds_count{{{labels},kind=\"minor\"}}"),
            21.0,
        ),
        (
            format!("nodejs_gc_duration_seconds_sum{{{labels},kind=\"minor\"}}"),
            0.05,
        ),
        (
            format!(
                "nodejs_gc_duration_seconds_bucket{{{}}}",
                gc("major", "0.1")
            ),
            3.0,
        ),
        (
            format!(
                "nodejs_gc_duration_seconds_bucket{{{}}}",
                gc("major", "+Inf")
            ),
            3.0,
        ),
        (
            format!("nodejs_gc_duration_seconds_sum{{{labels},kind=\"major\"}}"),
            0.036,
        ),
        // The old series stays one more release beside the new ones, in PM2's units.
        (
            format!("kelpie_app_metric{{{labels},name=\"Heap Size\"}}"),
            64.0,
        ),
        (
            format!("kelpie_app_metric{{{labels},name=\"Orders\"}}"),
            3.0,
        ),
    ];
    for (series, expected) in &wanted {
        let got = value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(
            (got - expected).abs() <= expected.abs() * 1e-9,
            "{series} = {got}, not {expected}"
        );
    }
    // describe: the runtime's first, each with its meaning, then the app's own.
    let described = k.ok(&["describe", "api"]);
    let section: Vec<&str> = described
        .split("Code metrics (@pm2/io):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no code metrics:\n{described}"))
        .lines()
        .collect();
    assert!(
        section[0]
            .trim_start()
            .starts_with("Event Loop Utilization")
            && section[0].contains("12.5 %")
            && section[0].contains("event loop was busy"),
        "{described}"
    );
    let at = |name: &str| {
        section
            .iter()
            .position(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name}:\n{described}"))
    };
    assert!(at("HTTP P95 Latency") < at("Orders"), "{described}");
    assert!(at("GC Old Space Pause p95") < at("Orders"), "{described}");
    assert!(section[at("HTTP")].contains("last minute"), "{described}");
    // Metrics without a runtime id have no family of their own.
    assert!(!text.contains("Orders\",") || !text.contains("nodejs_orders"));
    let problems = metrics_problems(&promtool, k.home(), &text);
    assert!(problems.is_empty(), "promtool check metrics:\n{problems:?}");
}

/// Page faults and context switches of the `kind`s in /metrics for pm_id 0: (first, second).
fn counters(text: &str, family: &str, kinds: [&str; 2]) -> Option<(f64, f64)> {
    let labels = "app=\"work\",namespace=\"default\",pm_id=\"0\"";
    let read = |kind: &str| value(text, &format!("{family}{{{labels},kind=\"{kind}\"}}"));
    Some((read(kinds[0])?, read(kinds[1])?))
}

#[test]
fn any_app_s_page_faults_and_context_switches_move_while_it_works() {
    let k = kelpie();
    // A shell: each `sleep` it waits for gives the CPU up, each new child faults pages in.
    let script = k.write_script("work.sh", "#!/bin/sh\nwhile :; do sleep 0.05; done\n");
    k.ok(&["start", &script, "--name", "work"]);
    let port = web(&k);
    let mut first = None;
    k.wait_for("the first counters", 20 * SECS, || {
        let text = scrape(&k, port);
        first = counters(
            &text,
            "kelpie_app_context_switches_total",
            ["voluntary", "involuntary"],
        )
        .zip(counters(
            &text,
            "kelpie_app_page_faults_total",
            ["minor", "major"],
        ));
        first.is_some()
    });
    let (switches, faults) = first.expect("read");
    assert!(faults.0 > 0.0, "minor faults {faults:?}");
    // Read again at most every 10 s while it runs: both move.
    k.wait_for("the counters to move", 40 * SECS, || {
        let text = scrape(&k, port);
        let now = counters(
            &text,
            "kelpie_app_context_switches_total",
            ["voluntary", "involuntary"],
        )
        .zip(counters(
            &text,
            "kelpie_app_page_faults_total",
            ["minor", "major"],
        ));
        now.is_some_and(|(s, f)| s.0 > switches.0 && f.0 > faults.0)
    });
    // And in jlist (Kelpie's key, after PM2's) and describe.
    let env = k.app("work")["pm2_env"].clone();
    let counted = &env["counters"];
    assert!(
        counted["voluntary_switches"]
            .as_u64()
            .is_some_and(|v| v > 0),
        "{env}"
    );
    assert!(
        counted["minor_faults"].as_u64().is_some_and(|v| v > 0),
        "{env}"
    );
    let described = k.ok(&["describe", "work"]);
    for word in ["page faults", "context switches"] {
        assert!(described.contains(word), "{word}:\n{described}");
    }
    // And in the HTTP API, which the web page's detail panel shows.
    let api = http_get(&k, port, "/api/processes/work");
    let listed: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    assert!(
        listed[0]["counters"]["involuntary_switches"].is_u64(),
        "{listed}"
    );
}

#[test]
fn monit_shows_the_runtime_metrics_first_and_the_loop_in_the_app_s_row() {
    let k = kelpie();
    let app = k.write("runtime.js", RUNTIME_APP);
    k.ok(&["start", &app, "--name", "api", "--no-pmx"]);
    k.wait_for("the report", 10 * SECS, || {
        k.app("api")["pm2_env"]["axm_monitor"]["Orders"].is_object()
    });
    let Some(term) = Tmux::start(&k) else { return };
    term.type_line(&format!("{} monit", kelpie_bin().display()));
    let screen = term.wait_for_screen("api's row and code metrics", 15 * SECS, |s| {
        s.contains("Code metrics (@pm2/io)")
            && list_rows(s)
                .iter()
                .any(|r| r.contains(" api ") && r.contains("180ms"))
    });
    // The row: event loop utilisation and latency p95.
    let row = list_rows(&screen)
        .into_iter()
        .find(|r| r.contains(" api "))
        .expect("api's row");
    assert!(row.contains("12%") || row.contains("13%"), "{screen}");
    // The panel, filled column by column: the runtime's first, so on an 80x24 terminal the
    // app's own metric is the one left for `describe`.
    let panel: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("Code metrics (@pm2/io)"))
        .skip(1)
        .take_while(|l| !l.starts_with('└'))
        .collect();
    assert!(
        panel
            .first()
            .is_some_and(|l| l.contains("Event Loop Utilization")),
        "{screen}"
    );
    assert!(screen.contains("Event Loop Latency p95"), "{screen}");
    assert!(!screen.contains("Orders"), "{screen}");
    term.keys(&["q"]);
}

/// `count` HTTP GETs to `127.0.0.1:port`, each on its own connection, each answered.
fn get_many(port: u16, count: usize) {
    for _ in 0..count {
        http_get_with("", port, "/");
    }
}

#[test]
fn the_shim_s_report_of_a_real_server_reaches_metrics() {
    let Some(promtool) = promtool() else { return };
    let k = kelpie();
    // Kelpie's own shim reports (no --no-pmx): a plain server that collects its garbage
    // twice on purpose (major GCs).
    let app = k.write(
        "server.js",
        "require('http').createServer((req, res) => res.end('ok'))\n\
         .listen(process.env.APP_PORT, () => { global.gc(); global.gc(); });\n",
    );
    let app_port = low_port();
    let app_port_text = app_port.to_string();
    let mut start = k.command(&["start", &app, "--name", "server", "--node-args=--expose-gc"]);
    start.env("APP_PORT", &app_port_text);
    let out = start.output().expect("start");
    assert!(out.status.success(), "{out:?}");
    k.wait_for("the server", 15 * SECS, || {
        TcpStream::connect(("127.0.0.1", app_port)).is_ok()
    });
    get_many(app_port, 40);
    let port = web(&k);
    let labels = "app=\"server\",namespace=\"default\",pm_id=\"0\"";
    let requests = format!("kelpie_node_http_server_requests_total{{{labels},scheme=\"http\"}}");
    let major = format!("nodejs_gc_duration_seconds_count{{{labels},kind=\"major\"}}");
    let mut text = String::new();
    k.wait_for("40 requests and the GCs in /metrics", 20 * SECS, || {
        text = scrape(&k, port);
        value(&text, &requests) == Some(40.0) && value(&text, &major).is_some_and(|n| n >= 2.0)
    });
    let used = value(&text, &format!("nodejs_heap_size_used_bytes{{{labels}}}")).expect("heap");
    assert!(used > 1e6, "{used} bytes of heap used");
    let ratio = value(
        &text,
        &format!("nodejs_eventloop_utilization_ratio{{{labels}}}"),
    )
    .expect("utilisation");
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(
        value(
            &text,
            &format!("kelpie_node_http_server_latency_p95_seconds{{{labels},scheme=\"http\"}}")
        )
        .is_some_and(|s| (0.0..10.0).contains(&s)),
        "{text}"
    );
    let problems = metrics_problems(&promtool, k.home(), &text);
    assert!(problems.is_empty(), "promtool check metrics:\n{problems:?}");
}

#[test]
fn an_app_with_the_real_pm2_io_gets_the_same_families() {
    let Some(modules) = super::tools::installed_or_skip(&super::tools::npm_packages(
        "pm2-io-runtime",
        &["@pm2/io@6.1.0"],
    )) else {
        return;
    };
    let k = kelpie();
    let file = k.write(
        "io.js",
        "require('@pm2/io');\nsetInterval(() => {}, 1000);\n",
    );
    std::os::unix::fs::symlink(
        &modules,
        std::path::Path::new(&file).with_file_name("node_modules"),
    )
    .expect("link node_modules");
    k.ok(&["start", &file, "--name", "io"]);
    let port = web(&k);
    let labels = "app=\"io\",namespace=\"default\",pm_id=\"0\"";
    let mut text = String::new();
    // @pm2/io's own heap figures (sent as text, "10.48"), found by their PM2 ids.
    k.wait_for("@pm2/io's heap in /metrics", 30 * SECS, || {
        text = scrape(&k, port);
        value(&text, &format!("nodejs_heap_size_used_bytes{{{labels}}}")).is_some()
    });
    let used = value(&text, &format!("nodejs_heap_size_used_bytes{{{labels}}}")).expect("used");
    let total = value(&text, &format!("nodejs_heap_size_total_bytes{{{labels}}}")).expect("total");
    assert!(used > 1e6 && total >= used, "used {used}, total {total}");
    let monitor = k.app("io")["pm2_env"]["axm_monitor"].clone();
    assert!(monitor["Heap Size"]["value"].is_string(), "{monitor}");
}
