//! End-to-end tests of the health issue's fields: limits, account, cron, watch, health checks,
//! watchdog and depends_on, from files (every format) and from `kelpie start` flags.

use super::*;
use kelpie_core::{HealthCheck, HealthProbe};

fn cpus() -> u32 {
    crate::readers::cpu_count()
}

fn names(loaded: &Loaded) -> Vec<&str> {
    loaded.apps.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn limits_and_account_fields_are_read() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "max_cpu": 80, "max_cpu_window": "30s",
                 "nice": -5, "uid": "www-data", "gid": 33},
                {"name": "b", "script": "app.js", "maxCpu": "50%", "maxCpuWindow": 1000,
                 "nice": "19", "user": 1000, "group": "staff"},
                {"name": "c", "script": "app.js", "max_cpu": " 100 % "},
                {"name": "d", "script": "app.js"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let [a, b, c, d] = &loaded.apps[..] else {
        panic!("four apps");
    };
    assert_eq!(a.max_cpu, Some(80));
    assert_eq!(a.max_cpu_window_ms, 30_000);
    assert_eq!(a.nice, Some(-5));
    assert_eq!(a.user.as_deref(), Some("www-data"));
    assert_eq!(a.group.as_deref(), Some("33"));
    assert_eq!(b.max_cpu, Some(50));
    assert_eq!(b.max_cpu_window_ms, 1000);
    assert_eq!(b.nice, Some(19));
    assert_eq!(b.user.as_deref(), Some("1000"));
    assert_eq!(b.group.as_deref(), Some("staff"));
    assert_eq!(c.max_cpu, Some(100));
    assert_eq!(d.max_cpu, None);
    assert_eq!(d.max_cpu_window_ms, kelpie_core::DEFAULT_MAX_CPU_WINDOW_MS);
    assert_eq!(
        (d.nice, d.user.as_deref(), d.group.as_deref()),
        (None, None, None)
    );

    // Up to every CPU of the machine.
    let all = 100 * cpus();
    let loaded = p
        .load(
            "all.json",
            &format!(r#"{{"name": "a", "script": "app.js", "max_cpu": "{all}%"}}"#),
        )
        .expect("loads");
    assert_eq!(loaded.apps[0].max_cpu, Some(all));
}

#[test]
fn bad_limits_and_account_fields_name_the_field() {
    let p = Project::new();
    let max = 100 * cpus();
    let over = max + 1;
    let errors = p.errors(
        "e.json",
        &format!(
            r#"[{{"name": "a", "script": "app.js", "max_cpu": 0, "max_cpu_window": "500ms",
                  "nice": 20, "uid": "", "gid": true}},
                {{"name": "b", "script": "app.js", "max_cpu": "{over}%", "maxCpuWindow": "soon",
                  "nice": "low", "user": "two words", "group": -1}},
                {{"name": "c", "script": "app.js", "max_cpu": "lots", "nice": -21, "uid": 1,
                  "user": 2}}]"#
        ),
    );
    let cpu = format!(
        "expected a CPU percentage from 1 to {max} (100 is one core; this machine has {} CPUs)",
        cpus()
    );
    assert_eq!(
        errors,
        [
            format!("e.json: app `a`: field `max_cpu`: {cpu}, got 0"),
            "e.json: app `a`: field `max_cpu_window`: expected at least 1 second, got \"500ms\"".to_string(),
            "e.json: app `a`: field `nice`: expected a nice value from -20 (highest priority) to 19 (lowest), got 20".to_string(),
            "e.json: app `a`: field `uid`: expected a user name or uid, got \"\"".to_string(),
            "e.json: app `a`: field `gid`: expected a group name or gid, got true".to_string(),
            format!("e.json: app `b`: field `max_cpu`: {cpu}, got \"{over}%\""),
            "e.json: app `b`: field `maxCpuWindow`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"soon\"".to_string(),
            "e.json: app `b`: field `nice`: expected a nice value from -20 (highest priority) to 19 (lowest), got \"low\"".to_string(),
            "e.json: app `b`: field `user`: expected a user name or uid, got \"two words\"".to_string(),
            "e.json: app `b`: field `group`: expected a group name or gid, got -1".to_string(),
            format!("e.json: app `c`: field `max_cpu`: {cpu}, got \"lots\""),
            "e.json: app `c`: field `nice`: expected a nice value from -20 (highest priority) to 19 (lowest), got -21".to_string(),
        ]
    );
}

#[test]
fn cron_restart_and_its_time_zone_are_read() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "cron_restart": "0 3 * * *", "cron_timezone": "UTC"},
                {"name": "b", "script": "app.js", "cron": " */15 * * * * ", "cronTZ": "local"},
                {"name": "c", "script": "app.js", "cronRestart": "30 0 3 * * *"},
                {"name": "d", "script": "app.js", "cron_restart": 0},
                {"name": "e", "script": "app.js", "cron_restart": "0"},
                {"name": "f", "script": "app.js"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let crons: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| (a.cron_restart.as_deref(), a.cron_timezone.as_deref()))
        .collect();
    assert_eq!(
        crons,
        [
            (Some("0 3 * * *"), Some("UTC")),
            (Some("*/15 * * * *"), Some("local")),
            (Some("30 0 3 * * *"), None),
            (None, None),
            (None, None),
            (None, None),
        ]
    );
    // IANA names come from the system's database, which a minimal machine may lack.
    if kelpie_core::cron::time_zone(Some("Europe/Paris")).is_ok() {
        let loaded = p
            .load(
                "paris.json",
                r#"{"script": "app.js", "cron": "0 3 * * *", "cron_tz": "Europe/Paris"}"#,
            )
            .expect("loads");
        assert_eq!(
            loaded.apps[0].cron_timezone.as_deref(),
            Some("Europe/Paris")
        );
    }
}

#[test]
fn bad_cron_fields_name_the_field() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "cron_restart": "0 3 * *"},
            {"name": "b", "script": "app.js", "cron": 5, "cron_timezone": "Mars/Olympus"},
            {"name": "c", "script": "app.js", "cron_restart": "", "cronTimezone": 1}]"#,
    );
    assert_eq!(errors.len(), 5, "{errors:?}");
    // The message after the field is the cron parser's own (it says which part is wrong).
    assert!(
        errors[0].starts_with("e.json: app `a`: field `cron_restart`: ") && errors[0].len() > 40,
        "{errors:?}"
    );
    assert_eq!(
        errors[1],
        "e.json: app `b`: field `cron`: expected a cron expression such as \"0 3 * * *\" (or 0 for none), got 5"
    );
    assert!(
        errors[2].starts_with(
            "e.json: app `b`: field `cron_timezone`: unknown time zone `Mars/Olympus`"
        ),
        "{errors:?}"
    );
    assert_eq!(
        errors[3],
        "e.json: app `c`: field `cron_restart`: expected a cron expression such as \"0 3 * * *\" (or 0 for none), got \"\""
    );
    assert_eq!(
        errors[4],
        "e.json: app `c`: field `cronTimezone`: expected a time zone name such as \"UTC\" or \"Europe/Paris\", got 1"
    );
}

#[test]
fn watch_paths_are_absolute_against_the_app_cwd() {
    let p = Project::new();
    std::fs::create_dir(p.path("sub")).expect("mkdir");
    std::fs::write(p.path("sub/app.js"), "").expect("write");
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "watch": true, "ignore_watch": "*.log",
                 "watch_delay": "2s"},
                {"name": "b", "script": "app.js", "cwd": "sub",
                 "watch": ["src", "./src", "/etc/app.conf", "~/shared", "../lib"],
                 "ignoreWatch": ["tmp/**", "*.{tmp,swp}", "\\.cache"], "watchDelay": 100},
                {"name": "c", "script": "app.js", "watch": "lib"},
                {"name": "d", "script": "app.js", "watch": false, "ignore_watch": []},
                {"name": "e", "script": "app.js", "watch": "true"},
                {"name": "f", "script": "app.js"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let [a, b, c, d, e, f] = &loaded.apps[..] else {
        panic!("six apps");
    };
    let root = p.dir.path().display().to_string();
    assert_eq!(a.watch, std::slice::from_ref(&root));
    assert_eq!(a.ignore_watch, ["*.log"]);
    assert_eq!(a.watch_delay_ms, 2000);
    assert_eq!(
        b.watch,
        [
            p.abs("sub/src"),
            "/etc/app.conf".to_string(),
            "/home/test/shared".to_string(),
            p.abs("lib"),
        ]
    );
    assert_eq!(b.ignore_watch, ["tmp/**", "*.{tmp,swp}", "\\.cache"]);
    assert_eq!(b.watch_delay_ms, 100);
    assert_eq!(c.watch, [p.abs("lib")]);
    assert!(d.watch.is_empty() && d.ignore_watch.is_empty());
    assert_eq!(e.watch, [root]);
    assert!(f.watch.is_empty() && f.ignore_watch.is_empty());
    assert_eq!(f.watch_delay_ms, kelpie_core::DEFAULT_WATCH_DELAY_MS);
}

#[test]
fn bad_watch_fields_name_the_field() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "watch": 1, "ignore_watch": "[abc",
             "watch_delay": "soon"},
            {"name": "b", "script": "app.js", "watch": ["src", ""], "ignore_watch": 5},
            {"name": "c", "script": "app.js", "watch": "", "ignoreWatch": ["*.log", {}]}]"#,
    );
    assert_eq!(
        errors,
        [
            "e.json: app `a`: field `watch`: expected true, false, a path or a list of paths, got 1",
            "e.json: app `a`: field `ignore_watch`: expected a valid glob, got \"[abc\" (unclosed character class; missing ']')",
            "e.json: app `a`: field `watch_delay`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"soon\"",
            "e.json: app `b`: field `watch`: expected a list of paths, got \"\"",
            "e.json: app `b`: field `ignore_watch`: expected a glob or a list of globs, got 5",
            "e.json: app `c`: field `watch`: expected true, false, a path or a list of paths, got \"\"",
            "e.json: app `c`: field `ignoreWatch`: expected a glob such as \"*.log\" or \"tmp/**\", got {}",
        ]
    );
}

#[test]
fn health_checks_take_urls_paths_ports_and_commands() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "url", "script": "app.js",
                 "health_check": {"http": "http://127.0.0.1:8080/health", "status": 204,
                                  "interval": "10s", "timeout": 500, "failures": 5,
                                  "start_period": "1m"}},
                {"name": "path", "script": "app.js", "port": 3000, "health_check": {"http": "/health"}},
                {"name": "env", "script": "app.js", "env": {"PORT": "4000"},
                 "healthCheck": {"http": "/ready?deep=1", "startPeriod": "5s"}},
                {"name": "host", "script": "app.js", "port": "[::1]:3000", "health_check": {"http": "/"}},
                {"name": "object", "script": "app.js", "port": 3000,
                 "health_check": {"http": {"path": "/h"}}},
                {"name": "object2", "script": "app.js",
                 "health_check": {"http": {"port": 9000, "host": "::1"}}},
                {"name": "tcp", "script": "app.js", "health_check": {"tcp": 6379}},
                {"name": "tcp2", "script": "app.js", "health_check": {"tcp": "db.local:5432"}},
                {"name": "tcp3", "script": "app.js", "port": 3000, "health_check": {"tcp": true}},
                {"name": "tcp4", "script": "app.js", "port": "127.0.0.2:3001", "health_check": {"tcp": "true"}},
                {"name": "exec", "script": "app.js", "health_check": {"exec": "pg_isready -q"}},
                {"name": "off", "script": "app.js", "health_check": false}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let checks: BTreeMap<&str, Option<&HealthCheck>> = loaded
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.health_check.as_ref()))
        .collect();
    let probe = |name: &str| checks[name].map(|c| c.probe.clone());
    let http = |url: &str, status: Option<u16>| {
        Some(HealthProbe::Http {
            url: url.into(),
            status,
        })
    };
    let tcp = |host: &str, port: u16| {
        Some(HealthProbe::Tcp {
            host: host.into(),
            port,
        })
    };
    assert_eq!(
        checks["url"],
        Some(&HealthCheck {
            probe: HealthProbe::Http {
                url: "http://127.0.0.1:8080/health".into(),
                status: Some(204),
            },
            interval_ms: 10_000,
            timeout_ms: 500,
            failures: 5,
            start_period_ms: 60_000,
        })
    );
    assert_eq!(probe("path"), http("http://127.0.0.1:3000/health", None));
    let defaults = HealthCheck::default();
    let path = checks["path"].expect("check");
    assert_eq!(
        (
            path.interval_ms,
            path.timeout_ms,
            path.failures,
            path.start_period_ms
        ),
        (
            defaults.interval_ms,
            defaults.timeout_ms,
            defaults.failures,
            defaults.start_period_ms
        )
    );
    assert_eq!(
        probe("env"),
        http("http://127.0.0.1:4000/ready?deep=1", None)
    );
    assert_eq!(checks["env"].map(|c| c.start_period_ms), Some(5000));
    assert_eq!(probe("host"), http("http://[::1]:3000/", None));
    assert_eq!(probe("object"), http("http://127.0.0.1:3000/h", None));
    assert_eq!(probe("object2"), http("http://[::1]:9000/", None));
    assert_eq!(probe("tcp"), tcp("127.0.0.1", 6379));
    assert_eq!(probe("tcp2"), tcp("db.local", 5432));
    assert_eq!(probe("tcp3"), tcp("127.0.0.1", 3000));
    assert_eq!(probe("tcp4"), tcp("127.0.0.2", 3001));
    assert_eq!(
        probe("exec"),
        Some(HealthProbe::Exec {
            command: "pg_isready -q".into()
        })
    );
    assert_eq!(checks["off"], None);
}

#[test]
fn bad_health_checks_name_the_field_and_key() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "health_check": {"http": "https://api.example.com/health"}},
            {"name": "b", "script": "app.js", "health_check": {"http": "/health"}},
            {"name": "c", "script": "app.js", "health_check": {"http": "http://x/", "tcp": 80}},
            {"name": "d", "script": "app.js", "health_check": {"interval": "5s"}},
            {"name": "e", "script": "app.js", "health_check": {"exec": "true", "status": 200,
             "interval": 0, "timeout": "never", "failures": 0, "start_period": -1}},
            {"name": "f", "script": "app.js", "health_check": {"http": "http://x/", "status": 700,
             "intervall": "1s", "probe": 1}},
            {"name": "g", "script": "app.js", "health_check": "/health"},
            {"name": "h", "script": "app.js", "healthCheck": {"tcp": "unix:/run/a.sock"}},
            {"name": "i", "script": "app.js", "health_check": {"tcp": 0, "exec": ""}},
            {"name": "j", "script": "app.js", "health_check": {"http": "ftp://x/"}},
            {"name": "k", "script": "app.js", "health_check": {"http": {"port": 0, "path": "health",
             "host": "a/b", "verb": "HEAD"}}},
            {"name": "l", "script": "app.js", "port": "unix:/run/l.sock", "health_check": {"tcp": true}},
            {"name": "m", "script": "app.js", "port": 8000, "instances": 2, "increment_var": "PORT",
             "health_check": {"http": "/health"}},
            {"name": "n", "script": "app.js", "health_check": {"exec": "x", "start_period": "1s",
             "startPeriod": "2s"}},
            {"name": "o", "script": "app.js", "health_check": {"exec": ""}},
            {"name": "p", "script": "app.js", "health_check": {"tcp": 0}},
            {"name": "q", "script": "app.js", "health_check": {"http": {"path": "/h"}}},
            {"name": "r", "script": "app.js", "health_check": {"http": 8080, "status": "ok"}}]"#,
    );
    let http_forms = "an http:// URL (http://127.0.0.1:3000/health), a path starting with / (checked on the app's port) or an object with `port`, `path` and `host`";
    let no_port = "the app has no TCP port to check: set its `port`, or PORT in its `env`, or give a full URL (http://127.0.0.1:3000/health)";
    let tcp_forms =
        "a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or true (the app's port)";
    assert_eq!(
        errors,
        [
            "e.json: app `a`: field `health_check.http`: https is not supported: check the app over http on localhost".to_string(),
            format!("e.json: app `b`: field `health_check.http`: {no_port}"),
            "e.json: app `c`: field `health_check`: `http` and `tcp` are both set; a health check probes exactly one of `http`, `tcp` or `exec`".to_string(),
            "e.json: app `d`: field `health_check`: needs one of `http`, `tcp` or `exec` (what to probe); none is set".to_string(),
            "e.json: app `e`: field `health_check.status`: only `http` checks have a status".to_string(),
            "e.json: app `e`: field `health_check.interval`: expected at least 1 ms, got 0".to_string(),
            "e.json: app `e`: field `health_check.timeout`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"never\"".to_string(),
            "e.json: app `e`: field `health_check.failures`: expected a whole number ≥ 1, got 0".to_string(),
            "e.json: app `e`: field `health_check.start_period`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got -1".to_string(),
            "e.json: app `f`: field `health_check`: unknown key `intervall` (did you mean `interval`?)".to_string(),
            "e.json: app `f`: field `health_check`: unknown key `probe` (expected `http`, `tcp`, `exec`, `status`, `interval`, `timeout`, `failures`, `start_period`)".to_string(),
            "e.json: app `f`: field `health_check.status`: expected an HTTP status code from 100 to 599, got 700".to_string(),
            "e.json: app `g`: field `health_check`: expected an object with one of `http`, `tcp` or `exec` (and optionally `status`, `interval`, `timeout`, `failures`, `start_period`), got \"/health\"".to_string(),
            format!("e.json: app `h`: field `healthCheck.tcp`: expected {tcp_forms}, got \"unix:/run/a.sock\""),
            "e.json: app `i`: field `health_check`: `tcp` and `exec` are both set; a health check probes exactly one of `http`, `tcp` or `exec`".to_string(),
            format!("e.json: app `j`: field `health_check.http`: expected {http_forms}, got \"ftp://x/\""),
            "e.json: app `k`: field `health_check.http`: unknown key `verb` (expected `port`, `path`, `host`)".to_string(),
            "e.json: app `k`: field `health_check.http.port`: expected a port number between 1 and 65535, got 0".to_string(),
            "e.json: app `k`: field `health_check.http.path`: expected a path starting with /, got \"health\"".to_string(),
            "e.json: app `k`: field `health_check.http.host`: expected a host name or address (127.0.0.1, ::1, localhost), got \"a/b\"".to_string(),
            format!("e.json: app `l`: field `health_check.tcp`: {no_port}"),
            "e.json: app `m`: field `health_check.http`: each instance has its own PORT (`increment_var: PORT`), so a check on the app's port would probe only the first instance; use an `exec` check (it runs with the instance's PORT) or give an explicit address".to_string(),
            "e.json: app `n`: field `health_check`: `startPeriod` and `start_period` both set `start_period`; keep one".to_string(),
            "e.json: app `o`: field `health_check.exec`: expected a non-empty string, got \"\"".to_string(),
            format!("e.json: app `p`: field `health_check.tcp`: expected {tcp_forms}, got 0"),
            format!("e.json: app `q`: field `health_check.http`: {no_port}"),
            format!("e.json: app `r`: field `health_check.http`: expected {http_forms}, got 8080"),
            "e.json: app `r`: field `health_check.status`: expected an HTTP status code from 100 to 599, got \"ok\"".to_string(),
        ]
    );
}

#[test]
fn watchdog_takes_seconds_when_bare() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "watchdog": 30},
                {"name": "b", "script": "app.js", "watchdog": "1.5"},
                {"name": "c", "script": "app.js", "watchdog": "2m"},
                {"name": "d", "script": "app.js", "watchdog": "1500ms"},
                {"name": "e", "script": "app.js", "watchdog": 2.5},
                {"name": "f", "script": "app.js"}]"#,
        )
        .expect("loads");
    let watchdogs: Vec<_> = loaded.apps.iter().map(|a| a.watchdog_ms).collect();
    assert_eq!(
        watchdogs,
        [
            Some(30_000),
            Some(1500),
            Some(120_000),
            Some(1500),
            Some(2500),
            None
        ]
    );
    let errors = p.errors(
        "bad.json",
        r#"[{"name": "a", "script": "app.js", "watchdog": 0},
            {"name": "b", "script": "app.js", "watchdog": "500ms"},
            {"name": "c", "script": "app.js", "watchdog": "soon"},
            {"name": "d", "script": "app.js", "watchdog": true},
            {"name": "e", "script": "app.js", "watchdog": -3}]"#,
    );
    let expected = "expected a duration like 30s, 1m or a number of seconds (not milliseconds)";
    assert_eq!(
        errors,
        [
            "bad.json: app `a`: field `watchdog`: expected at least 1 second, got 0".to_string(),
            "bad.json: app `b`: field `watchdog`: expected at least 1 second, got \"500ms\""
                .to_string(),
            format!("bad.json: app `c`: field `watchdog`: {expected}, got \"soon\""),
            format!("bad.json: app `d`: field `watchdog`: {expected}, got true"),
            format!("bad.json: app `e`: field `watchdog`: {expected}, got -3"),
        ]
    );
}

#[test]
fn apps_come_after_their_dependencies_otherwise_in_file_order() {
    let p = Project::new();
    let text = r#"[{"name": "web", "script": "app.js", "depends_on": ["api", "cache"]},
                   {"name": "worker", "script": "worker.js", "dependsOn": "db"},
                   {"name": "api", "script": "app.js", "depends_on": ["db", "db"]},
                   {"name": "db", "script": "app.js"},
                   {"name": "cache", "script": "app.js", "depends_on": "redis-elsewhere"}]"#;
    let loaded = p.load("e.json", text).expect("loads");
    assert_eq!(names(&loaded), ["db", "api", "cache", "web", "worker"]);
    let deps: BTreeMap<&str, &[String]> = loaded
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.depends_on.as_slice()))
        .collect();
    assert_eq!(deps["web"], ["api", "cache"]);
    assert_eq!(deps["worker"], ["db"]);
    assert_eq!(deps["api"], ["db"]);
    assert!(deps["db"].is_empty());
    // A name that is not in the file is left to the daemon.
    assert_eq!(deps["cache"], ["redis-elsewhere"]);

    // With --only, the order holds among the selected apps.
    let mut only = Project::new();
    only.ctx.only = vec!["web".into(), "db".into()];
    let loaded = only.load("e.json", text).expect("loads");
    assert_eq!(names(&loaded), ["db", "web"]);
}

#[test]
fn dependency_cycles_and_self_dependencies_are_errors() {
    let p = Project::new();
    let errors = p.errors(
        "ecosystem.json",
        r#"[{"name": "api", "script": "app.js", "depends_on": "worker"},
            {"name": "worker", "script": "worker.js", "depends_on": ["db", "api"]},
            {"name": "db", "script": "app.js"},
            {"name": "solo", "script": "app.js", "dependsOn": ["solo"]},
            {"name": "bad", "script": "app.js", "depends_on": ["", 3]},
            {"name": "worse", "script": "app.js", "depends_on": {}}]"#,
    );
    assert_eq!(
        errors,
        [
            "ecosystem.json: app `solo`: field `dependsOn`: app `solo` cannot depend on itself",
            "ecosystem.json: app `bad`: field `depends_on`: expected an app name or a list of app names, got \"\"",
            "ecosystem.json: app `worse`: field `depends_on`: expected an app name or a list of app names, got {}",
            "ecosystem.json: depends_on has a cycle: api -> worker -> api",
        ]
    );
    // A cycle the selected apps do not reach does not stop them.
    let mut only = Project::new();
    only.ctx.only = vec!["db".into()];
    let loaded = only
        .load(
            "e.json",
            r#"[{"name": "api", "script": "app.js", "depends_on": "worker"},
                {"name": "worker", "script": "worker.js", "depends_on": "api"},
                {"name": "db", "script": "app.js"}]"#,
        )
        .expect("loads");
    assert_eq!(names(&loaded), ["db"]);
    only.ctx.only = vec!["worker".into()];
    let errors = only.errors(
        "e.json",
        r#"[{"name": "api", "script": "app.js", "depends_on": "worker"},
            {"name": "worker", "script": "worker.js", "depends_on": "api"}]"#,
    );
    assert_eq!(
        errors,
        ["e.json: depends_on has a cycle: worker -> api -> worker"]
    );
}

/// The same app in every format gives the same spec.
#[test]
fn every_format_reads_the_new_fields() {
    let p = Project::new();
    let json = p
        .load(
            "e.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "port": 3000, "max_cpu": "80%",
                "nice": 5, "uid": "www", "cron_restart": "0 3 * * *", "cron_timezone": "UTC",
                "watch": ["src"], "ignore_watch": ["*.log"], "watch_delay": "1s",
                "health_check": {"http": "/health", "status": 200, "interval": "10s"},
                "watchdog": 30, "depends_on": ["db"], "max_memory_restart": "200M"},
                {"name": "db", "script": "app.js"}]}"#,
        )
        .expect("json");
    let yaml = p
        .load(
            "e.yaml",
            "apps:\n  - name: api\n    script: app.js\n    port: 3000\n    max_cpu: 80%\n    nice: 5\n    uid: www\n    cron_restart: '0 3 * * *'\n    cron_timezone: UTC\n    watch: [src]\n    ignore_watch: ['*.log']\n    watch_delay: 1s\n    health_check:\n      http: /health\n      status: 200\n      interval: 10s\n    watchdog: 30\n    depends_on: db\n    max_memory_restart: 200M\n  - name: db\n    script: app.js\n",
        )
        .expect("yaml");
    let toml = p
        .load(
            "e.toml",
            "[[apps]]\nname = \"api\"\nscript = \"app.js\"\nport = 3000\nmaxCpu = \"80%\"\nnice = 5\nuser = \"www\"\ncron = \"0 3 * * *\"\ncronTimezone = \"UTC\"\nwatch = [\"src\"]\nignoreWatch = [\"*.log\"]\nwatchDelay = 1000\nwatchdog = \"30s\"\ndependsOn = [\"db\"]\nmaxMemoryRestart = \"200M\"\n[apps.healthCheck]\nhttp = \"/health\"\nstatus = 200\ninterval = \"10s\"\n\n[[apps]]\nname = \"db\"\nscript = \"app.js\"\n",
        )
        .expect("toml");
    let api = &json.apps[1];
    assert_eq!(names(&json), ["db", "api"]);
    assert_eq!(api.max_cpu, Some(80));
    assert_eq!(api.nice, Some(5));
    assert_eq!(api.user.as_deref(), Some("www"));
    assert_eq!(api.cron_restart.as_deref(), Some("0 3 * * *"));
    assert_eq!(api.cron_timezone.as_deref(), Some("UTC"));
    assert_eq!(api.watch, [p.abs("src")]);
    assert_eq!(api.ignore_watch, ["*.log"]);
    assert_eq!(api.watch_delay_ms, 1000);
    assert_eq!(
        api.health_check.as_ref().map(|c| (&c.probe, c.interval_ms)),
        Some((
            &HealthProbe::Http {
                url: "http://127.0.0.1:3000/health".into(),
                status: Some(200)
            },
            10_000
        ))
    );
    assert_eq!(api.watchdog_ms, Some(30_000));
    assert_eq!(api.depends_on, ["db"]);
    assert_eq!(api.max_memory_restart, Some(200 << 20));
    for other in [&yaml, &toml] {
        assert_eq!(names(other), ["db", "api"]);
        let spec = AppSpec {
            source_file: api.source_file.clone(),
            ..other.apps[1].clone()
        };
        assert_eq!(&spec, api);
    }
    if have_node() {
        let mut p = p;
        p.ctx.env.remove("PATH");
        let js = p
            .load(
                "ecosystem.config.js",
                "module.exports = { apps: [{ name: 'api', script: 'app.js', port: 3000, maxCpu: '80%', nice: 5, uid: 'www', cron_restart: '0 3 * * *', cron_timezone: 'UTC', watch: ['src'], ignore_watch: ['*.log'], watch_delay: 1000, health_check: { http: '/health', status: 200, interval: '10s' }, watchdog: 30, depends_on: ['db'], max_memory_restart: '200M' }, { name: 'db', script: 'app.js' }] };",
            )
            .expect("js");
        assert_eq!(names(&js), ["db", "api"]);
        let spec = AppSpec {
            source_file: api.source_file.clone(),
            inherited_env: api.inherited_env.clone(),
            ..js.apps[1].clone()
        };
        assert_eq!(&spec, api);
    }
}

#[test]
fn from_script_takes_the_health_issue_flags() {
    let p = Project::new();
    std::fs::create_dir(p.path("srv")).expect("mkdir");
    let opts = ScriptOptions {
        cwd: Some("srv".into()),
        port: Some("3000".into()),
        max_memory_restart: Some("300M".into()),
        max_cpu: Some("90%".into()),
        max_cpu_window: Some("20s".into()),
        nice: Some("-3".into()),
        user: Some("www".into()),
        group: Some("100".into()),
        cron_restart: Some("0 4 * * *".into()),
        cron_timezone: Some("UTC".into()),
        watch: vec![".".into(), "lib".into()],
        ignore_watch: vec!["*.log".into(), "tmp/**".into()],
        watch_delay: Some("2s".into()),
        health: crate::HealthFlags {
            health_http: Some("/health".into()),
            health_status: Some("200".into()),
            health_interval: Some("15s".into()),
            health_timeout: Some("3s".into()),
            health_failures: Some("2".into()),
            health_start_period: Some("30s".into()),
            ..crate::HealthFlags::default()
        },
        watchdog: Some("10".into()),
        depends_on: vec!["db".into(), "cache".into()],
        ..ScriptOptions::default()
    };
    let loaded = from_script("../app.js", &opts, &p.ctx).expect("builds");
    let spec = &loaded.apps[0];
    assert_eq!(spec.max_memory_restart, Some(300 << 20));
    assert_eq!(spec.max_cpu, Some(90));
    assert_eq!(spec.max_cpu_window_ms, 20_000);
    assert_eq!(spec.nice, Some(-3));
    assert_eq!(spec.user.as_deref(), Some("www"));
    assert_eq!(spec.group.as_deref(), Some("100"));
    assert_eq!(spec.cron_restart.as_deref(), Some("0 4 * * *"));
    assert_eq!(spec.cron_timezone.as_deref(), Some("UTC"));
    assert_eq!(spec.watch, [p.abs("srv"), p.abs("srv/lib")]);
    assert_eq!(spec.ignore_watch, ["*.log", "tmp/**"]);
    assert_eq!(spec.watch_delay_ms, 2000);
    assert_eq!(
        spec.health_check,
        Some(HealthCheck {
            probe: HealthProbe::Http {
                url: "http://127.0.0.1:3000/health".into(),
                status: Some(200),
            },
            interval_ms: 15_000,
            timeout_ms: 3000,
            failures: 2,
            start_period_ms: 30_000,
        })
    );
    assert_eq!(spec.watchdog_ms, Some(10_000));
    assert_eq!(spec.depends_on, ["db", "cache"]);

    let tcp = ScriptOptions {
        health: crate::HealthFlags {
            health_tcp: Some("127.0.0.1:6379".into()),
            ..crate::HealthFlags::default()
        },
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &tcp, &p.ctx).expect("builds").apps[0];
    assert_eq!(
        spec.health_check.as_ref().map(|c| &c.probe),
        Some(&HealthProbe::Tcp {
            host: "127.0.0.1".into(),
            port: 6379
        })
    );
    let exec = ScriptOptions {
        health: crate::HealthFlags {
            health_exec: Some("test -f /tmp/ok".into()),
            ..crate::HealthFlags::default()
        },
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &exec, &p.ctx).expect("builds").apps[0];
    assert_eq!(
        spec.health_check.as_ref().map(|c| &c.probe),
        Some(&HealthProbe::Exec {
            command: "test -f /tmp/ok".into()
        })
    );

    let defaults = &from_script("app.js", &ScriptOptions::default(), &p.ctx)
        .expect("builds")
        .apps[0];
    assert_eq!(defaults.max_cpu, None);
    assert_eq!(defaults.nice, None);
    assert_eq!(defaults.user, None);
    assert_eq!(defaults.cron_restart, None);
    assert!(defaults.watch.is_empty() && defaults.ignore_watch.is_empty());
    assert_eq!(defaults.health_check, None);
    assert_eq!(defaults.watchdog_ms, None);
    assert!(defaults.depends_on.is_empty());
}

#[test]
fn from_script_validates_the_health_issue_flags_like_files() {
    let p = Project::new();
    let opts = ScriptOptions {
        name: Some("api".into()),
        max_cpu: Some("0".into()),
        max_cpu_window: Some("1ms".into()),
        nice: Some("30".into()),
        cron_timezone: Some("Nowhere/Land".into()),
        ignore_watch: vec!["[".into()],
        health: crate::HealthFlags {
            health_http: Some("https://localhost/health".into()),
            health_failures: Some("0".into()),
            ..crate::HealthFlags::default()
        },
        watchdog: Some("0.5".into()),
        depends_on: vec!["api".into()],
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 9, "{lines:?}");
    // The machine's CPU count and the time zone database's wording vary: their start is ours.
    assert!(
        lines[0].starts_with("app `api`: field `max_cpu`: expected a CPU percentage from 1 to "),
        "{lines:?}"
    );
    assert!(
        lines[3].starts_with("app `api`: field `cron_timezone`: unknown time zone `Nowhere/Land`"),
        "{lines:?}"
    );
    assert_eq!(
        [&lines[1..3], &lines[4..]].concat(),
        [
            "app `api`: field `max_cpu_window`: expected at least 1 second, got \"1ms\"",
            "app `api`: field `nice`: expected a nice value from -20 (highest priority) to 19 (lowest), got \"30\"",
            "app `api`: field `ignore_watch`: expected a valid glob, got \"[\" (unclosed character class; missing ']')",
            "app `api`: field `health_check.http`: https is not supported: check the app over http on localhost",
            "app `api`: field `health_check.failures`: expected a whole number ≥ 1, got \"0\"",
            "app `api`: field `watchdog`: expected at least 1 second, got \"0.5\"",
            "app `api`: field `depends_on`: app `api` cannot depend on itself",
        ]
    );
}

#[test]
fn health_timing_flags_need_a_probe_flag() {
    let p = Project::new();
    let opts = ScriptOptions {
        health: crate::HealthFlags {
            health_interval: Some("5s".into()),
            health_status: Some("200".into()),
            ..crate::HealthFlags::default()
        },
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert_eq!(
        err,
        "app `app`: --health-status, --health-interval need a probe: add --health-http, --health-tcp or --health-exec"
    );
    let opts = ScriptOptions {
        health: crate::HealthFlags {
            health_timeout: Some("1s".into()),
            ..crate::HealthFlags::default()
        },
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert_eq!(
        err,
        "app `app`: --health-timeout needs a probe: add --health-http, --health-tcp or --health-exec"
    );
}

#[test]
fn the_http_block_of_pm2_production_templates_is_an_http_health_check() {
    let mut p = Project::new();
    // As PM2 production templates write it (JSON5, as PM2 reads a `.json`).
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{apps: [
                {name: 'api', script: 'app.js',
                 http: {port: 30000, path: '/health', expect_status: 200, interval: 30000}},
                {name: 'user', script: 'app.js',
                 http: {host: 'localhost', port: 30001, path: '/health', expect_status: 204,
                        interval: 30000, timeout: 5000, failures: 2, start_period: '10s'}},
                {name: 'on-port', script: 'app.js', port: 4000, http: {path: '/ready'}},
                {name: 'on-env', script: 'app.js', http: {expectStatus: 200},
                 env_production: {PORT: 30002}},
                {name: 'off', script: 'app.js', http: false},
            ]}"#,
        )
        .err()
        .map(|e| e.to_string());
    // Without --env production, `on-env` has no port to check.
    assert_eq!(
        loaded.as_deref(),
        Some("ecosystem.json: app `on-env`: field `http`: the app has no TCP port to check: set its `port`, or PORT in its `env`, or give a full URL (http://127.0.0.1:3000/health)")
    );
    p.ctx.profile = Some("production".into());
    let loaded = p
        .load(
            "ecosystem.json",
            &std::fs::read_to_string(p.path("ecosystem.json")).expect("read"),
        )
        .expect("loads");
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| w.contains("no `env_production` section")),
        "{:?}",
        loaded.warnings
    );
    let checks: Vec<Option<&HealthCheck>> = loaded
        .apps
        .iter()
        .map(|a| a.health_check.as_ref())
        .collect();
    let defaults = HealthCheck::default();
    assert_eq!(
        checks[0],
        Some(&HealthCheck {
            probe: HealthProbe::Http {
                url: "http://127.0.0.1:30000/health".into(),
                status: Some(200),
            },
            interval_ms: 30_000,
            ..defaults.clone()
        })
    );
    assert_eq!(
        checks[1],
        Some(&HealthCheck {
            probe: HealthProbe::Http {
                url: "http://localhost:30001/health".into(),
                status: Some(204),
            },
            interval_ms: 30_000,
            timeout_ms: 5000,
            failures: 2,
            start_period_ms: 10_000,
        })
    );
    assert_eq!(
        checks[2].map(|c| &c.probe),
        Some(&HealthProbe::Http {
            url: "http://127.0.0.1:4000/ready".into(),
            status: None,
        })
    );
    assert_eq!(
        checks[3].map(|c| &c.probe),
        Some(&HealthProbe::Http {
            url: "http://127.0.0.1:30002/".into(),
            status: Some(200),
        })
    );
    assert_eq!(checks[4], None);
}

#[test]
fn a_bad_http_block_names_the_field_and_key() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{name: 'a', script: 'app.js', http: {port: 70000, path: 'health', expect_status: 'ok',
                                               interval: 0, expect_staus: 200}},
            {name: 'b', script: 'app.js', http: '/health'},
            {name: 'c', script: 'app.js', port: 3000, http: {path: '/'}, health_check: {tcp: true}},
            {name: 'd', script: 'app.js', http: {port: 3000, timeout: 'soon', method: 'HEAD'}}]"#,
    );
    assert_eq!(
        errors,
        [
            "e.json: app `a`: field `http`: unknown key `expect_staus` (did you mean `expect_status`?)",
            "e.json: app `a`: field `http.port`: expected a port number between 1 and 65535, got 70000",
            "e.json: app `a`: field `http.path`: expected a path starting with /, got \"health\"",
            "e.json: app `a`: field `http.expect_status`: expected an HTTP status code from 100 to 599, got \"ok\"",
            "e.json: app `a`: field `http.interval`: expected at least 1 ms, got 0",
            "e.json: app `b`: field `http`: expected an HTTP health check like {port: 3000, path: '/health', expect_status: 200, interval: 30000}, got \"/health\"",
            "e.json: app `c`: fields `health_check` and `http` both set a health check; keep one",
            "e.json: app `d`: field `http`: unknown key `method` (expected `port`, `path`, `host`, `expect_status`, `interval`, `timeout`, `failures`, `start_period`)",
            "e.json: app `d`: field `http.timeout`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"soon\"",
        ]
    );
}
