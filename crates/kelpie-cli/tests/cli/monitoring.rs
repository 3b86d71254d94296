//! The ready-made monitoring in `monitoring/`: the Prometheus alerting rules pass `promtool check
//! rules` and their own unit tests (`promtool test rules`), the Grafana dashboard is well formed
//! and every query in it parses, and both name only metrics a real daemon's `/metrics` serves;
//! fed that real scrape, the rules fire for the errored and the unhealthy app and for nothing
//! else.
//!
//! `promtool` is Debian's `prometheus` package (`.ci/run` installs it); without it these tests
//! skip (a failure under `KELPIE_NO_SKIP`).

use super::kelpie;
use kelpie_testkit::Kelpie;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// Every alert `monitoring/prometheus-alerts.yml` must define.
const ALERTS: [&str; 6] = [
    "KelpieAppDown",
    "KelpieRestartStorm",
    "KelpieMemoryNearLimit",
    "KelpieUnhealthy",
    "KelpieLogLinesDropped",
    "KelpieDaemonDown",
];

/// The repository's `monitoring/` directory.
fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

fn read(name: &str) -> String {
    let path = monitoring().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `promtool` on the PATH, or a skip.
pub(super) fn promtool() -> Option<PathBuf> {
    let found = super::tools::program("promtool");
    if found.is_none() {
        kelpie_testkit::skip(
            "promtool is not installed (Debian's prometheus package; .ci/run installs it)",
        );
    }
    found
}

/// Run promtool with `args` in `dir`, `stdin` on its standard input.
fn run_promtool(promtool: &Path, dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    child.wait_with_output().expect("promtool")
}

/// Run promtool and expect success; its output.
fn promtool_ok(promtool: &Path, dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = run_promtool(promtool, dir, args, stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The metric names (Kelpie's, `kelpie_…`) a PromQL expression uses.
fn kelpie_metrics(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            let token = &expr[start..i];
            // A label name (`{kelpie_x="…"}`) is followed by `=`, `!` or `~`; none is used.
            // Kelpie's, and the Node runtime's under prom-client's names.
            if token.starts_with("kelpie_") || token.starts_with("nodejs_") {
                names.insert(token.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `expr:` of each rule of the alerting rules file, by alert name (the file writes each
/// expression either on the `expr:` line or as a `|` block under it).
fn alert_exprs(rules: &str) -> BTreeMap<String, String> {
    let mut exprs = BTreeMap::new();
    for block in rules.split("- alert: ").skip(1) {
        let name = block.lines().next().unwrap_or_default().trim().to_string();
        let mut lines = block
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("expr:"));
        let first = lines.next().unwrap_or_default();
        let inline = first.trim_start().trim_start_matches("expr:").trim();
        let expr = if inline == "|" {
            lines
                .take_while(|l| l.starts_with("          "))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            inline.to_string()
        };
        assert!(!expr.is_empty(), "{name}: no expr");
        exprs.insert(name, expr);
    }
    exprs
}

/// The dashboard's queries with its template variables replaced by values promtool can parse:
/// (where, expression).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let substitute = |expr: &str| {
        expr.replace("$__rate_interval", "1m")
            .replace("$__interval", "1m")
            .replace("$__range", "6h")
            .replace("$instance", ".*")
            .replace("$app", ".*")
            .replace("$metric", ".*")
    };
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            exprs.push((
                format!(
                    "panel {} ({}) {}",
                    panel["id"], panel["title"], target["refId"]
                ),
                substitute(expr),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        // `label_values(<selector>, <label>)`: the selector must parse.
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _)| selector.to_string())
            .unwrap_or_else(|| panic!("variable {}: {query}", variable["name"]));
        exprs.push((format!("variable {}", variable["name"]), substitute(&inner)));
    }
    for (place, expr) in &exprs {
        assert!(
            !expr.contains('$'),
            "{place}: a variable the test does not know: {expr}"
        );
    }
    exprs
}

fn dashboard() -> Value {
    let text = read("grafana-dashboard.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("grafana-dashboard.json: {e}"))
}

/// `exprs` as a rules file of recording rules, which `promtool check rules` parses.
fn as_recording_rules(exprs: &[(String, String)]) -> String {
    let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(expr).expect("json");
        text.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = monitoring();
    let out = promtool_ok(
        &promtool,
        &dir,
        &["check", "rules", "prometheus-alerts.yml"],
        "",
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{out}"
    );
    let out = promtool_ok(&promtool, &dir, &["test", "rules", "alerts-test.yml"], "");
    assert!(out.contains("SUCCESS"), "{out}");

    let rules = read("prometheus-alerts.yml");
    let tests = read("alerts-test.yml");
    let exprs = alert_exprs(&rules);
    assert_eq!(
        exprs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ALERTS.into_iter().collect::<BTreeSet<_>>()
    );
    for block in rules.split("- alert: ").skip(1) {
        let name = block.lines().next().unwrap_or_default().trim();
        for needed in ["for: ", "severity: ", "summary: ", "description: "] {
            assert!(block.contains(needed), "{name} has no `{needed}`");
        }
        // The people reading the alert learn which app it is about (the daemon's alert: which
        // daemon).
        let about = if name == "KelpieDaemonDown" {
            "$labels.instance"
        } else {
            "$labels.app"
        };
        assert!(block.contains(about), "{name} does not name {about}");
        // Each alert is tested both firing and silent: at least one evaluation expects it and
        // one expects nothing.
        let evaluations: Vec<&str> = tests
            .split("- eval_time: ")
            .filter(|e| e.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            evaluations.iter().any(|e| e.contains("exp_labels:")),
            "{name} is never tested firing"
        );
        assert!(
            evaluations.iter().any(|e| e.contains("exp_alerts: []")),
            "{name} is never tested silent"
        );
    }

    // The check is not a formality: a broken expression, or a test expecting what does not
    // happen, fails.
    let scratch = tempfile::tempdir().expect("tempdir");
    let broken = rules.replacen(
        "increase(kelpie_restarts_total[15m]) >= 5",
        "increase(kelpie_restarts_total[15m] >= 5",
        1,
    );
    assert_ne!(broken, rules);
    std::fs::write(scratch.path().join("prometheus-alerts.yml"), broken).expect("write");
    let out = run_promtool(
        &promtool,
        scratch.path(),
        &["check", "rules", "prometheus-alerts.yml"],
        "",
    );
    assert!(!out.status.success(), "promtool took a broken expression");
    std::fs::write(scratch.path().join("prometheus-alerts.yml"), &rules).expect("write");
    let wrong = tests.replacen("app: fat", "app: lean", 1);
    assert_ne!(wrong, tests);
    std::fs::write(scratch.path().join("alerts-test.yml"), wrong).expect("write");
    let out = run_promtool(
        &promtool,
        scratch.path(),
        &["test", "rules", "alerts-test.yml"],
        "",
    );
    assert!(
        !out.status.success(),
        "promtool passed a test expecting the wrong app"
    );
}

#[test]
fn the_dashboard_is_well_formed_and_every_query_parses() {
    let dashboard = dashboard();
    for key in ["title", "uid"] {
        assert!(
            dashboard[key].as_str().is_some_and(|s| !s.is_empty()),
            "no {key}"
        );
    }
    // Grafana refuses longer uids.
    assert!(dashboard["uid"].as_str().is_some_and(|u| u.len() <= 40));
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {} (Grafana 9 or later)",
        dashboard["schemaVersion"]
    );
    // Importable anywhere: no database id, and the data source is chosen by a variable.
    assert!(dashboard["id"].is_null(), "id: {}", dashboard["id"]);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let app = variable("app");
    assert_eq!(app["type"], "query");
    assert!(
        app["query"]["query"]
            .as_str()
            .is_some_and(|q| q.starts_with("label_values(kelpie_up") && q.ends_with(", app)")),
        "{app}"
    );
    for variable in variables {
        assert!(variable["name"].as_str().is_some_and(|n| !n.is_empty()));
        if variable["type"] == "query" {
            assert_eq!(variable["datasource"]["uid"], "${datasource}", "{variable}");
        }
    }

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in panels {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("a panel without an id: {panel}"));
        assert!(ids.insert(id), "panel id {id} twice");
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "panel {id} has no title");
        assert!(titles.insert(title), "title {title} twice");
        let grid = &panel["gridPos"];
        let place: Vec<u64> = ["x", "y", "w", "h"]
            .iter()
            .map(|k| {
                grid[*k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("panel {id}: gridPos.{k}"))
            })
            .collect();
        assert!(
            place[2] > 0 && place[3] > 0 && place[0] + place[2] <= 24,
            "panel {id}: {grid}"
        );
        assert!(panel["type"].as_str().is_some_and(|t| !t.is_empty()));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {id}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} ({title}) has no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {id}: an empty query");
            assert!(
                refs.insert(target["refId"].as_str().expect("refId")),
                "panel {id}: refId twice"
            );
            assert_eq!(target["datasource"]["uid"], "${datasource}", "panel {id}");
            used.extend(kelpie_metrics(expr));
        }
    }
    // A panel for each thing the dashboard is for.
    for metric in [
        "kelpie_up",
        "kelpie_status",
        "kelpie_restarts_total",
        "kelpie_cpu_seconds_total",
        "kelpie_memory_bytes",
        "kelpie_memory_limit_bytes",
        "kelpie_uptime_seconds",
        "kelpie_health_check_failures_total",
        "kelpie_healthy",
        "kelpie_log_lines_total",
        "kelpie_log_dropped_lines_total",
        "kelpie_daemon_cpu_seconds_total",
        "kelpie_daemon_memory_bytes",
        "kelpie_app_metric",
        "kelpie_app_page_faults_total",
        "kelpie_app_context_switches_total",
        "nodejs_eventloop_utilization_ratio",
        "nodejs_eventloop_lag_p95_seconds",
        "nodejs_heap_size_used_bytes",
        "nodejs_gc_duration_seconds_sum",
        "nodejs_gc_duration_seconds_bucket",
        "kelpie_node_http_server_requests_total",
        "kelpie_node_http_server_latency_p95_seconds",
    ] {
        assert!(used.contains(metric), "no panel shows {metric}");
    }

    // Each query's syntax, by promtool: as recording rules.
    let Some(promtool) = promtool() else { return };
    let exprs = dashboard_exprs(&dashboard);
    let scratch = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        scratch.path().join("dashboard.yml"),
        as_recording_rules(&exprs),
    )
    .expect("write");
    let out = promtool_ok(
        &promtool,
        scratch.path(),
        &["check", "rules", "dashboard.yml"],
        "",
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
    // Which would catch a typo in a query.
    let mut broken = exprs.clone();
    broken[0].1.push_str(" by (");
    std::fs::write(
        scratch.path().join("dashboard.yml"),
        as_recording_rules(&broken),
    )
    .expect("write");
    let out = run_promtool(
        &promtool,
        scratch.path(),
        &["check", "rules", "dashboard.yml"],
        "",
    );
    assert!(!out.status.success(), "promtool took {}", broken[0].1);
}

/// A port below 32768 (outside the kernel's ephemeral range) that nothing listens on.
/// Each call starts its search elsewhere: tests of one process run at the same time, and two
/// that found the same port free before either listened on it would clash.
pub(super) fn low_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000
        + ((std::process::id() % 10_000) as u16).wrapping_add(call.wrapping_mul(97)) % 12_000;
    (start..32_000)
        .chain(20_000..start)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 32768")
}

/// `GET /metrics` on `port`: the body.
pub(super) fn scrape(k: &Kelpie, port: u16) -> String {
    http_get(k, port, "/metrics")
}

/// `GET path` on `127.0.0.1:port` with the token of `k`'s web server (as Prometheus sends it:
/// `authorization: { credentials_file: <home>/web.token }`), a connection of its own: the body
/// of its 200 answer.
pub(super) fn http_get(k: &Kelpie, port: u16, path: &str) -> String {
    let token = std::fs::read_to_string(k.home().join("web.token")).unwrap_or_default();
    http_get_with(
        &format!("Authorization: Bearer {}\r\n", token.trim()),
        port,
        path,
    )
}

/// `GET path` on `127.0.0.1:port` with the header lines `headers`: the body of its 200 answer.
pub(super) fn http_get_with(headers: &str, port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(10 * SECS)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// What `promtool check metrics` finds wrong with the exposition `text`: the format and
/// Prometheus's naming rules. node_exporter's two memory names are camelCase
/// (`node_memory_MemTotal_bytes`), which promtool's lint flags in node_exporter's own output
/// too: they are kept as node_exporter spells them, so that its dashboards and alerts work, and
/// are allowed. So are prom-client's two gauges named `_total` (`nodejs_active_handles_total`,
/// `nodejs_active_requests_total`), kept as prom-client spells them for the same reason: the
/// stock Grafana Node dashboards query them by that name.
pub(super) fn metrics_problems(promtool: &Path, dir: &Path, text: &str) -> Vec<String> {
    const NODE_EXPORTER_NAMES: [&str; 2] = [
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
    ];
    const PROM_CLIENT_GAUGES: [&str; 2] = [
        "nodejs_active_handles_total",
        "nodejs_active_requests_total",
    ];
    let out = run_promtool(promtool, dir, &["check", "metrics"], text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<String> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !NODE_EXPORTER_NAMES.iter().any(|name| {
                *l == format!(
                    "{name} metric names should be written in 'snake_case' not 'camelCase'"
                )
            })
        })
        .filter(|l| {
            !PROM_CLIENT_GAUGES.iter().any(|name| {
                *l == format!("{name} non-counter metrics should not have \"_total\" suffix")
            })
        })
        .map(str::to_string)
        .collect();
    problems
}

/// The samples of an exposition: (metric name, labels as written, value).
fn samples(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (name.to_string(), labels.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn rules_and_dashboard_match_a_real_daemons_metrics() {
    let Some(promtool) = promtool() else { return };
    let k = kelpie();
    let app = k.fake_app();
    // Online and healthy, with a memory limit and a metric of its own.
    k.ok(&[
        "start",
        &app,
        "--name",
        "api",
        "--max-memory-restart",
        "500M",
        "--health-exec",
        "true",
        "--health-interval",
        "200ms",
        "--",
        "--tick",
        "500",
        "--notify",
        "X_KELPIE_METRIC=queue_depth=7",
    ]);
    // Online, its health check never passing (and never restarting it within the test).
    k.ok(&[
        "start",
        &app,
        "--name",
        "sick",
        "--health-exec",
        "false",
        "--health-interval",
        "200ms",
        "--health-failures",
        "100000",
        "--",
        "--tick",
        "500",
    ]);
    // Gave up restarting: errored.
    k.ok(&[
        "start",
        &app,
        "--name",
        "crashy",
        "--max-restarts",
        "1",
        "--",
        "--exit-after",
        "10",
        "--exit-code",
        "4",
    ]);
    // Stopped on purpose.
    k.ok(&["start", &app, "--name", "idle", "--", "--tick", "500"]);
    k.ok(&["stop", "idle"]);
    // A Node app reporting the runtime's metrics (as the shim and @pm2/io do).
    let node = k.write("runtime.js", super::runtime_metrics::RUNTIME_APP);
    k.ok(&["start", &node, "--name", "node", "--no-pmx"]);
    let port = low_port();
    k.ok(&["web", "--port", &port.to_string()]);
    k.wait_for("the web server", 10 * SECS, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let line = |name: &str, app: &str, pm_id: u32, extra: &str, value: &str| {
        format!("{name}{{app=\"{app}\",namespace=\"default\",pm_id=\"{pm_id}\"{extra}}} {value}")
    };
    let wanted = [
        line("kelpie_healthy", "api", 0, "", "1"),
        line("kelpie_healthy", "sick", 1, "", "0"),
        line("kelpie_memory_limit_bytes", "api", 0, "", "524288000"),
        line("kelpie_app_metric", "api", 0, ",name=\"queue_depth\"", "7"),
        line("kelpie_status", "crashy", 2, ",status=\"errored\"", "1"),
        line("kelpie_status", "idle", 3, ",status=\"stopped\"", "1"),
        line("kelpie_up", "sick", 1, "", "1"),
    ];
    let mut text = String::new();
    k.wait_for("every kind of sample in /metrics", 15 * SECS, || {
        text = scrape(&k, port);
        wanted.iter().all(|w| text.lines().any(|l| l == w.as_str()))
            && text.contains("\nkelpie_daemon_cpu_seconds_total ")
            && text.contains("\nnodejs_gc_duration_seconds_count{")
            && text.contains("\nkelpie_app_context_switches_total{")
    });

    let problems = metrics_problems(&promtool, k.home(), &text);
    assert!(problems.is_empty(), "promtool check metrics:\n{problems:?}");

    // Every metric the rules and the dashboard use is served: a renamed metric fails here.
    let served: BTreeSet<String> = samples(&text).into_iter().map(|s| s.0).collect();
    let rules = read("prometheus-alerts.yml");
    let mut used: BTreeSet<String> = alert_exprs(&rules)
        .values()
        .flat_map(|e| kelpie_metrics(e))
        .collect();
    assert!(used.contains("kelpie_memory_limit_bytes"), "{used:?}");
    used.extend(
        dashboard_exprs(&dashboard())
            .iter()
            .flat_map(|(_, e)| kelpie_metrics(e)),
    );
    let missing: Vec<&String> = used.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "used by monitoring/ but not in /metrics: {missing:?}\n{text}"
    );

    // The rules on this real scrape, held for 20 minutes: the errored app is down and the
    // failing one unhealthy; the healthy app, the stopped one and the daemon raise nothing.
    let mut series = String::new();
    let target = "job=\"kelpie\",instance=\"host:9615\"";
    for (name, labels, value) in samples(&text) {
        let labels = if labels.is_empty() {
            target.to_string()
        } else {
            format!("{labels},{target}")
        };
        let series_text = format!("{name}{{{labels}}}").replace('\'', "''");
        series.push_str(&format!(
            "      - series: '{series_text}'\n        values: '{value}x20'\n"
        ));
    }
    series.push_str(&format!(
        "      - series: 'up{{{target}}}'\n        values: '1x20'\n"
    ));
    let rules_path = monitoring().join("prometheus-alerts.yml");
    let test = format!(
        "rule_files: [{rules:?}]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    promql_expr_test:\n      - expr: count by (alertname, app) (ALERTS{{alertstate=\"firing\"}})\n        eval_time: 15m\n        exp_samples:\n          - labels: '{{alertname=\"KelpieAppDown\", app=\"crashy\"}}'\n            value: 1\n          - labels: '{{alertname=\"KelpieUnhealthy\", app=\"sick\"}}'\n            value: 1\n",
        rules = rules_path.display().to_string()
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    std::fs::write(scratch.path().join("real.yml"), &test).expect("write");
    promtool_ok(
        &promtool,
        scratch.path(),
        &["test", "rules", "real.yml"],
        "",
    );
}
