//! `serve`: a directory served over HTTP by Kelpie's built-in static file server
//! (`kelpie serve-static`), started as an ordinary app named `static-page-server-<port>`.

use super::{call, load_context};
use crate::cli::ServeArgs;
use anyhow::{anyhow, bail, Result};
use kelpie_config::ScriptOptions;
use kelpie_proto::{Home, Request};
use std::collections::BTreeMap;
use std::process::ExitCode;

pub fn serve(home: &Home, args: ServeArgs) -> Result<ExitCode> {
    let mut ctx = load_context(None, Vec::new())?;
    // As in PM2, PM2_SERVE_PATH and PM2_SERVE_PORT from the shell stand in for missing words.
    let from_shell = |name: &str| ctx.env.get(name).filter(|v| !v.is_empty()).cloned();
    let path = args
        .path
        .clone()
        .or_else(|| from_shell("PM2_SERVE_PATH"))
        .unwrap_or_else(|| ".".to_string());
    let dir = ctx.cwd.join(&path);
    if !dir.is_dir() {
        bail!("cannot serve `{path}`: not a directory");
    }
    let dir = dir.canonicalize()?;
    let port = match args.port_arg.or(args.port) {
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
        &Request::Start {
            apps: loaded.apps,
            force: args.force,
            from_file: false,
        },
    )?;
    let code = super::start::report(&response)?;
    if code == ExitCode::SUCCESS {
        outln!("[kelpie] serving {} on port {port}", dir.display());
    }
    Ok(code)
}

/// The app: the server runs in the served directory, with its settings in PM2's variables.
fn options(args: &ServeArgs, dir: &str, port: u16) -> ScriptOptions {
    let mut env = BTreeMap::from([
        ("PM2_SERVE_PATH".to_string(), dir.to_string()),
        ("PM2_SERVE_PORT".to_string(), port.to_string()),
        ("PM2_SERVE_SPA".to_string(), args.spa.to_string()),
    ]);
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
    ScriptOptions {
        name: Some(
            args.name
                .clone()
                .unwrap_or_else(|| kelpie_config::serve_default_name(port)),
        ),
        namespace: args.namespace.clone(),
        cwd: Some(dir.to_string()),
        no_autostart: args.no_autostart,
        max_memory_restart: args.max_memory_restart.clone(),
        out_file: args.out_file.clone(),
        error_file: args.error_file.clone(),
        time: args.time,
        user: args.user.clone(),
        group: args.group.clone(),
        env,
        ..ScriptOptions::default()
    }
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
        assert_eq!((args.path, args.port), (None, Some(8081)));
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
        let named = parse(&["--name", "frontend"]).expect("parses");
        assert_eq!(
            options(&named, "/srv", 8080).name.as_deref(),
            Some("frontend")
        );
    }
}
