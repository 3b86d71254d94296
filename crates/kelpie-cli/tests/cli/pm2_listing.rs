//! `jlist` and `prettylist` read line by line as scripts written against PM2 read them: the
//! keys both show come in PM2's order (observed from PM2 7.0.4), so `grep`/`sed` pipelines
//! find the same lines.

use super::kelpie;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::process::Command;
use std::time::Duration;

/// Run `pipeline` with `$KELPIE` naming the binary under test and this home's variable set, as
/// a PM2 scenario runs `$pm2 ...`; its stdout.
fn shell(k: &kelpie_testkit::Kelpie, pipeline: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(pipeline)
        .env("KELPIE", env!("CARGO_BIN_EXE_kelpie"))
        .env("KELPIE_HOME", k.home())
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{pipeline}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A script that says when it gets SIGUSR2 (bash runs the trap between waits).
const SIGNALLED: &str =
    "trap 'echo got SIGUSR2' USR2\necho ready\nwhile true; do sleep 1 & wait $!; done\n";

#[test]
fn prettylist_pm_id_lines_give_the_ids_to_pm2_s_grep_and_sed() {
    let k = kelpie();
    let script = k.write("signal.sh", SIGNALLED);
    k.ok(&["start", &script, "--name", "signal"]);
    // PM2's e2e scenario for sendSignal, as it is written (with `$KELPIE` for `$pm2`).
    let out_log = shell(
        &k,
        r#"$KELPIE prettylist | grep -m 1 -E "pm_out_log_path:" | sed "s/.*'\([^']*\)',/\1/""#,
    );
    let out_log = out_log.trim();
    assert!(out_log.ends_with("signal-out.log"), "{out_log:?}");
    let id = shell(
        &k,
        r#"$KELPIE prettylist | grep -E "pm_id:" | sed "s/.*pm_id: \([^,]*\),/\1/""#,
    );
    // As under PM2: `pm2_env.pm_id` and the entry's own `pm_id`, both `pm_id: 0,`.
    assert_eq!(id, "0\n0\n");
    k.wait_for("the trap to be set", Duration::from_secs(30), || {
        std::fs::read_to_string(out_log).is_ok_and(|text| text.contains("ready"))
    });
    // `$ID` unquoted, as the scenario passes it: `sendSignal SIGUSR2 0 0`.
    shell(
        &k,
        &format!("$KELPIE sendSignal SIGUSR2 {}", id.replace('\n', " ")),
    );
    k.wait_for(
        "the signal to reach the app",
        Duration::from_secs(30),
        || std::fs::read_to_string(out_log).is_ok_and(|text| text.contains("got SIGUSR2")),
    );

    // With more apps and instances, every entry's two lines, in the list's order.
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "web", "-i", "2"]);
    let ids = shell(
        &k,
        r#"$KELPIE prettylist | grep -E "pm_id:" | sed "s/.*pm_id: \([^,]*\),/\1/""#,
    );
    assert_eq!(ids, "0\n0\n1\n1\n2\n2\n");
}

/// The keys of the top level of each entry and of its `pm2_env`, in the order they were written.
#[derive(Debug)]
struct EntryKeys {
    top: Vec<String>,
    pm2_env: Vec<String>,
}

/// Keys of an object in their order, their values skipped.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl<'de> serde::Deserialize<'de> for EntryKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntryKeys, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntryKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a jlist entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryKeys, A::Error> {
                let (mut top, mut pm2_env) = (Vec::new(), Vec::new());
                while let Some(key) = map.next_key::<String>()? {
                    if key == "pm2_env" {
                        pm2_env = map.next_value::<Keys>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                    top.push(key);
                }
                Ok(EntryKeys { top, pm2_env })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// `jlist`'s entries, their keys in order.
fn jlist_keys(json: &str) -> Vec<EntryKeys> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<EntryKeys>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<EntryKeys>, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.deserialize_seq(V).expect("jlist is a JSON list")
}

/// `prettylist`'s first entry's keys in order: its own (4 spaces in) and its `pm2_env`'s (6).
fn prettylist_keys(pretty: &str) -> EntryKeys {
    let key = |line: &str, indent: usize| {
        let rest = line.strip_prefix(&" ".repeat(indent))?;
        let (key, _) = rest.split_once(": ")?;
        let bare = !key.starts_with(' ') && !key.is_empty();
        bare.then(|| key.trim_matches('\'').to_string())
    };
    let first: Vec<&str> = pretty
        .lines()
        .skip(2)
        .take_while(|l| *l != "  },")
        .collect();
    let top = first.iter().filter_map(|l| key(l, 4)).collect();
    let start = first
        .iter()
        .position(|l| l.starts_with("    pm2_env: {"))
        .expect("pm2_env in prettylist");
    let pm2_env = first[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("    }"))
        .filter_map(|l| key(l, 6))
        .collect();
    EntryKeys { top, pm2_env }
}

/// The entry's keys as PM2 7.0.4 wrote them (`pm2 jlist`, Node 22) for a Node app of an
/// ecosystem file (`{ name, script, env: { FOO, NUM } }`), leaving out the variables PM2 copies
/// from `env` into `pm2_env` (the shell's, then the app's: Kelpie shows them in `env` only).
const PM2_TOP: &[&str] = &["pid", "name", "pm2_env", "pm_id", "monit"];
const PM2_ENV: &[&str] = &[
    "name",
    "env",
    "merge_logs",
    "vizion",
    "autostart",
    "autorestart",
    "instance_var",
    "pmx",
    "automation",
    "treekill",
    "username",
    "windowsHide",
    "kill_retry_time",
    "namespace",
    "node_args",
    "pm_exec_path",
    "pm_cwd",
    "exec_interpreter",
    "exec_mode",
    "instances",
    "pm_out_log_path",
    "pm_err_log_path",
    "pm_pid_path",
    "km_link",
    "vizion_running",
    "NODE_APP_INSTANCE",
    "unique_id",
    "status",
    "pm_uptime",
    "axm_actions",
    "axm_monitor",
    "axm_options",
    "axm_dynamic",
    "created_at",
    "pm_id",
    "restart_time",
    "unstable_restarts",
    "version",
    "node_version",
];
/// PM2's keys that Kelpie does not show: settings it has no use for (`automation`, `treekill`,
/// `windowsHide`, `kill_retry_time`), PM2 Plus's (`km_link`, `axm_dynamic`), the state of
/// PM2's git reader (`vizion_running`), and a pid file's path for an app without one.
const NOT_SHOWN: &[&str] = &[
    "automation",
    "treekill",
    "windowsHide",
    "kill_retry_time",
    "pm_pid_path",
    "km_link",
    "vizion_running",
    "axm_dynamic",
];

/// `keys` with only those also in `among`, in `keys`' order.
fn shared<'a>(keys: &'a [String], among: &[&str]) -> Vec<&'a str> {
    keys.iter()
        .map(String::as_str)
        .filter(|k| among.contains(k))
        .collect()
}

#[test]
fn jlist_and_prettylist_keys_come_in_pm2_s_order() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    k.write("app.js", "setInterval(() => {}, 1000);\n");
    let file = k.write(
        "ecosystem.config.js",
        "module.exports = { apps: [{ name: 'forky', script: './app.js', env: { FOO: 'bar', NUM: 3 } }] };\n",
    );
    k.ok(&["start", &file]);
    // `node_version` comes once the shim has said which Node runs.
    k.wait_for("the app's Node version", Duration::from_secs(30), || {
        k.app("forky")["pm2_env"]["node_version"].is_string()
    });
    let expected_env: Vec<&str> = PM2_ENV
        .iter()
        .copied()
        .filter(|k| !NOT_SHOWN.contains(k))
        .collect();
    let from_jlist = jlist_keys(&k.ok(&["jlist"]));
    let from_prettylist = prettylist_keys(&k.ok(&["prettylist"]));
    for entry in [&from_jlist[0], &from_prettylist] {
        assert_eq!(shared(&entry.top, PM2_TOP), PM2_TOP, "{entry:?}");
        assert_eq!(shared(&entry.pm2_env, PM2_ENV), expected_env, "{entry:?}");
    }
    // The app's variables are in `env`, nested as in PM2.
    let app = k.app("forky");
    assert_eq!(app["pm2_env"]["env"]["FOO"], "bar");
    assert_eq!(app["pm2_env"]["env"]["NUM"], 3);
}
