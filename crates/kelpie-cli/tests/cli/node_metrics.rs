//! The runtime metrics Kelpie's Node shim sends for every Node app without `@pm2/io` (issue
//! 50), read where PM2's tools read them: `jlist`'s `pm2_env.axm_monitor`. Real Node apps: one
//! that blocks its event loop, an HTTP and an HTTPS server under real requests, an
//! allocation-heavy loop counting its own GC entries; and none of the shim's keys from an app
//! with the real `@pm2/io` or with `pmx: false`.

use super::kelpie;
use super::pm2_runtime::{app, pm2_io};
use super::tools::program;
use kelpie_testkit::Kelpie;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);

/// The keys only the shim sends (the rest are `@pm2/io`'s too).
const SHIM_ONLY: &[&str] = &[
    "Event Loop Utilization",
    "GC New Space Pause",
    "GC New Space Pause p95",
    "GC Old Space Pause",
    "GC Old Space Pause p95",
    "HTTPS",
];

fn monitor(k: &Kelpie, name: &str) -> Value {
    k.app(name)["pm2_env"]["axm_monitor"].clone()
}

/// A metric's value as a number (the shim sends some as text, as `@pm2/io` does).
fn value(monitor: &Value, key: &str) -> Option<f64> {
    let v = &monitor[key]["value"];
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `count` GET requests to `url`, 10 at a time, from a Node client outside Kelpie; waits for
/// all of them (each must answer 200).
fn requests(k: &Kelpie, url: &str, count: u32) {
    let client = k.write(
        "client.js",
        "const [url, total] = [process.argv[2], Number(process.argv[3])];\n\
         const lib = require(url.startsWith('https') ? 'https' : 'http');\n\
         const agent = new lib.Agent({ keepAlive: true, maxSockets: 10 });\n\
         let sent = 0, done = 0;\n\
         const one = () => {\n\
           if (sent >= total) return;\n\
           sent++;\n\
           lib.get(url, { agent, rejectUnauthorized: false }, (res) => {\n\
             if (res.statusCode !== 200) { console.error('status', res.statusCode); process.exit(1); }\n\
             res.resume();\n\
             res.on('end', () => { if (++done === total) { agent.destroy(); } else one(); });\n\
           }).on('error', (e) => { console.error(e.message); process.exit(1); });\n\
         };\n\
         for (let i = 0; i < 10; i++) one();\n",
    );
    let out = Command::new("node")
        .args([client.as_str(), url, &count.to_string()])
        .output()
        .expect("run the Node client");
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An app blocking its event loop 200 ms every 2 s: the delay monitor arms (the app is busy)
/// and the loop's latency p95 says 200 ms, where a plain percentile of its samples says ~0.
#[test]
fn a_blocked_event_loop_shows_its_latency_p95_within_seconds() {
    let _heavy = super::heavy();
    let k = kelpie();
    let script = k.write(
        "blocking.js",
        "setInterval(() => { const t = Date.now(); while (Date.now() - t < 200); }, 2000);\n",
    );
    k.ok(&["start", &script, "--name", "blocking"]);
    let started = Instant::now();
    // 5 s on an idle machine; a loaded CI machine may take longer to start Node.
    k.wait_for("Event Loop Latency p95 >= 150 ms", 30 * SECS, || {
        value(&monitor(&k, "blocking"), "Event Loop Latency p95").is_some_and(|ms| ms >= 150.0)
    });
    let m = monitor(&k, "blocking");
    eprintln!("p95 >= 150 ms after {:?}: {m}", started.elapsed());
    assert_eq!(m["Event Loop Latency p95"]["unit"], "ms");
    assert_eq!(
        m["Event Loop Latency p95"]["type"],
        "internal/libuv/latency/p95"
    );
    let p95 = value(&m, "Event Loop Latency p95").expect("p95");
    assert!(p95 < 1000.0, "a 200 ms block, not more: {m}");
    let elu = &m["Event Loop Utilization"];
    assert_eq!(elu["unit"], "%", "{m}");
    assert_eq!(elu["type"], "internal/libuv/utilization");
    let busy = elu["value"].as_f64().expect("a number");
    assert!(busy > 0.0 && busy <= 100.0, "{m}");
}

/// 1 000 requests to a plain `http` server whose handler answers after 20 ms: `HTTP` says
/// 1 000 (requests in the last minute), the mean is near 20 ms; 50 requests to an `https`
/// server count under `HTTPS`. No HTTP key before the first request.
#[test]
fn http_and_https_requests_are_counted_per_minute_with_their_latency() {
    let openssl = program("openssl").expect("openssl, to make the HTTPS server's certificate");
    let _heavy = super::heavy();
    let k = kelpie();
    let dir = k.home().join("tls");
    std::fs::create_dir_all(&dir).expect("tls dir");
    let made = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let script = k.write(
        "servers.js",
        &format!(
            "const fs = require('fs');\n\
             require('http').createServer((req, res) => setTimeout(() => res.end('ok'), 20)).listen(24971);\n\
             require('https').createServer({{ key: fs.readFileSync('{dir}/key.pem'), cert: fs.readFileSync('{dir}/cert.pem') }},\n\
               (req, res) => res.end('ok')).listen(24972);\n",
            dir = dir.display()
        ),
    );
    k.ok(&["start", &script, "--name", "web"]);
    k.wait_for("the runtime metrics", 20 * SECS, || {
        monitor(&k, "web")["Event Loop Latency"].is_object()
    });
    let before = monitor(&k, "web");
    assert!(before["HTTP"].is_null(), "no request yet: {before}");
    assert!(before["HTTP Mean Latency"].is_null(), "{before}");
    requests(&k, "http://127.0.0.1:24971/", 1000);
    requests(&k, "https://127.0.0.1:24972/", 50);
    k.wait_for("HTTP 1000 and HTTPS 50", 20 * SECS, || {
        let m = monitor(&k, "web");
        m["HTTP"]["total"] == 1000 && m["HTTPS"]["total"] == 50
    });
    let m = monitor(&k, "web");
    assert_eq!(m["HTTP"]["value"], 1000, "a true per-minute count: {m}");
    assert_eq!(m["HTTP"]["unit"], "req/min");
    assert_eq!(m["HTTP"]["type"], "internal/http/builtin/reqs");
    let mean = value(&m, "HTTP Mean Latency").expect("mean");
    assert!((19.0..250.0).contains(&mean), "handler waits 20 ms: {m}");
    assert_eq!(
        m["HTTP Mean Latency"]["type"],
        "internal/http/builtin/latency/p50"
    );
    let p95 = value(&m, "HTTP P95 Latency").expect("p95");
    assert!((19.0..1000.0).contains(&p95), "{m}");
    assert_eq!(m["HTTPS"]["value"], 50, "{m}");
    assert_eq!(m["HTTPS"]["type"], "internal/https/builtin/reqs");
    assert!(value(&m, "HTTPS P95 Latency").is_some(), "{m}");
    assert_eq!(
        m["HTTPS Mean Latency"]["type"],
        "internal/https/builtin/latency/p50"
    );
}

/// An allocation-heavy loop: the GC entries the shim counts (new and old space) are the
/// entries the app itself observes (every entry of every batch), and the histogram's buckets
/// are cumulative.
#[test]
fn gc_pauses_count_every_entry_the_app_observes() {
    let _heavy = super::heavy();
    let k = kelpie();
    let seen = k.home().join("gc-seen");
    let script = k.write(
        "churn.js",
        &format!(
            "const {{ PerformanceObserver }} = require('perf_hooks');\n\
             const fs = require('fs');\n\
             let seen = 0;\n\
             new PerformanceObserver((list) => {{\n\
               seen += list.getEntries().length;\n\
               fs.writeFileSync('{file}', String(seen));\n\
             }}).observe({{ entryTypes: ['gc'] }});\n\
             let keep = [];\n\
             let rounds = 0;\n\
             const churn = () => {{\n\
               const t = Date.now();\n\
               while (Date.now() - t < 50) {{ keep.push(new Array(1000).fill(rounds)); if (keep.length > 2000) keep = []; }}\n\
               if (++rounds < 40) setTimeout(churn, 10);\n\
             }};\n\
             churn();\n\
             setInterval(() => {{}}, 1000);\n",
            file = seen.display()
        ),
    );
    k.ok(&["start", &script, "--name", "churn"]);
    let gc_count = |m: &Value| {
        ["GC New Space Pause", "GC Old Space Pause"]
            .iter()
            .map(|key| m[key]["histogram"]["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let observed = || {
        std::fs::read_to_string(&seen)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    k.wait_for("the shim's GC count equal to the app's", 60 * SECS, || {
        let shim = gc_count(&monitor(&k, "churn"));
        shim >= 20 && shim == observed()
    });
    let m = monitor(&k, "churn");
    for (key, kind) in [("GC New Space Pause", "new"), ("GC Old Space Pause", "old")] {
        let entry = &m[key];
        if entry.is_null() {
            continue; // a kind that never ran has no key, as PM2's HTTP keys before a request
        }
        assert_eq!(entry["unit"], "ms", "{m}");
        assert_eq!(entry["type"], format!("internal/v8/gc/{kind}/pause/p50"));
        assert_eq!(
            m[format!("{key} p95")]["type"],
            format!("internal/v8/gc/{kind}/pause/p95")
        );
        let histogram = &entry["histogram"];
        let le: Vec<f64> = serde_json::from_value(histogram["le"].clone()).expect("le");
        assert_eq!(le, [0.001, 0.01, 0.1, 1.0, 2.0, 5.0]);
        let counts: Vec<u64> = serde_json::from_value(histogram["counts"].clone()).expect("counts");
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative: {m}");
        assert!(counts[5] <= histogram["count"].as_u64().expect("count"));
        assert!(histogram["sum"].as_f64().is_some_and(|s| s > 0.0), "{m}");
    }
    assert!(m["GC New Space Pause"].is_object(), "minor GCs ran: {m}");
}

/// An app with the real `@pm2/io` reports its own metrics (the shim stays quiet: no double
/// reporting), and `pmx: false` turns the shim's metrics and `axm_options` off; otherwise the
/// shim says in `axm_options` what PM2's agent says (module_name: the app's name).
#[test]
fn apps_with_pm2_io_or_pmx_false_get_none_of_the_shim_s_metrics() {
    let Some(modules) = pm2_io() else {
        return;
    };
    let k = kelpie();
    let server = |port: u16, extra: &str| {
        format!(
            "{extra}\n\
             require('http').createServer((req, res) => res.end('ok')).listen({port});\n\
             const keep = [];\n\
             setInterval(() => {{ for (let i = 0; i < 20000; i++) keep[i % 5000] = {{ i }}; }}, 20);\n"
        )
    };
    let with_io = app(
        &k,
        &modules,
        "with-io.js",
        &server(24973, "const io = require('@pm2/io');"),
    );
    k.ok(&["start", &with_io, "--name", "with-io"]);
    let quiet = k.write(
        "quiet.js",
        &server(
            24974,
            "setTimeout(() => process.send({ type: 'axm:monitor', data: { own: { value: 1 } } }), 3000);",
        ),
    );
    k.ok(&["start", &quiet, "--name", "quiet", "--no-pmx"]);
    let plain = k.write("plain.js", "setInterval(() => {}, 1000);\n");
    k.ok(&["start", &plain, "--name", "plain"]);
    k.wait_for("@pm2/io's metrics", 20 * SECS, || {
        monitor(&k, "with-io")["Event Loop Latency"].is_object()
    });
    requests(&k, "http://127.0.0.1:24973/", 20);
    requests(&k, "http://127.0.0.1:24974/", 20);
    // @pm2/io's own HTTP metric (its meter), and the quiet app's own metric sent after 3 s.
    k.wait_for(
        "@pm2/io's HTTP and the quiet app's own metric",
        30 * SECS,
        || monitor(&k, "with-io")["HTTP"].is_object() && monitor(&k, "quiet")["own"].is_object(),
    );
    // pacing: the window is what is tested: two periods of the shim's timer, in which a shim
    // running beside @pm2/io would have reported (nothing reports that it did not).
    std::thread::sleep(2 * SECS);
    let io = monitor(&k, "with-io");
    for key in SHIM_ONLY {
        assert!(
            io[key].is_null(),
            "{key} from the shim beside @pm2/io: {io}"
        );
    }
    assert!(
        io["HTTP"]["total"].is_null(),
        "@pm2/io's HTTP, not the shim's: {io}"
    );
    let q = monitor(&k, "quiet");
    assert_eq!(q.as_object().map(|m| m.len()), Some(1), "only its own: {q}");
    let quiet_env = &k.app("quiet")["pm2_env"];
    assert_eq!(quiet_env["axm_options"], serde_json::json!({}), "no agent");
    // The shim as PM2's agent: its module name is the app's.
    let plain_env = &k.app("plain")["pm2_env"];
    assert_eq!(
        plain_env["axm_options"]["module_name"], "plain",
        "{plain_env}"
    );
    assert_eq!(plain_env["axm_options"]["metrics"]["http"], true);
}

/// `append_env_to_name`: PM2's agent names its module after the app's full name, so
/// `prettylist` shows the name three times (`name`, `pm2_env.name`, `axm_options.module_name`);
/// so does Kelpie's.
#[test]
fn append_env_to_name_shows_the_name_as_pm2_s_agent_does() {
    let k = kelpie();
    let script = k.write("api.js", "setInterval(() => {}, 1000);\n");
    let config = k.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [{{ name: 'api', script: '{script}', append_env_to_name: true,\n\
             env_production: {{ NODE_ENV: 'production' }} }}] }};\n"
        ),
    );
    k.ok(&["start", &config, "--env", "production"]);
    k.wait_for("the agent's options", 20 * SECS, || {
        k.app("api-production")["pm2_env"]["axm_options"]["module_name"] == "api-production"
    });
    let pretty = k.ok(&["prettylist"]);
    let named = pretty
        .lines()
        .filter(|line| line.contains("'api-production'"))
        .count();
    assert_eq!(named, 3, "{pretty}");
}
