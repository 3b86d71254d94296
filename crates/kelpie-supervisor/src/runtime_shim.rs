//! Bun and Deno apps: the shim preloaded into them (`assets/runtime-shim.mjs`: shared ports in
//! cluster mode, readiness, the stop signal's drain, runtime metrics, exceptions), where it
//! goes on their command line, and the kernel setting their reloads rely on.

use kelpie_core::{AppSpec, JsRuntime};
use std::path::Path;

/// Deno's subcommands that run a program with runtime flags (`--preload`).
const DENO_RUNS: [&str; 2] = ["run", "serve"];

/// `argv` (the app's command line, `bun app.ts` or `deno run --allow-net app.ts`) with the shim
/// at `shim` (`crate::shims::runtime_shim`) preloaded: `bun --preload <shim> ...`;
/// `deno run --preload <shim's URL> ...`, `run` added when the app's arguments do not start
/// with a subcommand (`interpreter: deno` alone), and `--unstable-net` when its instances
/// share ports (Deno asks for it for `reusePort`).
pub(crate) fn preload(argv: &mut Vec<String>, spec: &AppSpec, runtime: JsRuntime, shim: &Path) {
    match runtime {
        JsRuntime::Bun => {
            argv.splice(1..1, ["--preload".to_string(), shim.display().to_string()]);
        }
        JsRuntime::Deno => {
            let mut flags = vec!["--preload".to_string(), deno_shim_url(shim, spec)];
            let unstable = argv
                .iter()
                .any(|a| a == "--unstable-net" || a == "--unstable");
            if spec.shares_reused_ports() && !unstable {
                flags.push("--unstable-net".to_string());
            }
            let at = if argv.get(1).is_some_and(|a| DENO_RUNS.contains(&a.as_str())) {
                2
            } else {
                flags.insert(0, "run".to_string());
                1
            };
            argv.splice(at..at, flags);
        }
        JsRuntime::Node => {}
    }
}

/// The shim's `file:` URL for Deno, its settings in the query: Deno reads the environment only
/// with a permission the app may not have, and a module's URL needs none.
fn deno_shim_url(shim: &Path, spec: &AppSpec) -> String {
    let mut url = String::from("file://");
    for byte in shim.display().to_string().bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    let share = if spec.shares_reused_ports() { "1" } else { "0" };
    let metrics = if spec.pmx { "1" } else { "0" };
    url.push_str(&format!(
        "?share={share}&kill={}&metrics={metrics}",
        spec.kill_signal.as_str()
    ));
    url
}

/// Make sure a stopping instance's queued connections move to the app's other instances
/// instead of being reset (`net.ipv4.tcp_migrate_req`, Linux 5.14): apps whose instances bind
/// their port with SO_REUSEPORT each have their own accept queue, and a reload closes one.
/// Done once per daemon, by the first such app, and said in the daemon's log either way.
pub(crate) fn migrate_queued_connections(spec: &AppSpec) {
    if !spec.shares_reused_ports() && !spec.reuse_port {
        return;
    }
    let app = &spec.name;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| match kelpie_sys::enable_tcp_migrate_req() {
        Ok(true) => crate::daemon_log!(
            "{app}: its instances bind their port with SO_REUSEPORT: net.ipv4.tcp_migrate_req set to 1, so that a stopping instance's queued connections go to the others (a reload loses none)"
        ),
        Ok(false) => {}
        Err(e) => crate::daemon_log!(
            "{app}: its instances bind their port with SO_REUSEPORT, and net.ipv4.tcp_migrate_req cannot be set to 1 ({e}): a reload may reset the connections queued at a stopping instance; set it with `sysctl -w net.ipv4.tcp_migrate_req=1`"
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interpreter: &str, args: &[&str], cluster: bool) -> AppSpec {
        AppSpec {
            name: "web".into(),
            script: "/srv/app.ts".into(),
            interpreter: Some(interpreter.into()),
            interpreter_args: args.iter().map(|a| a.to_string()).collect(),
            exec_mode: if cluster {
                kelpie_core::ExecMode::Cluster
            } else {
                kelpie_core::ExecMode::Fork
            },
            ..Default::default()
        }
    }

    fn line(spec: &AppSpec) -> Vec<String> {
        let mut argv = spec.command_line();
        let shim = Path::new("/home/k/runtime-shim.mjs");
        preload(&mut argv, spec, spec.js_runtime().expect("a runtime"), shim);
        argv
    }

    #[test]
    fn bun_preloads_the_shim_before_anything_else() {
        assert_eq!(
            line(&spec("bun", &["--smol"], true)),
            [
                "bun",
                "--preload",
                "/home/k/runtime-shim.mjs",
                "--smol",
                "/srv/app.ts"
            ]
        );
    }

    #[test]
    fn deno_gets_run_when_it_has_no_subcommand_and_the_shim_after_it() {
        assert_eq!(
            line(&spec("deno", &[], false)),
            [
                "deno",
                "run",
                "--preload",
                "file:///home/k/runtime-shim.mjs?share=0&kill=SIGINT&metrics=1",
                "/srv/app.ts"
            ]
        );
        let argv = line(&spec("/opt/deno", &["run", "--allow-net"], true));
        assert_eq!(
            argv,
            [
                "/opt/deno",
                "run",
                "--preload",
                "file:///home/k/runtime-shim.mjs?share=1&kill=SIGINT&metrics=1",
                "--unstable-net",
                "--allow-net",
                "/srv/app.ts"
            ]
        );
    }

    #[test]
    fn the_shim_url_is_percent_encoded() {
        let url = deno_shim_url(Path::new("/home/a b/%.mjs"), &spec("deno", &[], false));
        assert!(url.starts_with("file:///home/a%20b/%25.mjs?"), "{url}");
    }
}
