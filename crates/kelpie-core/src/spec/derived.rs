//! What a spec implies: the command line of an instance, whether the app runs on Node (source
//! maps, shared ports), its `PORT`, its `increment_var`, the environment an instance gets,
//! whether it is a periodic job.

use super::{AppSpec, ExecMode};
use std::collections::BTreeMap;

impl AppSpec {
    /// Whether a schedule (`cron_restart`) starts or restarts the app.
    pub fn is_scheduled(&self) -> bool {
        self.cron_restart.is_some()
    }

    /// A periodic job: run by its schedule, not kept running (`autorestart: false` with
    /// `cron_restart`, PM2's usual way to run a backup or a report every night).
    pub fn is_periodic_job(&self) -> bool {
        self.is_scheduled() && !self.autorestart
    }

    /// PM2's `increment_var` for one instance: the variable and its value, the app's value
    /// (from its `env`, else the environment it inherited) plus the instance's index. `None`
    /// without `increment_var` or when that value is not a whole number.
    pub fn incremented_var(&self, instance: u32) -> Option<(&str, u64)> {
        let var = self.increment_var.as_deref()?;
        let base = self.env.get(var).or_else(|| self.inherited(var))?;
        let base: u64 = base.trim().parse().ok()?;
        Some((var, base + u64::from(instance)))
    }

    /// The command line that runs one instance: interpreter, its args, the script, the app args.
    /// A Node app also gets `--enable-source-maps` (see [`AppSpec::enables_source_maps`]), here
    /// rather than in `interpreter_args` so that its `node_args` stay what the user gave, and so
    /// that exported units run the app the same way.
    pub fn command_line(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(interpreter) = &self.interpreter {
            argv.push(interpreter.clone());
            if self.enables_source_maps() {
                argv.push(Self::NODE_SOURCE_MAPS_FLAG.to_string());
            }
            argv.extend(self.interpreter_args.iter().cloned());
        }
        argv.push(self.script.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Whether `script` is a command line run by a shell (`bash -c 'npm start'`), as
    /// `kelpie-config` stores one: a shell interpreter given `-c` alone.
    pub fn is_shell_command_line(&self) -> bool {
        let shell = self.interpreter.as_deref().is_some_and(|interpreter| {
            let base = interpreter.rsplit('/').next().unwrap_or(interpreter);
            base == "bash" || base == "sh"
        });
        shell && self.interpreter_args == ["-c"]
    }

    /// Whether the app runs under Node (`node` or `nodejs`): it then gets an IPC channel, as
    /// under PM2, and with a Kelpie-owned socket the cluster shim.
    pub fn runs_on_node(&self) -> bool {
        self.interpreter.as_deref().is_some_and(|interpreter| {
            let base = interpreter.rsplit('/').next().unwrap_or(interpreter);
            base == "node" || base == "nodejs"
        })
    }

    /// Node's flag that maps stack traces back to the sources named by `//# sourceMappingURL`.
    pub const NODE_SOURCE_MAPS_FLAG: &'static str = "--enable-source-maps";

    /// Whether the app's processes get Node's `--enable-source-maps` (PM2 turns source maps on
    /// for every Node app): a Node app that does not disable them and whose interpreter
    /// arguments do not already say `--enable-source-maps` or `--no-enable-source-maps`.
    pub fn enables_source_maps(&self) -> bool {
        // Node reads `_` in a flag's name as `-`.
        let says_it = |arg: &String| {
            let flag = arg.replace('_', "-");
            flag == Self::NODE_SOURCE_MAPS_FLAG || flag == "--no-enable-source-maps"
        };
        self.runs_on_node()
            && !self.disable_source_map_support
            && !self.interpreter_args.iter().any(says_it)
    }

    /// The JavaScript runtime that runs the app, by its interpreter's name (`node`, `nodejs`,
    /// `bun`, `deno`, or a path to one): such an app gets an IPC channel (`process.send`) and a
    /// shim preloaded for its runtime.
    pub fn js_runtime(&self) -> Option<JsRuntime> {
        let interpreter = self.interpreter.as_deref()?;
        JsRuntime::named(interpreter)
    }

    /// Whether the app's instances share the ports their code listens on by binding them with
    /// `SO_REUSEPORT` (the runtime shim adds `reusePort` to `Bun.serve`, `Deno.serve` and
    /// `listen()`): a Bun or Deno app in cluster mode. Neither runtime can serve a socket it
    /// is given (Bun ignores a descriptor; Deno only serves one through `node:http`), so
    /// Kelpie owns no socket for them; the kernel spreads connections over the instances, and
    /// moves a stopping instance's queued connections to the others (`tcp_migrate_req`).
    pub fn shares_reused_ports(&self) -> bool {
        self.exec_mode == ExecMode::Cluster
            && matches!(self.js_runtime(), Some(JsRuntime::Bun | JsRuntime::Deno))
    }

    /// Whether the ports the app's code listens on are shared by its instances, as under PM2's
    /// Node cluster: a Node app in cluster mode (not binding with `SO_REUSEPORT` itself). Its
    /// processes run with the cluster shim, which asks the daemon for the socket of each port
    /// they listen on.
    pub fn shares_node_ports(&self) -> bool {
        self.exec_mode == ExecMode::Cluster && self.runs_on_node() && !self.reuse_port
    }

    /// Whether the app is counted online only once it shows it is ready, as its config asks:
    /// `wait_ready`, a ready pattern, `reuse_port` (its port open), or a Node app serving a
    /// shared socket (its server listening). Other Node apps wait only for their main module
    /// to run, which is not a readiness the user asked for.
    pub fn asks_for_readiness(&self) -> bool {
        self.wait_ready
            || self.ready_pattern.is_some()
            || self.reuse_port
            || self.shares_reused_ports()
            || (self.runs_on_node() && (self.listen.is_some() || self.shares_node_ports()))
    }

    /// A numeric, non-zero `PORT` of the app's environment (the config's, else the inherited one).
    pub fn env_port(&self) -> Option<u16> {
        self.env
            .get("PORT")
            .or_else(|| self.inherited("PORT"))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
    }

    /// The inherited variable `name`, unless `filter_env` leaves it out.
    pub fn inherited(&self, name: &str) -> Option<&String> {
        self.inherited_env
            .get(name)
            .filter(|_| self.filter_env.keeps(name))
    }

    /// The environment an instance gets, before Kelpie's own variables are added: the inherited
    /// environment (less what `filter_env` leaves out), overridden by the config's.
    pub fn merged_env(&self) -> BTreeMap<String, String> {
        self.merged_env_pairs()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// [`AppSpec::merged_env`]'s variables, borrowed from the spec, in the order they apply (a
    /// later one with the same name wins: collect them into a map): what a spawn reads, at
    /// every restart, without copying the environment's strings.
    pub fn merged_env_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inherited_env
            .iter()
            .filter(|(name, _)| self.filter_env.keeps(name))
            .chain(&self.env)
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// A JavaScript runtime Kelpie knows how to preload its shim into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsRuntime {
    /// Node.js (`node`, `nodejs`).
    Node,
    /// Bun.
    Bun,
    /// Deno.
    Deno,
}

impl JsRuntime {
    /// The runtime a program runs, by its file name (`/usr/local/bin/bun`: Bun).
    pub fn named(program: &str) -> Option<JsRuntime> {
        match program.rsplit('/').next().unwrap_or(program) {
            "node" | "nodejs" => Some(JsRuntime::Node),
            "bun" => Some(JsRuntime::Bun),
            "deno" => Some(JsRuntime::Deno),
            _ => None,
        }
    }

    /// Its usual name, as `describe` and the start's notice say it.
    pub fn name(self) -> &'static str {
        match self {
            JsRuntime::Node => "node",
            JsRuntime::Bun => "bun",
            JsRuntime::Deno => "deno",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn command_line_puts_interpreter_and_its_args_first() {
        let spec = AppSpec {
            script: "/srv/app.js".into(),
            interpreter: Some("node".into()),
            interpreter_args: vec!["--max-old-space-size=64".into()],
            args: vec!["--port".into(), "80".into()],
            ..AppSpec::default()
        };
        assert_eq!(
            spec.command_line(),
            [
                "node",
                "--enable-source-maps",
                "--max-old-space-size=64",
                "/srv/app.js",
                "--port",
                "80"
            ]
        );
        let without_maps = AppSpec {
            disable_source_map_support: true,
            ..spec
        };
        assert_eq!(
            without_maps.command_line(),
            [
                "node",
                "--max-old-space-size=64",
                "/srv/app.js",
                "--port",
                "80"
            ]
        );
    }

    #[test]
    fn node_apps_get_source_maps_unless_disabled_or_already_asked() {
        let with = |interpreter: &str, args: &[&str], disabled: bool| AppSpec {
            interpreter: Some(interpreter.to_string()),
            interpreter_args: args.iter().map(|a| a.to_string()).collect(),
            disable_source_map_support: disabled,
            ..AppSpec::default()
        };
        assert!(with("node", &[], false).enables_source_maps());
        assert!(with("/usr/bin/nodejs", &["--max-old-space-size=64"], false).enables_source_maps());
        assert!(!with("node", &[], true).enables_source_maps());
        assert!(!with("python3", &[], false).enables_source_maps());
        assert!(!with("node", &["--enable-source-maps"], false).enables_source_maps());
        assert!(!with("node", &["--no-enable-source-maps"], false).enables_source_maps());
        assert!(!with("node", &["--enable_source_maps"], false).enables_source_maps());
    }

    #[test]
    fn node_apps_are_recognised_by_their_interpreter() {
        let with = |interpreter: Option<&str>| AppSpec {
            interpreter: interpreter.map(str::to_string),
            ..AppSpec::default()
        };
        assert!(with(Some("node")).runs_on_node());
        assert!(with(Some("/usr/local/bin/nodejs")).runs_on_node());
        assert!(!with(Some("python3")).runs_on_node());
        assert!(!with(None).runs_on_node());
    }

    #[test]
    fn filter_env_leaves_out_inherited_variables_only() {
        let mut spec = AppSpec::default();
        let shell = Arc::make_mut(&mut spec.inherited_env);
        for (name, value) in [
            ("AWS_SECRET", "s"),
            ("MY_SECRET_X", "s"),
            ("PORT", "80"),
            ("A", "a"),
        ] {
            shell.insert(name.into(), value.into());
        }
        spec.env.insert("OWN_SECRET".into(), "kept".into());
        spec.filter_env = crate::EnvFilter::Containing(vec!["SECRET".into()]);
        let env = spec.merged_env();
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["A", "OWN_SECRET", "PORT"],
            "the app's own env is not filtered"
        );
        spec.filter_env = crate::EnvFilter::Named("PORT".into());
        assert!(!spec.merged_env().contains_key("PORT"));
        assert_eq!(spec.env_port(), None, "a filtered PORT is no port");
        spec.filter_env = crate::EnvFilter::DropAll;
        assert_eq!(spec.merged_env().keys().collect::<Vec<_>>(), ["OWN_SECRET"]);
    }

    #[test]
    fn config_env_wins_over_inherited_env() {
        let mut spec = AppSpec::default();
        Arc::make_mut(&mut spec.inherited_env).insert("A".into(), "shell".into());
        Arc::make_mut(&mut spec.inherited_env).insert("B".into(), "shell".into());
        spec.env.insert("B".into(), "config".into());
        let env = spec.merged_env();
        assert_eq!(env["A"], "shell");
        assert_eq!(env["B"], "config");
    }
}
