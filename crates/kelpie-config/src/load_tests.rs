//! End-to-end tests of file loading and `kelpie start <script>` flags.

use super::*;
use crate::example_ecosystem;
use kelpie_core::{AppSpec, ExecMode, ListenAddress, LogRotation, LogType};
use std::collections::BTreeMap;

#[path = "load_health_tests.rs"]
mod health;

/// A project directory with scripts, and a `bin/` holding fake interpreters; the context's
/// PATH is only that `bin/`, so results do not depend on the machine.
struct Project {
    dir: tempfile::TempDir,
    ctx: LoadContext,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        for exe in ["node", "bun", "deno", "bash", "python3", "mytool"] {
            executable(&bin.join(exe));
        }
        for script in ["app.js", "worker.js", "job.py"] {
            std::fs::write(dir.path().join(script), "").expect("write");
        }
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), bin.display().to_string());
        env.insert("HOME".to_string(), "/home/test".to_string());
        env.insert("SHELL_VAR".to_string(), "from-shell".to_string());
        let ctx = LoadContext {
            cwd: dir.path().to_path_buf(),
            env,
            profile: None,
            only: Vec::new(),
        };
        Project { dir, ctx }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn abs(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn load(&self, name: &str, text: &str) -> Result<Loaded, ConfigError> {
        self.write(name, text);
        // Relative, as typed on the command line: resolved against ctx.cwd, shown as typed.
        load_file(Path::new(name), &self.ctx)
    }

    /// Errors of an invalid file, as the user sees them.
    fn errors(&self, name: &str, text: &str) -> Vec<String> {
        match self.load(name, text) {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}

fn executable(p: &Path) {
    std::fs::write(p, "#!/bin/sh\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn have_node() -> bool {
    crate::paths::which("node", &LoadContext::default().path_var()).is_some()
}

#[test]
fn json_file_becomes_specs_with_file_defaults() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "args": "--port 80",
                "env": {"A": "1"}}]}"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = &loaded.apps[0];
    assert_eq!(spec.name, "api");
    assert_eq!(spec.script, p.abs("app.js"));
    assert_eq!(spec.interpreter.as_deref(), Some("node"));
    assert_eq!(spec.args, ["--port", "80"]);
    assert_eq!(spec.cwd, p.dir.path().display().to_string());
    assert_eq!(spec.source_file, Some(p.abs("ecosystem.json")));
    assert_eq!(*spec.inherited_env, p.ctx.env);
    assert_eq!(spec.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(spec.env_profile, None);
    assert_eq!(spec.namespace, "default");
    assert_eq!(spec.instances, 1);
    assert_eq!(spec.kill_timeout_ms, 1600);
}

#[test]
fn yaml_and_toml_files_load_the_same() {
    let p = Project::new();
    let yaml = p
        .load(
            "apps.yaml",
            "apps:\n  - name: api\n    script: app.js\n    max_restarts: 3\n",
        )
        .expect("yaml");
    let toml = p
        .load(
            "apps.toml",
            "[[apps]]\nname = \"api\"\nscript = \"app.js\"\nmax_restarts = 3\n",
        )
        .expect("toml");
    assert_eq!(yaml.apps[0].max_restarts, 3);
    assert_eq!(yaml.apps[0].script, toml.apps[0].script);
    assert_eq!(toml.apps[0].max_restarts, 3);
    let yml = p
        .load("apps.yml", "name: one\nscript: app.js\n")
        .expect("yml");
    assert_eq!(yml.apps[0].name, "one");
}

#[test]
fn javascript_files_are_evaluated_by_node() {
    if !have_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let mut p = Project::new();
    p.ctx.env.remove("PATH");
    let cjs = p
        .load(
            "ecosystem.config.js",
            "module.exports = { apps: [{ name: 'api', script: 'app.js', instances: 2 }] };",
        )
        .expect("cjs");
    assert_eq!(cjs.apps[0].instances, 2);
    let esm = p
        .load(
            "ecosystem.config.mjs",
            "export default { apps: [{ name: 'api', script: 'app.js' }] };",
        )
        .expect("esm");
    assert_eq!(esm.apps[0].name, "api");
}

#[test]
fn example_ecosystem_loads() {
    if !have_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let mut p = Project::new();
    p.ctx.env.remove("PATH");
    p.ctx.profile = Some("production".into());
    let loaded = p
        .load("ecosystem.config.js", example_ecosystem())
        .expect("example is valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = &loaded.apps[0];
    assert_eq!(spec.name, "api");
    assert_eq!(spec.env["NODE_ENV"], "production");
    assert_eq!(spec.env["PORT"], "3000");
    assert_eq!(spec.exec_mode, ExecMode::Cluster);
    assert_eq!(
        spec.listen.as_ref().and_then(ListenAddress::port),
        Some(3000)
    );
    assert_eq!(spec.max_memory_restart, Some(300 << 20));
}

#[test]
fn example_ecosystem_documents_profiles() {
    let text = example_ecosystem();
    assert!(text.contains("module.exports"));
    assert!(text.contains("env_production"));
    assert!(text.contains("--env production"));
}

#[test]
fn accepts_bare_array_and_single_app_object() {
    let p = Project::new();
    let array = p
        .load(
            "a.json",
            r#"[{"script": "app.js"}, {"script": "worker.js"}]"#,
        )
        .expect("array");
    let names: Vec<_> = array.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["app", "worker"]);
    let single = p.load("b.json", r#"{"script": "app.js"}"#).expect("object");
    assert_eq!(single.apps[0].name, "app");
    let err = p.load("c.json", "42").expect_err("should fail").to_string();
    assert!(
        err.starts_with("c.json: expected an object with `apps`"),
        "{err}"
    );
}

#[test]
fn camel_case_and_pm2_aliases_are_accepted() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"{"apps": [{"name": "api", "cmd": "app.js", "maxMemoryRestart": "200M",
                "node_args": "--inspect --max-old-space-size=64", "out": "logs/o.log",
                "err_log": "~/e.log", "combine_logs": true, "stop_signal": "TERM",
                "killTimeout": "3s", "execMode": "cluster_mode", "instances": "max",
                "stopExitCodes": 0, "expBackoffRestartDelay": 100, "restartDelay": "1s",
                "minUptime": "5s", "autorestart": false, "autostart": false,
                "namespace": "web"}]}"#,
        )
        .expect("loads");
    let spec = &loaded.apps[0];
    assert_eq!(spec.script, p.abs("app.js"));
    assert_eq!(spec.max_memory_restart, Some(200 << 20));
    assert_eq!(
        spec.interpreter_args,
        ["--inspect", "--max-old-space-size=64"]
    );
    assert_eq!(spec.out_file, Some(p.abs("logs/o.log")));
    assert_eq!(spec.error_file.as_deref(), Some("/home/test/e.log"));
    assert!(spec.merge_logs);
    assert_eq!(spec.kill_signal, "SIGTERM");
    assert_eq!(spec.kill_timeout_ms, 3000);
    assert_eq!(spec.exec_mode, ExecMode::Cluster);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    assert_eq!(spec.instances, cpus);
    assert_eq!(spec.stop_exit_codes, [0]);
    assert_eq!(spec.exp_backoff_restart_delay_ms, Some(100));
    assert_eq!(spec.restart_delay_ms, 1000);
    assert_eq!(spec.min_uptime_ms, 5000);
    assert!(!spec.autorestart);
    assert!(!spec.autostart);
    assert_eq!(spec.namespace, "web");
}

#[test]
fn exec_interpreter_alias_and_interpreter_none() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "exec_interpreter": "mytool"},
                {"name": "b", "script": "app.js", "interpreter": "none"}]"#,
        )
        .expect("loads");
    assert_eq!(loaded.apps[0].interpreter.as_deref(), Some("mytool"));
    assert_eq!(loaded.apps[1].interpreter, None);
}

#[test]
fn unsupported_fields_warn_once_per_field_naming_apps() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "automation": true, "username": "x"},
                         {"name": "worker", "script": "worker.js", "automation": 1, "treekill": false,
                          "watch": true, "watchOptions": {"usePolling": true}}],
                "deploy": {"production": {}}}"#,
        )
        .expect("loads");
    // `deploy` is no longer ignored: its `<env>.env` is read under `--env <env>`.
    assert_eq!(
        loaded.warnings,
        [
            "ecosystem.json: apps `api`, `worker`: `automation` is not supported yet by kelpie and is ignored",
            "ecosystem.json: app `api`: `username` is not supported yet by kelpie and is ignored",
            "ecosystem.json: app `worker`: `watchOptions` holds options of PM2's file watcher (chokidar), which do not apply to kelpie's watcher, and is ignored",
        ]
    );
}

#[test]
fn unknown_fields_are_warnings_naming_file_app_and_field_with_suggestions() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "max_memroy_restart": "1G", "flavour": 1},
                         {"script": "worker.js", "autorestrat": false}],
                "extra": true}"#,
        )
        .expect("unknown fields do not stop the load");
    assert_eq!(loaded.apps.len(), 2);
    assert_eq!(
        loaded.apps[0].max_memory_restart, None,
        "a typo sets nothing"
    );
    assert_eq!(
        loaded.warnings,
        [
            "ecosystem.json: unknown top-level key `extra` is ignored (kelpie reads `apps`, `deploy` and `static`)",
            "ecosystem.json: app `api`: unknown field `flavour` is ignored",
            "ecosystem.json: app `api`: unknown field `max_memroy_restart` is ignored (did you mean `max_memory_restart`?)",
            "ecosystem.json: app `worker`: unknown field `autorestrat` is ignored (did you mean `autorestart`?)",
        ]
    );
}

#[test]
fn strict_mode_turns_every_warning_into_one_error() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "max_memroy_restart": "1G", "automation": true}]}"#,
        )
        .expect("loads");
    let err = loaded.strict().expect_err("strict refuses warnings");
    assert!(matches!(err, ConfigError::Strict { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ecosystem.json: app `api`: unknown field `max_memroy_restart` is ignored (did you mean `max_memory_restart`?)\n\
         ecosystem.json: app `api`: `automation` is not supported yet by kelpie and is ignored\n\
         strict mode (--strict, or `strict = true` in kelpie.toml) makes these warnings errors: fix them, or start without strict mode"
    );
    let clean = p
        .load(
            "clean.json",
            r#"{"apps": [{"name": "api", "script": "app.js"}]}"#,
        )
        .expect("loads");
    assert_eq!(clean.strict().expect("no warnings").apps.len(), 1);
}

#[test]
fn invalid_values_of_known_fields_stay_errors() {
    let p = Project::new();
    let errors = p.errors(
        "ecosystem.json",
        r#"{"apps": [{"name": "api", "script": "app.js", "error": {"error_threshold": 50}, "bogus": 1}]}"#,
    );
    assert_eq!(
        errors,
        ["ecosystem.json: app `api`: field `error`: expected a non-empty string, got {\"error_threshold\":50}"]
    );
}

#[test]
fn error_and_output_are_pm2_aliases_of_the_log_files() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "a", "script": "app.js", "output": "logs/out.log", "error": "logs/err.log"},
                         {"name": "b", "script": "app.js", "out": "o.log", "err": "e.log"},
                         {"name": "c", "script": "app.js", "out_log": "o.log", "err_log": "e.log", "err_file": "x"}]}"#,
        )
        .expect("PM2 runs it: one of the two is used, and both are named");
    assert_eq!(
        loaded.warnings,
        ["ecosystem.json: app `c`: `err_file` and `err_log` both set `error_file`, differently: `err_file` is used, `err_log` ignored; keep one"]
    );
    assert_eq!(loaded.apps[2].error_file, Some(p.abs("x")));
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "a", "script": "app.js", "output": "logs/out.log", "error": "logs/err.log"},
                         {"name": "b", "script": "app.js", "out": "o.log", "err": "e.log"},
                         {"name": "c", "script": "app.js", "outLog": "o.log", "errLog": "e.log"}]}"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.apps[0].out_file, Some(p.abs("logs/out.log")));
    assert_eq!(loaded.apps[0].error_file, Some(p.abs("logs/err.log")));
    assert_eq!(loaded.apps[1].out_file, Some(p.abs("o.log")));
    assert_eq!(loaded.apps[1].error_file, Some(p.abs("e.log")));
    assert_eq!(loaded.apps[2].out_file, Some(p.abs("o.log")));
    assert_eq!(loaded.apps[2].error_file, Some(p.abs("e.log")));
}

#[test]
fn deploy_env_is_merged_over_env_and_under_env_profile() {
    let mut p = Project::new();
    let text = r#"{
        apps: [{name: 'api', script: 'app.js', env: {A: 'env', B: 'env'}, env_production: {A: 'profile'}},
               {name: 'worker', script: 'worker.js'}],
        deploy: {production: {user: 'node', host: '10.0.0.1', env: {A: 'deploy', B: 'deploy', C: 'deploy', N: 1}},
                 staging: {env: 'not an object, and not selected'}},
    }"#;
    let loaded = p.load("ecosystem.json", text).expect("loads");
    assert!(
        !loaded.apps[0].env.contains_key("C"),
        "no --env: deploy is not read"
    );
    p.ctx.profile = Some("production".into());
    let loaded = p.load("ecosystem.json", text).expect("loads");
    let env = &loaded.apps[0].env;
    assert_eq!(env["A"], "profile", "env_<profile> wins");
    assert_eq!(env["B"], "deploy", "deploy wins over env, as in PM2 7");
    assert_eq!(env["C"], "deploy");
    assert_eq!(env["N"], "1");
    assert_eq!(loaded.apps[1].env["C"], "deploy", "every app gets it");
    // worker has no env_production, but the file defines the environment in `deploy`.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    p.ctx.profile = Some("staging".into());
    let err = p.load("ecosystem.json", text).expect_err("bad deploy env");
    assert_eq!(
        err.to_string(),
        "ecosystem.json: `deploy.staging.env`: expected an object of environment variables, got \"not an object, and not selected\""
    );
}

#[test]
fn append_env_to_name_adds_the_profile_to_the_name() {
    let mut p = Project::new();
    let text = r#"[{name: 'web', script: 'app.js', appendEnvToName: true, env_dev: {PORT: 4000}},
                   {name: 'job', script: 'worker.js', append_env_to_name: true, depends_on: 'web'},
                   {name: 'plain', script: 'worker.js', depends_on: ['web', 'job'], env_dev: {}}]"#;
    let loaded = p.load("ecosystem.json", text).expect("loads");
    let names: Vec<&str> = loaded.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["web", "job", "plain"], "without --env, names stay");
    p.ctx.profile = Some("dev".into());
    let loaded = p.load("ecosystem.json", text).expect("loads");
    let names: Vec<&str> = loaded.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["web-dev", "job-dev", "plain"]);
    assert_eq!(loaded.apps[0].env["PORT"], "4000");
    assert_eq!(loaded.apps[1].depends_on, ["web-dev"]);
    assert_eq!(loaded.apps[2].depends_on, ["web-dev", "job-dev"]);
    // --only takes the names as written, as in PM2.
    p.ctx.only = vec!["web".into()];
    let loaded = p.load("ecosystem.json", text).expect("loads");
    assert_eq!(loaded.apps[0].name, "web-dev");

    p.ctx.only = Vec::new();
    let err = p
        .load(
            "clash.json",
            r#"[{name: 'web', script: 'app.js', append_env_to_name: true}, {name: 'web-dev', script: 'app.js'}]"#,
        )
        .expect_err("two apps named web-dev");
    assert!(
        err.to_string().contains("`web-dev` is used by 2 apps"),
        "{err}"
    );
    let errors = p.errors(
        "bad.json",
        r#"[{name: 'web', script: 'app.js', append_env_to_name: 'yes'}]"#,
    );
    assert_eq!(
        errors,
        ["bad.json: app `web`: field `append_env_to_name`: expected true or false, got \"yes\""]
    );
}

#[test]
fn stdin_files_are_json5_resolved_against_the_current_directory() {
    let p = Project::new();
    let text = "{apps: [{name: 'api', script: './app.js', bogus: 1}, {script: 'worker.js'}]}";
    let loaded = load_stdin(text, &p.ctx).expect("loads");
    assert_eq!(loaded.apps[0].script, p.abs("app.js"));
    assert_eq!(loaded.apps[0].cwd, p.dir.path().display().to_string());
    assert_eq!(loaded.apps[0].source_file, None);
    assert_eq!(
        loaded.warnings,
        ["<stdin>: app `api`: unknown field `bogus` is ignored"]
    );
    assert_eq!(
        app_names_in_stdin(text, &p.ctx).expect("names"),
        ["api", "worker"]
    );
    let err = load_stdin("{apps: [\n  {name: 'a' script: 'x'}]}", &p.ctx).expect_err("syntax");
    assert_eq!(err.to_string(), "<stdin>:2:14: expected `,` or `}`");
}

#[test]
fn all_errors_of_all_apps_are_reported_together() {
    let p = Project::new();
    let err = p
        .load(
            "ecosystem.json",
            r#"{"apps": [
                {"name": "api", "script": "app.js", "max_memory_restart": "lots", "kill_signal": "SIGNOPE"},
                {"name": "nocmd"},
                {"name": "gone", "script": "missing.js"}]}"#,
        )
        .expect_err("should fail");
    let ConfigError::Invalid { file, errors } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(file, "ecosystem.json");
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0]
        .starts_with("ecosystem.json: app `api`: field `kill_signal`: expected a signal name"));
    assert_eq!(
        errors[1],
        "ecosystem.json: app `api`: field `max_memory_restart`: expected a size like 200M, 1G or a number of bytes, got \"lots\""
    );
    assert_eq!(
        errors[2],
        "ecosystem.json: app `nocmd`: missing `script` (the file or command to run)"
    );
    assert_eq!(
        errors[3],
        format!(
            "ecosystem.json: app `gone`: script `{}` not found",
            p.abs("missing.js")
        )
    );
    assert_eq!(err.to_string().lines().count(), 4);
}

#[test]
fn a_command_line_that_names_nothing_needs_a_name() {
    // Found by fuzzing: an unclosed quote (or an empty first word) gave an app named "".
    let p = Project::new();
    let errors = p.errors(
        "e.yaml",
        "apps:\n  - script: 'echo \"hi'\n  - cmd: \"'' x\"\n  - name: ok\n    script: 'echo \"hi'\n",
    );
    assert_eq!(
        errors,
        [
            r#"e.yaml: app #1: field `script`: no app name can be taken from "echo \"hi"; set `name`"#,
            r#"e.yaml: app #2: field `cmd`: no app name can be taken from "'' x"; set `name`"#,
        ]
    );
    let err = from_script("echo \"hi", &ScriptOptions::default(), &p.ctx).expect_err("no name");
    assert!(
        err.to_string().contains("no app name can be taken from"),
        "{err}"
    );
}

#[test]
fn nameless_scriptless_apps_are_named_by_position() {
    let p = Project::new();
    let errors = p.errors("e.json", r#"[{"script": "app.js"}, {"args": "x"}]"#);
    assert_eq!(
        errors,
        ["e.json: app #2: missing `script` (the file or command to run)"]
    );
}

#[test]
fn wrong_types_name_the_field_as_written() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "api", "script": "app.js", "maxRestarts": "many", "env": ["A=1"], "autorestart": 1, "port": 0}]"#,
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors
        .iter()
        .any(|e| e.contains("field `maxRestarts`: expected a whole number")));
    assert!(errors
        .iter()
        .any(|e| e.contains("field `env`: expected an object")));
    assert!(errors
        .iter()
        .any(|e| e.contains("field `autorestart`: expected true or false")));
    assert!(errors
        .iter()
        .any(|e| e.contains("field `port`: expected a port number")));
}

#[test]
fn duplicate_names_are_errors() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "api", "script": "app.js"}, {"name": "api", "script": "worker.js"}]"#,
    );
    assert_eq!(
        errors,
        ["e.json: app name `api` is used by 2 apps; names must be unique within a file (set `name` on each)"]
    );
}

#[test]
fn only_filters_apps_and_rejects_unknown_names() {
    let mut p = Project::new();
    let text = r#"[{"name": "api", "script": "app.js"}, {"name": "worker", "script": "worker.js"},
                  {"name": "broken", "script": "missing.js"}]"#;
    p.ctx.only = vec!["worker".into(), "api".into()];
    let loaded = p.load("e.json", text).expect("broken app not selected");
    let names: Vec<_> = loaded.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    p.ctx.only = vec!["web".into()];
    let err = p.load("e.json", text).expect_err("should fail").to_string();
    assert_eq!(
        err,
        "e.json: --only `web`: no such app in this file; apps declared: `api`, `worker`, `broken`"
    );
}

#[test]
fn app_names_honour_only_without_validating() {
    let mut p = Project::new();
    let path = p.write(
        "e.json",
        r#"[{"name": "api", "script": "gone.js"}, {"script": "worker.js"}, {"name": "c", "script": "x"}]"#,
    );
    assert_eq!(
        app_names(&path, &p.ctx).expect("names"),
        ["api", "worker", "c"]
    );
    p.ctx.only = vec!["c".into(), "api".into()];
    assert_eq!(app_names(&path, &p.ctx).expect("names"), ["api", "c"]);
    p.ctx.only = vec!["zzz".into()];
    assert!(matches!(
        app_names(&path, &p.ctx),
        Err(ConfigError::UnknownOnly { .. })
    ));
}

#[test]
fn env_profiles_overlay_env_and_warn_when_missing() {
    let mut p = Project::new();
    p.ctx.profile = Some("production".into());
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "api", "script": "app.js", "env": {"MODE": "dev", "KEEP": 1},
                 "env_production": {"MODE": "prod"}, "env_staging": {"MODE": "stage"}},
                {"name": "worker", "script": "worker.js", "env": {"MODE": "dev"}}]"#,
        )
        .expect("loads");
    assert_eq!(loaded.apps[0].env["MODE"], "prod");
    assert_eq!(loaded.apps[0].env["KEEP"], "1");
    assert_eq!(loaded.apps[0].env_profile.as_deref(), Some("production"));
    assert_eq!(loaded.apps[1].env["MODE"], "dev");
    assert_eq!(
        loaded.warnings,
        ["e.json: app `worker`: no `env_production` section; `--env production` applies only its `env`"]
    );
}

#[test]
fn env_files_are_read_under_env_and_profiles() {
    let mut p = Project::new();
    p.ctx.profile = Some("production".into());
    std::fs::create_dir(p.path("config")).expect("mkdir");
    p.write(
        "config/base.env",
        "# shared\nDB_HOST=db.internal\nMODE=from-file\nTOKEN='s3cret'\n",
    );
    p.write("config/local.env", "export DB_HOST=localhost\n");
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "api", "script": "app.js", "envFile": ["config/base.env", "config/local.env"],
                 "env": {"MODE": "env"}, "env_production": {"LEVEL": "prod"}},
                {"name": "worker", "script": "worker.js", "env_file": "config/base.env"}]"#,
        )
        .expect("loads");
    // Later files win over earlier ones, `env` and the profile over the files.
    let api = &loaded.apps[0].env;
    assert_eq!(api["DB_HOST"], "localhost");
    assert_eq!(api["MODE"], "env");
    assert_eq!(api["TOKEN"], "s3cret");
    assert_eq!(api["LEVEL"], "prod");
    assert_eq!(loaded.apps[1].env["MODE"], "from-file");
    assert!(
        loaded.warnings.iter().all(|w| !w.contains("env_file")),
        "{:?}",
        loaded.warnings
    );

    // The flag: relative to --cwd.
    let opts = ScriptOptions {
        cwd: Some("config".into()),
        env_file: vec!["local.env".into()],
        ..ScriptOptions::default()
    };
    std::fs::write(p.path("config/app.js"), "").expect("write");
    let flagged = from_script("app.js", &opts, &p.ctx).expect("loads");
    assert_eq!(flagged.apps[0].env["DB_HOST"], "localhost");
}

#[test]
fn filter_env_reads_as_pm2_writes_it() {
    use kelpie_core::EnvFilter;
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "filter_env": true},
                {"name": "b", "script": "app.js", "filterEnv": "AWS_SECRET_ACCESS_KEY"},
                {"name": "c", "script": "app.js", "filter_env": ["SECRET", "TOKEN"]},
                {"name": "d", "script": "app.js", "filter_env": false},
                {"name": "e", "script": "app.js"}]"#,
        )
        .expect("loads");
    let filters: Vec<&EnvFilter> = loaded.apps.iter().map(|a| &a.filter_env).collect();
    assert_eq!(
        filters,
        [
            &EnvFilter::DropAll,
            &EnvFilter::Named("AWS_SECRET_ACCESS_KEY".into()),
            &EnvFilter::Containing(vec!["SECRET".into(), "TOKEN".into()]),
            &EnvFilter::KeepAll,
            &EnvFilter::KeepAll,
        ]
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The flag, repeatable: texts a name contains.
    std::fs::write(p.path("app.js"), "").expect("write");
    let opts = ScriptOptions {
        filter_env: vec!["SECRET".into()],
        ..ScriptOptions::default()
    };
    let flagged =
        from_script(&p.path("app.js").display().to_string(), &opts, &p.ctx).expect("loads");
    assert_eq!(
        flagged.apps[0].filter_env,
        EnvFilter::Containing(vec!["SECRET".into()])
    );
    let errors = p.errors(
        "e.json",
        r#"[{"name": "x", "script": "app.js", "filter_env": {}}]"#,
    );
    assert_eq!(
        errors,
        ["e.json: app `x`: field `filter_env`: expected true, a variable's name or a list of texts, got {}"]
    );
}

#[test]
fn a_missing_or_malformed_env_file_names_the_file_app_and_field() {
    let p = Project::new();
    p.write("bad.env", "A=1\nthis line has no equals sign\n");
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "env_file": "missing.env"},
            {"name": "b", "script": "app.js", "env_file": ["bad.env"]},
            {"name": "c", "script": "app.js", "env_file": 3}]"#,
    );
    let missing = p.abs("missing.env");
    let bad = p.abs("bad.env");
    assert_eq!(
        errors,
        [
            format!("e.json: app `a`: field `env_file`: cannot read `{missing}`: No such file or directory (os error 2)"),
            format!("e.json: app `b`: field `env_file`: `{bad}` line 2: expected NAME=value, got \"this line has no equals sign\""),
            "e.json: app `c`: field `env_file`: expected a non-empty string, got 3".to_string(),
        ]
    );
}

#[test]
fn unselected_profiles_are_still_validated() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "env_prod": "x"}]"#,
    );
    assert_eq!(
        errors,
        ["e.json: app `a`: field `env_prod`: expected an object of environment variables, got \"x\""]
    );
}

#[test]
fn port_sets_port_over_env_and_nested_env_is_json() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "port": 8080,
                 "env": {"PORT": 1, "CFG": {"x": true}, "ON": false}}]"#,
        )
        .expect("loads");
    let env = &loaded.apps[0].env;
    assert_eq!(env["PORT"], "8080");
    assert_eq!(env["CFG"], r#"{"x":true}"#);
    assert_eq!(env["ON"], "false");
    assert_eq!(
        loaded.apps[0].listen,
        Some(ListenAddress::Tcp {
            host: None,
            port: 8080
        })
    );
}

#[test]
fn port_takes_host_port_and_unix_paths() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "port": "127.0.0.1:3000"},
                {"name": "b", "script": "app.js", "port": "[::1]:3001"},
                {"name": "c", "script": "app.js", "port": "unix:/run/c.sock"},
                {"name": "d", "script": "app.js", "port": "/run/d.sock"},
                {"name": "e", "script": "app.js", "port": "3002"},
                {"name": "f", "script": "app.js"}]"#,
        )
        .expect("loads");
    let listens: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| a.listen.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(
        listens,
        [
            Some("127.0.0.1:3000".to_string()),
            Some("[::1]:3001".to_string()),
            Some("unix:/run/c.sock".to_string()),
            Some("unix:/run/d.sock".to_string()),
            Some("3002".to_string()),
            None,
        ]
    );
    let ports: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| a.env.get("PORT").map(String::as_str))
        .collect();
    assert_eq!(
        ports,
        [
            Some("3000"),
            Some("3001"),
            Some("/run/c.sock"),
            Some("/run/d.sock"),
            Some("3002"),
            None
        ]
    );
}

#[test]
fn reuse_port_and_increment_var_port_leave_the_socket_to_the_app() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "port": 3000, "reuse_port": true},
                {"name": "b", "script": "app.js", "port": 3000, "increment_var": "PORT"},
                {"name": "c", "script": "app.js", "port": 3000, "reusePort": false},
                {"name": "d", "script": "app.js", "reuse_port": true}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let apps = &loaded.apps;
    assert!(apps[0].reuse_port);
    assert_eq!(apps[0].listen, None);
    assert_eq!(apps[0].env["PORT"], "3000");
    assert_eq!(apps[1].listen, None);
    assert_eq!(apps[1].env["PORT"], "3000");
    assert!(!apps[2].reuse_port);
    assert!(apps[2].listen.is_some());
    assert!(apps[3].reuse_port);
    assert_eq!(apps[3].listen, None);
    assert!(!apps[3].env.contains_key("PORT"));
}

#[test]
fn bad_ports_name_the_field() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "port": "web"},
            {"name": "b", "script": "app.js", "port": "unix:rel.sock"},
            {"name": "c", "script": "app.js", "port": true, "reuse_port": "yes"},
            {"name": "d", "script": "app.js", "port": "/run/d.sock", "reusePort": true}]"#,
    );
    let forms = "a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock)";
    assert_eq!(
        errors,
        [
            format!("e.json: app `a`: field `port`: expected {forms}, got \"web\""),
            format!("e.json: app `b`: field `port`: expected {forms}, got \"unix:rel.sock\""),
            "e.json: app `c`: field `reuse_port`: expected true or false, got \"yes\"".to_string(),
            format!("e.json: app `c`: field `port`: expected {forms}, got true"),
            "e.json: app `d`: field `reusePort`: SO_REUSEPORT is for TCP ports, not a Unix socket (`port: unix:/run/d.sock`); remove `reusePort` to let Kelpie share the socket".to_string(),
        ]
    );
}

#[test]
fn cwd_is_relative_to_the_file_and_must_exist() {
    let p = Project::new();
    std::fs::create_dir(p.path("svc")).expect("mkdir");
    std::fs::write(p.path("svc/main.py"), "").expect("write");
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "svc", "cwd": "svc", "script": "main.py"}]"#,
        )
        .expect("loads");
    let spec = &loaded.apps[0];
    assert_eq!(spec.cwd, p.abs("svc"));
    assert_eq!(spec.script, p.abs("svc/main.py"));
    assert_eq!(spec.interpreter.as_deref(), Some("python3"));
    assert_eq!(spec.env["PYTHONUNBUFFERED"], "1");
    let errors = p.errors(
        "e.json",
        r#"[{"name": "x", "cwd": "nowhere", "script": "a.js"}]"#,
    );
    assert_eq!(
        errors,
        [format!(
            "e.json: app `x`: field `cwd`: working directory `{}` not found",
            p.abs("nowhere")
        )]
    );
}

#[test]
fn python_unbuffered_respects_existing_setting() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"script": "job.py", "env": {"PYTHONUNBUFFERED": "0"}}]"#,
        )
        .expect("loads");
    assert_eq!(loaded.apps[0].env["PYTHONUNBUFFERED"], "0");
    assert_eq!(loaded.apps[0].name, "job");
}

#[test]
fn command_lines_and_path_commands() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"script": "python3 -m http.server 8000"}, {"script": "mytool", "args": ["x"]}]"#,
        )
        .expect("loads");
    let shell = &loaded.apps[0];
    assert_eq!(shell.name, "python3");
    assert_eq!(shell.interpreter.as_deref(), Some("bash"));
    assert_eq!(shell.interpreter_args, ["-c"]);
    assert_eq!(shell.script, "python3 -m http.server 8000");
    let tool = &loaded.apps[1];
    assert_eq!(tool.name, "mytool");
    assert_eq!(tool.script, "mytool");
    assert_eq!(tool.interpreter, None);
}

#[test]
fn file_level_errors_are_clear() {
    let p = Project::new();
    let err = p
        .load(
            "ecosystem.json",
            "{\n  \"apps\": [\n    {\"name\": \"a\" \"script\": \"x\"}\n  ]\n}",
        )
        .expect_err("should fail")
        .to_string();
    assert_eq!(err, "ecosystem.json:3:18: expected `,` or `}`");
    let err = load_file(Path::new("absent.json"), &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert!(err.starts_with("cannot read absent.json: "), "{err}");
    let err = load_file(Path::new("absent.config.js"), &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert!(err.starts_with("cannot read absent.config.js: "), "{err}");
    let err = p
        .load("apps.ini", "x")
        .expect_err("should fail")
        .to_string();
    assert!(err.contains("unknown ecosystem file type"), "{err}");
}

#[test]
fn javascript_without_node_is_a_clear_error() {
    let p = Project::new();
    let err = p
        .load("ecosystem.config.js", "module.exports = {}")
        .expect_err("should fail")
        .to_string();
    // The project's PATH has a fake `node` that prints nothing: not a JSON config.
    assert!(
        err.starts_with("cannot read ecosystem.config.js: Node.js failed")
            || err.contains("not JSON"),
        "{err}"
    );
    let mut q = Project::new();
    q.ctx.env.insert("PATH".into(), "/nonexistent".into());
    let err = q
        .load("ecosystem.config.js", "module.exports = {}")
        .expect_err("should fail")
        .to_string();
    assert!(err.contains("`node` was not found in PATH"), "{err}");
}

#[test]
fn from_script_uses_flags_and_cli_cwd() {
    let p = Project::new();
    let opts = ScriptOptions {
        name: Some("web".into()),
        args: vec!["--port".into(), "80".into()],
        interpreter_args: Some("--inspect '--title=a b'".into()),
        instances: Some("2".into()),
        kill_timeout: Some("5s".into()),
        max_memory_restart: Some("1G".into()),
        stop_exit_codes: vec!["0".into(), "3".into()],
        no_autorestart: true,
        merge_logs: true,
        kill_signal: Some("SIGTERM".into()),
        max_restarts: Some("4".into()),
        out_file: Some("out.log".into()),
        ..ScriptOptions::default()
    };
    let loaded = from_script("app.js", &opts, &p.ctx).expect("builds");
    let spec = &loaded.apps[0];
    assert_eq!(spec.name, "web");
    assert_eq!(spec.script, p.abs("app.js"));
    assert_eq!(spec.cwd, p.dir.path().display().to_string());
    assert_eq!(spec.args, ["--port", "80"]);
    assert_eq!(spec.interpreter_args, ["--inspect", "--title=a b"]);
    assert_eq!(spec.instances, 2);
    // `-i` on a Node script selects cluster mode, as in PM2.
    assert_eq!(spec.exec_mode, ExecMode::Cluster);
    assert_eq!(spec.kill_timeout_ms, 5000);
    assert_eq!(spec.max_memory_restart, Some(1 << 30));
    assert_eq!(spec.stop_exit_codes, [0, 3]);
    assert!(!spec.autorestart);
    assert!(spec.merge_logs);
    assert_eq!(spec.max_restarts, 4);
    assert_eq!(spec.out_file, Some(p.abs("out.log")));
    assert_eq!(spec.source_file, None);
    assert_eq!(spec.env_profile, None);
    assert_eq!(*spec.inherited_env, p.ctx.env);
}

#[test]
fn from_script_defaults_and_relative_cwd() {
    let p = Project::new();
    std::fs::create_dir(p.path("sub")).expect("mkdir");
    std::fs::write(p.path("sub/tool.sh"), "").expect("write");
    let opts = ScriptOptions {
        cwd: Some("sub".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("tool.sh", &opts, &p.ctx).expect("builds").apps[0];
    assert_eq!(spec.name, "tool");
    assert_eq!(spec.cwd, p.abs("sub"));
    assert_eq!(spec.script, p.abs("sub/tool.sh"));
    assert_eq!(spec.interpreter.as_deref(), Some("bash"));
    let none = ScriptOptions {
        interpreter: Some("none".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &none, &p.ctx).expect("builds").apps[0];
    assert_eq!(spec.interpreter, None);
}

#[test]
fn from_script_validates_like_files() {
    let p = Project::new();
    let opts = ScriptOptions {
        kill_timeout: Some("forever".into()),
        instances: Some("lots".into()),
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("app `app`: field `kill_timeout`: expected a duration")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("app `app`: field `instances`:")));
    let err = from_script("x.js", &ScriptOptions::default(), &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert_eq!(
        err,
        format!("app `x`: script `{}` not found", p.abs("x.js"))
    );
}

#[test]
fn log_fields_are_read_without_warnings() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "api", "script": "app.js", "log_file": "logs/all.log",
                 "log_date_format": "YYYY-MM-DD HH:mm Z", "log_type": "json",
                 "disable_logs": true, "log_max_size": "512K", "log_retain": 3,
                 "log_compress": false, "log_rotate_interval": "hourly"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = &loaded.apps[0];
    assert_eq!(spec.log_file, Some(p.abs("logs/all.log")));
    assert_eq!(spec.log_date_format.as_deref(), Some("YYYY-MM-DD HH:mm Z"));
    assert_eq!(spec.log_type, LogType::Json);
    assert!(spec.disable_logs);
    assert_eq!(
        spec.log_rotation,
        LogRotation {
            max_size: Some(512 * 1024),
            retain: Some(3),
            compress: Some(false),
            interval_ms: Some(3_600_000),
        }
    );
}

#[test]
fn log_fields_default_to_none_so_the_daemon_decides() {
    let p = Project::new();
    let loaded = p
        .load("e.json", r#"[{"name": "api", "script": "app.js"}]"#)
        .expect("loads");
    let spec = &loaded.apps[0];
    assert_eq!(spec.log_file, None);
    assert_eq!(spec.log_date_format, None);
    assert_eq!(spec.log_type, LogType::Raw);
    assert!(!spec.disable_logs);
    assert_eq!(spec.log_rotation, LogRotation::default());
}

#[test]
fn log_fields_accept_camel_case_and_the_log_alias() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "api", "script": "app.js", "log": true, "logDateFormat": "HH:mm",
                 "logType": "raw", "disableLogs": false, "logMaxSize": 0, "logRetain": "0",
                 "logCompress": "true", "logRotateInterval": "never"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = &loaded.apps[0];
    assert_eq!(spec.log_file.as_deref(), Some(""));
    assert_eq!(spec.log_date_format.as_deref(), Some("HH:mm"));
    assert_eq!(spec.log_type, LogType::Raw);
    assert!(!spec.disable_logs);
    assert_eq!(
        spec.log_rotation,
        LogRotation {
            max_size: Some(0),
            retain: Some(0),
            compress: Some(true),
            interval_ms: Some(0),
        }
    );
    let loaded = p
        .load(
            "e.yaml",
            "apps:\n  - name: api\n    script: app.js\n    logFile: ~/api.log\n    logRotateInterval: 6h\n    logMaxSize: 10M\n",
        )
        .expect("yaml loads");
    let spec = &loaded.apps[0];
    assert_eq!(spec.log_file.as_deref(), Some("/home/test/api.log"));
    assert_eq!(spec.log_rotation.interval_ms, Some(6 * 3_600_000));
    assert_eq!(spec.log_rotation.max_size, Some(10 << 20));
}

#[test]
fn log_file_paths_resolve_like_out_file() {
    let p = Project::new();
    std::fs::create_dir(p.path("svc")).expect("mkdir");
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "log": "a.log"},
                {"name": "b", "script": "../app.js", "cwd": "svc", "log_file": "../b.log", "out_file": "o.log"},
                {"name": "c", "script": "app.js", "log_file": false},
                {"name": "d", "script": "app.js", "log_file": "/dev/null", "out_file": "NULL"},
                {"name": "e", "script": "app.js", "log_file": "NULL", "error_file": "/dev/null"}]"#,
        )
        .expect("loads");
    let apps = &loaded.apps;
    assert_eq!(apps[0].log_file, Some(p.abs("a.log")));
    assert_eq!(apps[1].log_file, Some(p.abs("b.log")));
    assert_eq!(apps[1].out_file, Some(p.abs("svc/o.log")));
    assert_eq!(apps[2].log_file, None);
    assert_eq!(apps[3].log_file.as_deref(), Some("/dev/null"));
    assert_eq!(apps[3].out_file.as_deref(), Some("NULL"));
    assert_eq!(apps[4].log_file.as_deref(), Some("NULL"));
    assert_eq!(apps[4].error_file.as_deref(), Some("/dev/null"));
}

#[test]
fn time_true_overrides_the_date_format() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "time": true, "log_date_format": "HH:mm"},
                {"name": "b", "script": "app.js", "time": true},
                {"name": "c", "script": "app.js", "time": false, "log_date_format": "HH:mm"},
                {"name": "d", "script": "app.js", "time": false}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let formats: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| a.log_date_format.as_deref())
        .collect();
    assert_eq!(
        formats,
        [
            Some("YYYY-MM-DDTHH:mm:ss"),
            Some("YYYY-MM-DDTHH:mm:ss"),
            Some("HH:mm"),
            None
        ]
    );
}

#[test]
fn bad_log_fields_are_all_reported() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "api", "script": "app.js", "log_file": 3, "logType": "xml",
             "log_date_format": "", "time": "yes", "disable_logs": "no",
             "log_max_size": "lots", "log_retain": -1, "log_compress": "maybe",
             "log_rotate_interval": "30s"},
            {"name": "w", "script": "app.js", "log": "a.log", "log_file": "b.log",
             "logRotateInterval": "weekly"}]"#,
    );
    assert_eq!(
        errors,
        [
            "e.json: app `api`: field `log_file`: expected a file path, true (the default file) or false, got 3",
            "e.json: app `api`: field `log_date_format`: expected a non-empty string, got \"\"",
            "e.json: app `api`: field `time`: expected true or false, got \"yes\"",
            "e.json: app `api`: field `disable_logs`: expected true or false, got \"no\"",
            "e.json: app `api`: field `log_max_size`: expected a size like 200M, 1G or a number of bytes, got \"lots\"",
            "e.json: app `api`: field `log_retain`: expected a whole number ≥ 0, got -1",
            "e.json: app `api`: field `log_compress`: expected true or false, got \"maybe\"",
            "e.json: app `api`: field `log_rotate_interval`: expected at least 1 minute (or \"never\"), got \"30s\"",
            "e.json: app `w`: field `logRotateInterval`: expected \"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds, got \"weekly\"",
        ]
    );
}

#[test]
fn from_script_takes_log_flags() {
    let p = Project::new();
    let opts = ScriptOptions {
        log_file: Some("all.log".into()),
        log_date_format: Some("HH:mm".into()),
        time: true,
        log_type: Some("json".into()),
        disable_logs: true,
        log_max_size: Some("10M".into()),
        log_retain: Some("5".into()),
        no_log_compress: true,
        log_rotate_interval: Some("6h".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &opts, &p.ctx).expect("builds").apps[0];
    assert_eq!(spec.log_file, Some(p.abs("all.log")));
    assert_eq!(spec.log_date_format.as_deref(), Some("YYYY-MM-DDTHH:mm:ss"));
    assert_eq!(spec.log_type, LogType::Json);
    assert!(spec.disable_logs);
    assert_eq!(
        spec.log_rotation,
        LogRotation {
            max_size: Some(10 << 20),
            retain: Some(5),
            compress: Some(false),
            interval_ms: Some(6 * 3_600_000),
        }
    );
    let bare = ScriptOptions {
        log_file: Some(String::new()),
        log_date_format: Some("HH:mm".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &bare, &p.ctx).expect("builds").apps[0];
    assert_eq!(spec.log_file.as_deref(), Some(""));
    assert_eq!(spec.log_date_format.as_deref(), Some("HH:mm"));
    assert_eq!(spec.log_rotation, LogRotation::default());
    let none = from_script("app.js", &ScriptOptions::default(), &p.ctx).expect("builds");
    assert_eq!(none.apps[0].log_file, None);
    assert_eq!(none.apps[0].log_date_format, None);
}

#[test]
fn from_script_validates_log_flags_like_files() {
    let p = Project::new();
    let opts = ScriptOptions {
        log_type: Some("text".into()),
        log_max_size: Some("big".into()),
        log_retain: Some("many".into()),
        log_rotate_interval: Some("5s".into()),
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "app `app`: field `log_max_size`: expected a size like 200M, 1G or a number of bytes, got \"big\"",
            "app `app`: field `log_retain`: expected a whole number ≥ 0, got \"many\"",
            "app `app`: field `log_rotate_interval`: expected at least 1 minute (or \"never\"), got \"5s\"",
        ]
    );
}

#[test]
fn readiness_and_instance_fields_are_read_without_warnings() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "a", "script": "app.js", "wait_ready": true, "listen_timeout": "8s",
                 "ready_pattern": "listening on \\d+", "shutdown_with_message": true,
                 "instance_var": "INSTANCE_ID", "increment_var": "PORT"},
                {"name": "b", "script": "app.js", "waitReady": "false", "listenTimeout": 500,
                 "readyPattern": "^ready$", "shutdownWithMessage": false,
                 "instanceVar": "IDX", "incrementVar": "WORKER_PORT"},
                {"name": "c", "script": "app.js"}]"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let a = &loaded.apps[0];
    assert!(a.wait_ready);
    assert_eq!(a.listen_timeout_ms, 8000);
    assert_eq!(a.ready_pattern.as_deref(), Some("listening on \\d+"));
    assert!(a.shutdown_with_message);
    assert_eq!(a.instance_var, "INSTANCE_ID");
    assert_eq!(a.increment_var.as_deref(), Some("PORT"));
    let b = &loaded.apps[1];
    assert!(!b.wait_ready);
    assert_eq!(b.listen_timeout_ms, 500);
    assert_eq!(b.ready_pattern.as_deref(), Some("^ready$"));
    assert!(!b.shutdown_with_message);
    assert_eq!(b.instance_var, "IDX");
    assert_eq!(b.increment_var.as_deref(), Some("WORKER_PORT"));
    let c = &loaded.apps[2];
    assert!(!c.wait_ready);
    assert_eq!(c.listen_timeout_ms, 3000);
    assert_eq!(c.ready_pattern, None);
    assert!(!c.shutdown_with_message);
    assert_eq!(c.instance_var, "NODE_APP_INSTANCE");
    assert_eq!(c.increment_var, None);
}

#[test]
fn bad_readiness_and_instance_fields_name_the_field() {
    let p = Project::new();
    let errors = p.errors(
        "e.json",
        r#"[{"name": "a", "script": "app.js", "wait_ready": "yes", "ready_pattern": "(ready",
             "listen_timeout": "soon", "shutdown_with_message": 1, "instance_var": "",
             "incrementVar": "MY-PORT"}]"#,
    );
    assert_eq!(
        errors,
        [
            "e.json: app `a`: field `wait_ready`: expected true or false, got \"yes\"",
            "e.json: app `a`: field `ready_pattern`: expected a valid regular expression, got \"(ready\" (unclosed group)",
            "e.json: app `a`: field `listen_timeout`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"soon\"",
            "e.json: app `a`: field `shutdown_with_message`: expected true or false, got 1",
            "e.json: app `a`: field `instance_var`: expected an environment variable name (letters, digits and _, not starting with a digit), got \"\"",
            "e.json: app `a`: field `incrementVar`: expected an environment variable name (letters, digits and _, not starting with a digit), got \"MY-PORT\"",
        ]
    );
}

#[test]
fn instances_of_node_or_bun_apps_select_cluster_mode() {
    let p = Project::new();
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "one", "script": "app.js", "instances": 1},
                {"name": "max", "script": "app.js", "instances": "max"},
                {"name": "single", "script": "app.js"},
                {"name": "py", "script": "job.py", "instances": 4},
                {"name": "forked", "script": "app.js", "instances": 4, "exec_mode": "fork"},
                {"name": "bun", "script": "app.js", "interpreter": "bun", "instances": 2},
                {"name": "deno", "script": "app.js", "interpreter": "deno", "instances": 2},
                {"name": "direct", "script": "mytool", "instances": 2},
                {"name": "shell", "script": "node app.js", "instances": 2},
                {"name": "py-cluster", "script": "job.py", "exec_mode": "cluster"}]"#,
        )
        .expect("loads");
    let modes: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.exec_mode))
        .collect();
    assert_eq!(
        modes,
        [
            ("one", ExecMode::Cluster),
            ("max", ExecMode::Cluster),
            ("single", ExecMode::Fork),
            ("py", ExecMode::Fork),
            ("forked", ExecMode::Fork),
            ("bun", ExecMode::Cluster),
            ("deno", ExecMode::Cluster),
            ("direct", ExecMode::Fork),
            ("shell", ExecMode::Fork),
            ("py-cluster", ExecMode::Cluster),
        ]
    );
}

#[test]
fn instances_flag_selects_cluster_mode_for_node_only() {
    let p = Project::new();
    let flags = |script: &str, instances: Option<&str>| {
        let opts = ScriptOptions {
            instances: instances.map(str::to_string),
            ..ScriptOptions::default()
        };
        from_script(script, &opts, &p.ctx).expect("builds").apps[0].exec_mode
    };
    assert_eq!(flags("app.js", Some("1")), ExecMode::Cluster);
    assert_eq!(flags("app.js", Some("-1")), ExecMode::Cluster);
    assert_eq!(flags("app.js", None), ExecMode::Fork);
    assert_eq!(flags("job.py", Some("2")), ExecMode::Fork);
}

#[test]
fn cluster_apps_listen_on_a_numeric_port_from_the_env() {
    let mut p = Project::new();
    p.ctx.profile = Some("prod".into());
    p.ctx.env.insert("PORT".into(), "5000".into());
    let loaded = p
        .load(
            "e.json",
            r#"[{"name": "env", "script": "app.js", "instances": 2, "env": {"PORT": 4000}},
                {"name": "profile", "script": "app.js", "instances": 2, "env": {"PORT": 4000},
                 "env_prod": {"PORT": "4100"}},
                {"name": "shell", "script": "app.js", "instances": 2, "env_prod": {}},
                {"name": "word", "script": "app.js", "instances": 2, "env": {"PORT": "http"}},
                {"name": "fork", "script": "job.py", "instances": 2, "env": {"PORT": 4000}},
                {"name": "inc", "script": "app.js", "instances": 2, "env": {"PORT": 4000},
                 "increment_var": "PORT"},
                {"name": "reuse", "script": "app.js", "instances": 2, "env": {"PORT": 4000},
                 "reuse_port": true},
                {"name": "port", "script": "app.js", "instances": 2, "env": {"PORT": 4000},
                 "port": 4200}]"#,
        )
        .expect("loads");
    let listens: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.listen.as_ref().and_then(ListenAddress::port),
            )
        })
        .collect();
    assert_eq!(
        listens,
        [
            ("env", Some(4000)),
            ("profile", Some(4100)),
            ("shell", Some(5000)),
            ("word", None),
            ("fork", None),
            ("inc", None),
            ("reuse", None),
            ("port", Some(4200)),
        ]
    );
    let tcp_any = |a: &AppSpec| matches!(a.listen, Some(ListenAddress::Tcp { host: None, .. }));
    assert!(tcp_any(&loaded.apps[0]));
    // The env is left as it was: the app still reads PORT.
    assert_eq!(loaded.apps[3].env["PORT"], "http");
    assert_eq!(loaded.apps[2].env.get("PORT"), None);
}

#[test]
fn from_script_takes_port_readiness_and_instance_flags() {
    let p = Project::new();
    let opts = ScriptOptions {
        port: Some("127.0.0.1:3000".into()),
        wait_ready: true,
        listen_timeout: Some("10s".into()),
        ready_pattern: Some("^listening".into()),
        shutdown_with_message: true,
        instance_var: Some("INSTANCE".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &opts, &p.ctx).expect("builds").apps[0];
    assert_eq!(
        spec.listen,
        Some(ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: 3000
        })
    );
    assert_eq!(spec.env["PORT"], "3000");
    assert!(!spec.reuse_port);
    assert!(spec.wait_ready);
    assert_eq!(spec.listen_timeout_ms, 10_000);
    assert_eq!(spec.ready_pattern.as_deref(), Some("^listening"));
    assert!(spec.shutdown_with_message);
    assert_eq!(spec.instance_var, "INSTANCE");
    assert_eq!(spec.exec_mode, ExecMode::Fork);

    let reuse = ScriptOptions {
        port: Some("8080".into()),
        reuse_port: true,
        instances: Some("2".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("app.js", &reuse, &p.ctx).expect("builds").apps[0];
    assert!(spec.reuse_port);
    assert_eq!(spec.listen, None);
    assert_eq!(spec.env["PORT"], "8080");
    assert_eq!(spec.exec_mode, ExecMode::Cluster);

    let unix = ScriptOptions {
        port: Some("/tmp/app.sock".into()),
        ..ScriptOptions::default()
    };
    let spec = &from_script("job.py", &unix, &p.ctx).expect("builds").apps[0];
    assert_eq!(
        spec.listen.as_ref().map(ToString::to_string).as_deref(),
        Some("unix:/tmp/app.sock")
    );
    assert_eq!(spec.env["PORT"], "/tmp/app.sock");

    let defaults = &from_script("app.js", &ScriptOptions::default(), &p.ctx)
        .expect("builds")
        .apps[0];
    assert_eq!(defaults.listen, None);
    assert!(!defaults.wait_ready && !defaults.shutdown_with_message && !defaults.reuse_port);
    assert_eq!(defaults.listen_timeout_ms, 3000);
    assert_eq!(defaults.instance_var, "NODE_APP_INSTANCE");
}

#[test]
fn from_script_validates_port_readiness_and_instance_flags() {
    let p = Project::new();
    let opts = ScriptOptions {
        port: Some("99999".into()),
        listen_timeout: Some("later".into()),
        ready_pattern: Some("[ready".into()),
        instance_var: Some("2=X".into()),
        ..ScriptOptions::default()
    };
    let err = from_script("app.js", &opts, &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "app `app`: field `ready_pattern`: expected a valid regular expression, got \"[ready\" (unclosed character class)",
            "app `app`: field `listen_timeout`: expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got \"later\"",
            "app `app`: field `instance_var`: expected an environment variable name (letters, digits and _, not starting with a digit), got \"2=X\"",
            "app `app`: field `port`: expected a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock), got \"99999\"",
        ]
    );
}

#[test]
fn cluster_instances_without_a_port_share_through_the_shim_or_are_refused() {
    let p = Project::new();
    let mut ctx = p.ctx.clone();
    ctx.env.remove("PORT");
    let script = |script: &str, instances: &str| {
        let opts = ScriptOptions {
            instances: Some(instances.to_string()),
            ..ScriptOptions::default()
        };
        from_script(script, &opts, &ctx).expect("builds")
    };
    // Node: the instances share the ports their code listens on; nothing to warn about.
    let node = script("app.js", "2");
    assert!(node.warnings.is_empty(), "{:?}", node.warnings);
    assert!(node.apps[0].shares_node_ports());
    // Bun and Deno: the runtime shim binds their ports with SO_REUSEPORT; nothing to warn about.
    for runtime in ["bun", "deno"] {
        let loaded = p
            .load(
                &format!("{runtime}.json"),
                &format!(
                    r#"[{{"name": "b", "script": "app.js", "interpreter": "{runtime}", "instances": 2, "port": 3000}}]"#
                ),
            )
            .expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let app = &loaded.apps[0];
        assert_eq!(app.exec_mode, kelpie_core::ExecMode::Cluster, "{runtime}");
        assert!(app.shares_reused_ports(), "{runtime}");
        // `port` sets PORT; Kelpie owns no socket the runtime could not serve.
        assert_eq!(app.listen, None, "{runtime}");
        assert_eq!(app.env.get("PORT").map(String::as_str), Some("3000"));
    }
    // Anything else in cluster mode with no way to share its port: that app is refused, naming
    // the file, the app, the field and the fixes; the file's other apps start.
    let loaded = p
        .load(
            "py.json",
            r#"[{"name": "api", "script": "job.py", "exec_mode": "cluster", "instances": 4},
                {"name": "fine", "script": "app.js"}]"#,
        )
        .expect("the other app loads");
    assert_eq!(loaded.apps.len(), 1);
    assert_eq!(loaded.apps[0].name, "fine");
    let error = loaded.refused.join("\n");
    for part in [
        "py.json",
        "`api`",
        "field `exec_mode`",
        "`port`",
        "LISTEN_FDS",
        "`reuse_port: true`",
        "fork",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    for fine in [
        r#"[{"name": "api", "script": "job.py", "exec_mode": "cluster", "instances": 4, "port": 3000}]"#,
        r#"[{"name": "api", "script": "job.py", "exec_mode": "cluster", "instances": 4, "reuse_port": true}]"#,
        r#"[{"name": "api", "script": "job.py", "exec_mode": "cluster", "instances": 1}]"#,
        r#"[{"name": "api", "script": "job.py", "instances": 4}]"#,
    ] {
        if let Err(e) = p.load("ok.json", fine) {
            panic!("{fine}: {e}");
        }
    }
}

/// `kelpie serve-static` as this (test) binary: what `script: serve` runs.
fn serve_program() -> String {
    std::env::current_exe()
        .expect("current exe")
        .display()
        .to_string()
}

#[test]
fn script_serve_in_a_file_is_the_builtin_static_server() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"[{"name": "frontend", "script": "serve", "args": ["public"],
                 "env": {"PM2_SERVE_PORT": 8081, "PM2_SERVE_SPA": true}}]"#,
        )
        .expect("loads");
    let spec = &loaded.apps[0];
    assert_eq!(spec.name, "frontend");
    assert_eq!(spec.script, serve_program());
    assert_eq!(spec.interpreter, None);
    assert_eq!(spec.args, ["serve-static", "public"]);
    assert_eq!(spec.env["PM2_SERVE_PORT"], "8081");
    assert_eq!(spec.env["PM2_SERVE_SPA"], "true");
    assert_eq!(spec.cwd, p.dir.path().display().to_string());

    let err = p
        .load(
            "ecosystem.json",
            r#"[{"script": "serve", "interpreter": "node"}]"#,
        )
        .expect_err("should fail")
        .to_string();
    assert!(err.contains("runs without an interpreter"), "{err}");
}

#[test]
fn start_serve_is_a_script_named_serve() {
    // As in PM2, only files (and `kelpie serve`) mean the built-in server.
    let p = Project::new();
    let err = from_script("serve", &ScriptOptions::default(), &p.ctx)
        .expect_err("should fail")
        .to_string();
    assert!(err.contains("script `"), "{err}");
    executable(&p.path("bin/serve"));
    let spec = &from_script("serve", &ScriptOptions::default(), &p.ctx)
        .expect("builds")
        .apps[0];
    assert_eq!(spec.script, "serve");
    assert!(spec.args.is_empty());
}

#[test]
fn serve_app_takes_flags_and_env() {
    let p = Project::new();
    let opts = ScriptOptions {
        name: Some("site".into()),
        env: BTreeMap::from([("PM2_SERVE_PORT".to_string(), "9000".to_string())]),
        max_memory_restart: Some("100M".into()),
        ..ScriptOptions::default()
    };
    let spec = &serve_app(&opts, &p.ctx).expect("builds").apps[0];
    assert_eq!(spec.name, "site");
    assert_eq!(spec.script, serve_program());
    assert_eq!(spec.args, ["serve-static"]);
    assert_eq!(spec.env["PM2_SERVE_PORT"], "9000");
    assert_eq!(spec.max_memory_restart, Some(100 << 20));
}

#[test]
fn static_section_becomes_builtin_servers() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"static": [{"path": ".", "spa": true, "port": 8081,
                            "basic_auth": {"username": "user", "password": "pass"}},
                           {"path": "docs", "port": "9000", "name": "docs", "ftp": false}]}"#,
        )
        .expect("loads");
    let names: Vec<&str> = loaded.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["static-page-server-8081", "docs"]);
    let first = &loaded.apps[0];
    assert_eq!(first.script, serve_program());
    assert_eq!(first.args, ["serve-static"]);
    assert_eq!(first.env["PM2_SERVE_PATH"], ".");
    assert_eq!(first.env["PM2_SERVE_SPA"], "true");
    assert_eq!(first.env["PM2_SERVE_BASIC_AUTH"], "true");
    assert_eq!(first.env["PM2_SERVE_BASIC_AUTH_USERNAME"], "user");
    assert_eq!(first.env["PM2_SERVE_BASIC_AUTH_PASSWORD"], "pass");
    assert_eq!(loaded.apps[1].env["PM2_SERVE_PORT"], "9000");

    let err = p
        .load(
            "ecosystem.json",
            r#"{"static": [{"port": 8081, "monitor": "x"}]}"#,
        )
        .expect_err("should fail")
        .to_string();
    assert!(
        err.contains("`static` entry #1: `monitor` is not supported"),
        "{err}"
    );
}

#[test]
fn vizion_is_on_by_default_and_turned_off_by_the_field_or_no_vizion() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            r#"{"apps": [{"name": "on", "script": "app.js"},
                         {"name": "off", "script": "app.js", "vizion": false}]}"#,
        )
        .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(loaded.apps[0].vizion);
    assert!(!loaded.apps[1].vizion);

    let err = p
        .load(
            "bad.json",
            r#"{"apps": [{"name": "api", "script": "app.js", "vizion": "sometimes"}]}"#,
        )
        .expect_err("not a boolean")
        .to_string();
    assert!(err.contains("vizion"), "{err}");

    let opts = ScriptOptions {
        no_vizion: true,
        ..ScriptOptions::default()
    };
    assert!(!from_script("app.js", &opts, &p.ctx).expect("builds").apps[0].vizion);
    let defaults = ScriptOptions::default();
    assert!(
        from_script("app.js", &defaults, &p.ctx)
            .expect("builds")
            .apps[0]
            .vizion
    );
}

#[test]
fn a_key_given_twice_is_a_warning_with_its_line() {
    let p = Project::new();
    let loaded = p
        .load(
            "ecosystem.json",
            "{\"apps\": [{\"name\": \"api\", \"script\": \"app.js\",\n  \"instances\": 2,\n  \"instances\": 3}]}",
        )
        .expect("a duplicate key does not stop the load");
    assert_eq!(
        loaded.apps[0].instances, 3,
        "the later value, as JavaScript"
    );
    assert_eq!(
        loaded.warnings,
        ["ecosystem.json: line 3: key `instances` is given twice in one object; the later value is used (as JavaScript does)"]
    );
    // `--strict` makes it an error, as every warning.
    assert!(loaded.strict().is_err());
}

#[test]
fn what_pm2_runs_is_run_with_a_warning_and_strict_keeps_it_an_error() {
    let p = Project::new();
    let text = r#"[{"name": "api", "script": "app.js", "interpreter": "node",
                    "exec_interpreter": "node", "log_type": "format", "instance_var": "INSTANCE-ID"}]"#;
    let loaded = p.load("real.json", text).expect("PM2 runs it");
    assert_eq!(
        loaded.warnings,
        [
            "real.json: app `api`: `exec_interpreter` and `interpreter` both set `interpreter` (to the same value); keep one",
            "real.json: app `api`: field `instance_var`: expected an environment variable name (letters, digits and _, not starting with a digit), got \"INSTANCE-ID\"; set as it is, as PM2 does (a shell cannot read it as $NAME)",
            "real.json: app `api`: field `log_type`: expected \"raw\" or \"json\", got \"format\"; lines are written raw, as PM2 writes them",
        ]
    );
    let app = &loaded.apps[0];
    assert_eq!(app.log_type, kelpie_core::LogType::Raw);
    assert_eq!(app.instance_var, "INSTANCE-ID");
    assert!(p.load("real.json", text).expect("loads").strict().is_err());
}

/// Every declared field is read by some reader: apps of each kind (a fork app, a cluster app
/// with a port and a health check, a scheduled job, a static server, a Node app with its logs
/// and limits) ask the readers for every field, so a field declared and never read (a
/// setting accepted, then ignored) fails here, by name. The other way round, a reader asking
/// for a field no declaration has stops any debug build (`RawApp::get`).
#[test]
fn every_declared_field_is_read_by_a_reader() {
    let p = Project::new();
    std::fs::create_dir(p.path("www")).expect("mkdir");
    crate::normalize::fields_read::taken();
    let files = [
        r#"{"apps": [{"name": "a", "script": "app.js"}]}"#,
        r#"{"apps": [{"name": "b", "script": "app.js", "exec_mode": "cluster", "instances": 2, "port": 8080,
            "health_check": {"http": "/health"}, "wait_ready": true, "watch": true, "max_memory_restart": "100M",
            "cron_restart": "0 * * * *", "autorestart": false, "out_file": "/tmp/o.log", "merge_logs": true,
            "log_date_format": "YYYY", "env_file": []}]}"#,
        r#"{"apps": [{"name": "c", "script": "serve", "env": {"PM2_SERVE_PATH": "www", "PM2_SERVE_PORT": 8081}}]}"#,
        r#"{"apps": [{"name": "d", "script": "job.py", "interpreter": "python3", "instances": 1}]}"#,
    ];
    let mut read = std::collections::BTreeSet::new();
    for (i, text) in files.iter().enumerate() {
        // Loaded or refused, the readers ran: what they asked for is what counts.
        let _ = p.load(&format!("every-{i}.json"), text);
        read.extend(crate::normalize::fields_read::taken());
    }
    let never_read: Vec<&str> = crate::supported_fields()
        .iter()
        .copied()
        .filter(|field| !read.contains(*field))
        .collect();
    assert!(
        never_read.is_empty(),
        "declared (settings/) but read by no reader in readers/: {never_read:?}"
    );
}
