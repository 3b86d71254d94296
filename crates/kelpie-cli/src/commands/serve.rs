//! `serve`: a directory served over HTTP by Kelpie's built-in static file server
//! (`kelpie serve-static`), started as an ordinary app named `static-page-server-<port>`.

use super::{call, load_context};
use crate::cli::ServeArgs;
use anyhow::{anyhow, bail, Result};
use kelpie_config::ScriptOptions;
use kelpie_proto::{Home, Request};
use std::process::ExitCode;

pub(super) fn serve(home: &Home, args: ServeArgs) -> Result<ExitCode> {
    let mut ctx = load_context(None, Vec::new())?;
    // As in PM2, PM2_SERVE_PATH and PM2_SERVE_PORT from the shell stand in for missing words.
    let from_shell = |name: &str| ctx.env.get(name).filter(|v| !v.is_empty()).cloned();
    let given = args.path.clone().or_else(|| from_shell("PM2_SERVE_PATH"));
    let path = given.clone().unwrap_or_else(|| ".".to_string());
    let dir = ctx.cwd.join(&path);
    if !dir.is_dir() {
        bail!("cannot serve `{path}`: not a directory");
    }
    let dir = dir.canonicalize()?;
    refuse_a_whole_home(given.is_none(), &dir, &ctx.env)?;
    refuse_what_the_server_decides(&args.app)?;
    let port = match args.port_arg.or(port_flag(&args.app)?) {
        Some(port) => port,
        None => match from_shell("PM2_SERVE_PORT") {
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| anyhow!("PM2_SERVE_PORT `{text}` is not a port number"))?,
            None => kelpie_config::SERVE_DEFAULT_PORT,
        },
    };
    let options = options(&args, &dir.display().to_string(), port);
    // The server's settings are its `env`: the shell's PM2_SERVE_* must not override them.
    ctx.env.retain(|name, _| !name.starts_with("PM2_SERVE_"));
    let loaded = kelpie_config::serve_app(&options, &ctx)?;
    crate::render::print_warnings(&loaded.warnings);
    let response = call(
        home,
        &Request::Start(kelpie_proto::StartRequest {
            apps: loaded.apps,
            force: args.force,
            from_file: false,
        }),
    )?;
    let code = super::start::report(&response)?;
    if code == ExitCode::SUCCESS {
        let host = args.host.clone().unwrap_or_else(|| {
            kelpie_config::serve_default_host(|n| ctx.env.get(n).cloned()).to_string()
        });
        let reach = if host == "127.0.0.1" {
            " (this machine only; --host 0.0.0.0 serves other machines too)"
        } else {
            ""
        };
        outln!(
            "[kelpie] serving {} on http://{host}:{port}/{reach}",
            dir.display()
        );
    }
    Ok(code)
}

/// `kelpie serve` without a path serves the current directory, as PM2's; but not when that is
/// `/` or the user's home, where everything not hidden would be handed out (an SSH key's
/// backup, a shell history under another name): such a directory must be named.
fn refuse_a_whole_home(
    defaulted: bool,
    dir: &std::path::Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    if !defaulted {
        return Ok(());
    }
    let home = env
        .get("HOME")
        .and_then(|home| std::path::Path::new(home).canonicalize().ok());
    if dir == std::path::Path::new("/") || home.as_deref() == Some(dir) {
        bail!(
            "not serving {} by default: it is {}; name the directory to serve (`kelpie serve ./public`)",
            dir.display(),
            if dir == std::path::Path::new("/") { "the whole file system" } else { "your home directory" }
        );
    }
    Ok(())
}

/// `--port`, which for `start` is a socket the daemon shares between instances, is the server's
/// own TCP port here.
fn port_flag(app: &ScriptOptions) -> Result<Option<u16>> {
    app.port
        .as_deref()
        .map(|text| {
            text.trim()
                .parse()
                .map_err(|_| anyhow!("--port `{text}`: `kelpie serve` takes a TCP port number"))
        })
        .transpose()
}

/// `start`'s flags that would change what the server is: its program, its arguments, its
/// directory (the served one) and its number of instances (each would bind the port).
fn refuse_what_the_server_decides(app: &ScriptOptions) -> Result<()> {
    let given = [
        ("arguments after --", !app.args.is_empty()),
        ("--interpreter", app.interpreter.is_some()),
        ("--interpreter-args", app.interpreter_args.is_some()),
        (
            "--cwd (the served directory is its working directory)",
            app.cwd.is_some(),
        ),
        ("--instances", app.instances.is_some()),
        ("--reuse-port", app.reuse_port),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => bail!("`kelpie serve` does not take {flag}: the server is Kelpie's own"),
        None => Ok(()),
    }
}

/// The app: the user's settings, the server running in the served directory with its own
/// settings in PM2's variables (over any the user's `env` had).
fn options(args: &ServeArgs, dir: &str, port: u16) -> ScriptOptions {
    let mut options = args.app.clone();
    let env = &mut options.env;
    env.insert("PM2_SERVE_PATH".to_string(), dir.to_string());
    env.insert("PM2_SERVE_PORT".to_string(), port.to_string());
    env.insert("PM2_SERVE_SPA".to_string(), args.spa.to_string());
    if let Some(host) = &args.host {
        env.insert("PM2_SERVE_HOST".to_string(), host.clone());
    }
    if let Some(homepage) = &args.homepage {
        env.insert("PM2_SERVE_HOMEPAGE".to_string(), homepage.clone());
    }
    if let (Some(username), Some(password)) = (&args.basic_auth_username, &args.basic_auth_password)
    {
        env.insert("PM2_SERVE_BASIC_AUTH".to_string(), "true".to_string());
        env.insert(
            "PM2_SERVE_BASIC_AUTH_USERNAME".to_string(),
            username.clone(),
        );
        env.insert(
            "PM2_SERVE_BASIC_AUTH_PASSWORD".to_string(),
            password.clone(),
        );
    }
    options
        .name
        .get_or_insert_with(|| kelpie_config::serve_default_name(port));
    options.cwd = Some(dir.to_string());
    // The server binds its port itself (PM2_SERVE_PORT): the daemon holds no socket for it.
    options.port = None;
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(words: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv: Vec<&str> = ["kelpie", "serve"].iter().chain(words).copied().collect();
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(args) => Ok(*args),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn pm2s_forms_parse() {
        let args = parse(&["dist", "9000", "--spa"]).expect("parses");
        assert_eq!(args.path.as_deref(), Some("dist"));
        assert_eq!(args.port_arg, Some(9000));
        assert!(args.spa);
        let args = parse(&["--port", "8081"]).expect("parses");
        assert_eq!(args.path, None);
        assert_eq!(port_flag(&args.app).expect("a port"), Some(8081));
        let args = parse(&["--port", "unix:/run/x.sock"]).expect("parses");
        let error = port_flag(&args.app).expect_err("not a TCP port");
        assert!(
            error.to_string().contains("takes a TCP port number"),
            "{error}"
        );
        assert!(parse(&[".", "80", "--port", "81"]).is_err());
        assert!(parse(&["--basic-auth-username", "u"]).is_err());
        assert!(parse(&["--basic-auth-password", "p"]).is_err());
        assert!(parse(&["x", "notaport"]).is_err());
    }

    #[test]
    fn settings_go_to_the_env_and_the_name_has_the_port() {
        let args = parse(&[
            "--spa",
            "--basic-auth-username",
            "u",
            "--basic-auth-password",
            "p",
            "--host",
            "127.0.0.1",
        ])
        .expect("parses");
        let o = options(&args, "/srv/site", 8081);
        assert_eq!(o.name.as_deref(), Some("static-page-server-8081"));
        assert_eq!(o.cwd.as_deref(), Some("/srv/site"));
        let env: Vec<(&str, &str)> = o
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("PM2_SERVE_BASIC_AUTH", "true"),
                ("PM2_SERVE_BASIC_AUTH_PASSWORD", "p"),
                ("PM2_SERVE_BASIC_AUTH_USERNAME", "u"),
                ("PM2_SERVE_HOST", "127.0.0.1"),
                ("PM2_SERVE_PATH", "/srv/site"),
                ("PM2_SERVE_PORT", "8081"),
                ("PM2_SERVE_SPA", "true"),
            ]
        );
        assert_eq!(o.port, None, "the daemon holds no socket for the server");
        let named = parse(&["--name", "frontend"]).expect("parses");
        assert_eq!(
            options(&named, "/srv", 8080).name.as_deref(),
            Some("frontend")
        );
    }

    #[test]
    fn starts_flags_are_taken_once_declared_and_those_that_would_change_the_server_refused() {
        let args = parse(&[
            "dist",
            "--max-memory-restart",
            "200M",
            "--watch",
            "--cron-restart",
            "0 3 * * *",
            "-o",
            "/tmp/out.log",
            "--uid",
            "www",
        ])
        .expect("start's flags parse");
        let o = options(&args, "/srv/dist", 8080);
        assert_eq!(o.max_memory_restart.as_deref(), Some("200M"));
        assert_eq!(o.cron_restart.as_deref(), Some("0 3 * * *"));
        assert_eq!(o.out_file.as_deref(), Some("/tmp/out.log"));
        assert_eq!(o.user.as_deref(), Some("www"));
        assert_eq!(o.watch, ["."], "the served directory");
        refuse_what_the_server_decides(&args.app).expect("all apply to the server");
        for words in [
            &["--interpreter", "node"][..],
            &["-i", "2"],
            &["--cwd", "/srv"],
            &["dist", "8080", "--", "extra"],
        ] {
            let args = parse(words).expect("parses");
            let error = refuse_what_the_server_decides(&args.app).expect_err("refused");
            assert!(
                error.to_string().contains("does not take"),
                "{words:?}: {error}"
            );
        }
    }
}
