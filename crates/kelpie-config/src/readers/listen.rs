//! The app's port: `port` and `reuse_port`, a cluster app's `PORT`, and the cluster apps that
//! would each bind the same port.

use super::Reader;
use crate::convert;
use kelpie_core::{AppSpec, ExecMode, ListenAddress};

/// `port` and `reuse_port`. `port` sets `PORT` (over `env`, as in PM2) and, unlike PM2, makes
/// Kelpie own the listening socket and share it between the instances. Not with `reuse_port`
/// (the instances bind the port themselves), nor with `increment_var: PORT` (each instance has
/// its own port): then `port` only sets `PORT`.
pub(super) fn read_listen(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(b) = r.get("reuse_port", convert::boolean) {
        spec.reuse_port = b;
    }
    let Some(address) = r.get("port", convert::listen) else {
        return;
    };
    let port_var = match &address {
        ListenAddress::Tcp { port, .. } => port.to_string(),
        ListenAddress::Unix { path } => path.clone(),
    };
    spec.env.insert("PORT".to_string(), port_var);
    if spec.reuse_port {
        if let ListenAddress::Unix { .. } = address {
            let key = r.spelled("reuse_port");
            r.errors.push(format!(
                "field `{key}`: SO_REUSEPORT is for TCP ports, not a Unix socket (`port: {address}`); remove `{key}` to let Kelpie share the socket"
            ));
        }
        return;
    }
    if spec.increment_var.as_deref() == Some("PORT") {
        return;
    }
    spec.listen = Some(address);
}

/// A cluster app without `port` that has a numeric `PORT` (from its `env`, else from the shell)
/// listens there, so Node apps written for PM2's cluster mode share their port without a config
/// change. A `PORT` that is not a port number is left to the app.
pub(super) fn listen_from_env(spec: &mut AppSpec) {
    if spec.shares_reused_ports() {
        // Bun and Deno cannot serve a socket they are given: their instances bind the port
        // with SO_REUSEPORT (the runtime shim), and `port` only sets their PORT.
        spec.listen = None;
        return;
    }
    if spec.exec_mode != ExecMode::Cluster
        || spec.listen.is_some()
        || spec.reuse_port
        || spec.increment_var.as_deref() == Some("PORT")
    {
        return;
    }
    if let Some(port) = spec.env_port() {
        spec.listen = Some(ListenAddress::Tcp { host: None, port });
    }
}

/// Several cluster-mode instances of an app that is not a JavaScript runtime's (Node apps share
/// the ports their code listens on through the shim, Bun and Deno apps bind them with
/// SO_REUSEPORT) with no port to share: each would bind its port itself,
/// all but one would crash on EADDRINUSE and loop. This app is refused, naming the ways to share
/// a port; the file's other apps start (PM2 starts it and lets it crash-loop).
pub(super) fn check_cluster_port(r: &mut Reader<'_>, spec: &AppSpec) {
    let node = spec
        .interpreter
        .as_deref()
        .is_some_and(crate::interpreter::is_js_runtime);
    if spec.exec_mode != ExecMode::Cluster
        || node
        || spec.instances < 2
        || spec.listen.is_some()
        || spec.reuse_port
        || spec.increment_var.is_some()
    {
        return;
    }
    let key = r.spelled("exec_mode").to_string();
    r.refusals.push(format!(
        "field `{key}`: cluster mode shares a port by itself only for Node, Bun and Deno apps; these {} instances would each bind the app's port and all but one would crash. Set `port` (Kelpie binds it once and passes the socket to every instance as fd 3, LISTEN_FDS=1: gunicorn/uvicorn `--fd 3`, Go's go-systemd activation...), or `reuse_port: true` if the app binds with SO_REUSEPORT; for instances that listen on no port, use `exec_mode: fork`",
        spec.instances
    ));
}
