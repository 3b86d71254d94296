//! Property tests of ecosystem files (JSON, YAML, TOML; not JavaScript, which Node.js reads),
//! `kelpie start` flags, `kelpie.toml` and the size and duration parsers: whatever the text,
//! loading gives specs or errors that say why, never a panic, a hang or a huge allocation; and
//! a valid file gives the same specs in each format. The fuzz targets in `fuzz/` run the same
//! entry points for longer.

use kelpie_config::{
    from_script, load_file, parse_bytes, parse_duration_ms, ConfigError, DaemonSettings,
    LoadContext, ScriptOptions,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A directory with `app.js` and a `bin/` of fake interpreters that is the whole PATH, so
/// nothing depends on the machine and nothing is ever run.
struct Project {
    dir: tempfile::TempDir,
    ctx: LoadContext,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        for exe in ["node", "bash", "python3"] {
            let path = bin.join(exe);
            std::fs::write(&path, "#!/bin/sh\n").expect("write");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::write(dir.path().join("app.js"), "").expect("write");
        let env = BTreeMap::from([
            ("PATH".to_string(), bin.display().to_string()),
            ("HOME".to_string(), "/home/test".to_string()),
        ]);
        let ctx = LoadContext {
            cwd: dir.path().to_path_buf(),
            env,
            profile: None,
            only: Vec::new(),
        };
        Project { dir, ctx }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn load(&self, name: &str, text: &str) -> Result<kelpie_config::Loaded, ConfigError> {
        self.write(name, text);
        load_file(Path::new(name), &self.ctx)
    }
}

/// App keys, known and not, so generated apps get into the validators.
const KEYS: &[&str] = &[
    "name",
    "script",
    "args",
    "interpreter",
    "cwd",
    "env",
    "env_production",
    "instances",
    "exec_mode",
    "autorestart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "stop_exit_codes",
    "kill_timeout",
    "kill_signal",
    "log_file",
    "log_date_format",
    "log_max_size",
    "log_rotate_interval",
    "max_memory_restart",
    "port",
    "ready_pattern",
    "max_cpu",
    "nice",
    "uid",
    "cron_restart",
    "cron_timezone",
    "watch",
    "ignore_watch",
    "health_check",
    "watchdog",
    "depends_on",
    "http",
    "tcp",
    "exec",
    "interval",
    "treekill",
    "nmae",
];

/// Scalars that look like what the fields take, and some that do not.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        prop::sample::select(vec![
            "app.js",
            "api",
            "200M",
            "1.5G",
            "10s",
            "-1",
            "max",
            "0",
            "*/5 * * * *",
            "SIGINT",
            "3000",
            "unix:/tmp/s",
            "daily",
            "(ready",
            "{a,b",
            "~/x",
            "",
            " ",
            "cluster",
            "fork",
            "api,worker",
            "80%",
            "Europe/Paris",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// Arbitrary JSON trees whose object keys are mostly app keys.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_string),
                        1 => any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A document with apps in one of the shapes PM2 accepts, or anything at all.
fn document() -> impl Strategy<Value = Value> {
    let apps = || prop::collection::vec(value(), 0..4);
    prop_oneof![
        apps().prop_map(|apps| json!({ "apps": apps })),
        apps().prop_map(Value::Array),
        value(),
    ]
}

/// The same document as the text of a file of each format (TOML only when it can say it).
fn texts(doc: &Value) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (
            "e.json",
            serde_json::to_string_pretty(doc).unwrap_or_default(),
        ),
        ("e.yaml", serde_norway::to_string(doc).unwrap_or_default()),
    ];
    if let Ok(text) = toml::to_string(doc) {
        out.push(("e.toml", text));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_text_loads_or_explains(
        name in prop::sample::select(vec!["e.json", "e.yaml", "e.yml", "e.toml"]),
        text in prop_oneof![
            any::<String>(),
            "[\\[\\]{}\":,=\\-#/*\n a-z0-9.&!|>'@]{0,200}",
        ],
    ) {
        let project = Project::new();
        let _ = project.load(name, &text);
    }

    #[test]
    fn any_document_in_any_format_loads_or_explains(doc in document()) {
        let project = Project::new();
        for (name, text) in texts(&doc) {
            match project.load(name, &text) {
                Ok(loaded) => {
                    for app in &loaded.apps {
                        prop_assert!(!app.name.is_empty());
                        prop_assert!(app.instances >= 1);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn valid_apps_give_the_same_specs_in_every_format(
        apps in prop::collection::btree_map(
            "[a-z][a-z0-9_-]{0,10}",
            (1u32..9, 1u64..4096, prop::sample::select(vec!["K", "M", "G"]), 0u64..100_000),
            1..5,
        ),
    ) {
        let project = Project::new();
        let doc = json!({
            "apps": apps.iter().map(|(name, (instances, size, unit, kill_ms))| json!({
                "name": name,
                "script": "app.js",
                "instances": instances,
                "max_memory_restart": format!("{size}{unit}"),
                "kill_timeout": format!("{kill_ms}ms"),
                "env": { "NAME": name },
            })).collect::<Vec<_>>(),
        });
        let mut seen: Option<Vec<kelpie_core::AppSpec>> = None;
        for (file, text) in texts(&doc) {
            let loaded = project.load(file, &text);
            prop_assert!(loaded.is_ok(), "{}: {:?}\n{}", file, loaded, text);
            let mut specs = loaded.map(|l| l.apps).unwrap_or_default();
            prop_assert_eq!(specs.len(), apps.len());
            for (spec, (name, (instances, size, unit, kill_ms))) in specs.iter().zip(&apps) {
                let shift = match *unit { "K" => 10, "M" => 20, _ => 30 };
                prop_assert_eq!(&spec.name, name);
                prop_assert_eq!(spec.instances, *instances);
                prop_assert_eq!(spec.max_memory_restart, Some(size << shift));
                prop_assert_eq!(spec.kill_timeout_ms, *kill_ms);
                prop_assert_eq!(spec.env.get("NAME"), Some(name));
            }
            // The source file differs by format; everything else must not.
            for spec in &mut specs {
                spec.source_file = None;
            }
            match &seen {
                Some(first) => prop_assert_eq!(first, &specs, "{}", file),
                None => seen = Some(specs),
            }
        }
    }

    #[test]
    fn any_start_flags_build_a_spec_or_explain(
        script in prop_oneof![Just("app.js".to_string()), any::<String>()],
        values in prop::collection::vec(prop_oneof![
            scalar().prop_map(|v| v.as_str().map(str::to_string)),
            any::<Option<String>>(),
        ], 16),
        args in prop::collection::vec(any::<String>(), 0..3),
    ) {
        let project = Project::new();
        let opts = ScriptOptions {
            name: values[0].clone(),
            instances: values[1].clone(),
            kill_timeout: values[2].clone(),
            max_memory_restart: values[3].clone(),
            kill_signal: values[4].clone(),
            port: values[5].clone(),
            ready_pattern: values[6].clone(),
            max_cpu: values[7].clone(),
            nice: values[8].clone(),
            cron_restart: values[9].clone(),
            cron_timezone: values[10].clone(),
            log_rotate_interval: values[11].clone(),
            health: kelpie_config::HealthFlags {
                health_http: values[12].clone(),
                health_interval: values[13].clone(),
                ..kelpie_config::HealthFlags::default()
            },
            watchdog: values[14].clone(),
            interpreter_args: values[15].clone(),
            args,
            ..ScriptOptions::default()
        };
        let _ = from_script(&script, &opts, &project.ctx);
    }

    #[test]
    fn any_daemon_settings_load_or_explain(text in prop_oneof![
        any::<String>(),
        "(\\[(logs|web|lgos)\\]\n)?((max_size|retain|compress|rotate_interval|port|host|token|x) = (\"[a-z0-9 ]{0,20}\"|[0-9\\-]{1,12}|true)\n){0,4}",
    ]) {
        let project = Project::new();
        let path = project.write("kelpie.toml", &text);
        if let Ok(settings) = DaemonSettings::load(&path) {
            if let Some(web) = settings.web {
                let _ = web.socket_addr();
            }
        }
    }

    #[test]
    fn sizes_parse_or_explain(text in any::<String>()) {
        if let Err(message) = parse_bytes(&text) {
            prop_assert!(message.to_string().starts_with("expected a size"));
        }
        if let Err(message) = parse_duration_ms(&text) {
            prop_assert!(message.to_string().starts_with("expected a duration"));
        }
    }

    #[test]
    fn sizes_and_durations_are_exact_or_refused_on_overflow(
        n in any::<u64>(),
        units in prop::sample::select(vec![
            ("", 1u64, "", 1u64),
            ("k", 1 << 10, "s", 1000),
            ("M", 1 << 20, "m", 60_000),
            ("gb", 1 << 30, "h", 3_600_000),
        ]),
    ) {
        let (size_unit, size_factor, duration_unit, duration_factor) = units;
        prop_assert_eq!(parse_bytes(&format!("{n}{size_unit}")).ok(), n.checked_mul(size_factor));
        prop_assert_eq!(
            parse_duration_ms(&format!(" {n} {duration_unit}")).ok(),
            n.checked_mul(duration_factor)
        );
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let project = Project::new();
    for (name, open) in [
        ("e.json", "["),
        ("e.json", "{\"apps\":"),
        ("e.yaml", "["),
        ("e.yaml", "- "),
        ("e.toml", "a = ["),
        ("e.toml", "a = {b = "),
    ] {
        let text = open.repeat(100_000);
        assert!(project.load(name, &text).is_err(), "{name}: {open}");
    }
}

#[test]
fn yaml_alias_bombs_are_refused() {
    // Each level refers to the one above nine times: 9^9 strings if expanded.
    let mut text = "a0: &a0 [\"x\"]\n".to_string();
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    text.push_str("apps: *a9\n");
    let started = std::time::Instant::now();
    assert!(Project::new().load("e.yaml", &text).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
