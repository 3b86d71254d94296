//! `kelpie serve` and `script: serve`: the built-in static file server as a supervised app,
//! asked for files over real TCP connections.

use super::{free_port, kelpie, local};
use kelpie_testkit::Kelpie;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// One HTTP/1.1 exchange (`Connection: close`).
struct Answer {
    status: u16,
    /// The header lines, lowercased.
    headers: String,
    body: String,
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect_timeout(&local(port), 5 * SECS).expect("connect");
    stream.set_read_timeout(Some(10 * SECS)).expect("timeout");
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

fn get(port: u16, path: &str) -> Answer {
    request(port, "GET", path, &[])
}

/// Whether something accepts connections on the port.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&local(port), SECS).is_ok()
}

fn wait_listening(k: &Kelpie, port: u16) {
    k.wait_for(&format!("port {port} to accept"), 10 * SECS, || {
        listening(port)
    });
}

fn wait_closed(k: &Kelpie, port: u16) {
    k.wait_for(&format!("port {port} to close"), 10 * SECS, || {
        !listening(port)
    });
}

/// A site in `<scratch>/site`: index.html, other.html (two lines), style.css, 404.html,
/// docs/index.html; and a file next to the site that must never be served.
fn site(k: &Kelpie) -> String {
    let root = k.dir.path().join("site");
    std::fs::create_dir_all(root.join("docs")).expect("mkdir");
    let files = [
        ("index.html", "<h1>good shit</h1>\n"),
        ("other.html", "other page\nsecond line\n"),
        ("style.css", "body {}\n"),
        ("404.html", "your file doesnt exist\n"),
        ("docs/index.html", "the docs\n"),
    ];
    for (name, text) in files {
        std::fs::write(root.join(name), text).expect("write");
    }
    k.write("secret.txt", "not for the web\n");
    root.display().to_string()
}

#[test]
fn serve_answers_files_index_pages_and_a_custom_404() {
    let k = kelpie();
    let root = site(&k);
    let port = free_port();
    let out = k.ok(&["serve", &root, &port.to_string(), "--host", "127.0.0.1"]);
    assert!(
        out.contains(&format!("serving {root} on port {port}")),
        "{out}"
    );
    let name = format!("static-page-server-{port}");
    assert_eq!(k.status(&name), "online");
    wait_listening(&k, port);

    let index = get(port, "/");
    assert_eq!(index.status, 200);
    assert_eq!(index.body, "<h1>good shit</h1>\n");
    assert!(
        index.headers.contains("content-type: text/html"),
        "{}",
        index.headers
    );
    assert_eq!(get(port, "/index.html").body, index.body);
    let css = get(port, "/style.css");
    assert_eq!((css.status, css.body.as_str()), (200, "body {}\n"));
    assert!(
        css.headers.contains("content-type: text/css"),
        "{}",
        css.headers
    );
    assert_eq!(get(port, "/docs/").body, "the docs\n");
    let docs = get(port, "/docs");
    assert_eq!(docs.status, 301);
    assert!(
        docs.headers.contains("location: /docs/"),
        "{}",
        docs.headers
    );

    let missing = get(port, "/yolo.html");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, "your file doesnt exist\n");

    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
    ] {
        let answer = get(port, path);
        assert_eq!(answer.status, 403, "{path}");
        assert!(!answer.body.contains("not for the web"), "{path}");
    }

    let head = request(port, "HEAD", "/other.html", &[]);
    assert_eq!(head.status, 200);
    assert!(
        head.headers.contains("content-length: 23"),
        "{}",
        head.headers
    );
    assert_eq!(head.body, "");
    let post = request(port, "POST", "/", &[]);
    assert_eq!(post.status, 405);
    assert!(
        post.headers.contains("allow: get, head"),
        "{}",
        post.headers
    );
}

#[test]
fn serve_spa_falls_back_to_the_root() {
    let k = kelpie();
    let root = site(&k);
    let port = free_port();
    k.ok(&[
        "serve",
        "site",
        "--port",
        &port.to_string(),
        "--spa",
        "--name",
        "front",
    ]);
    assert_eq!(k.app("front")["pm2_env"]["pm_cwd"], root.as_str());
    wait_listening(&k, port);

    assert_eq!(get(port, "/").body, "<h1>good shit</h1>\n");
    let deep = get(port, "/mangezdespommes/avecpepin/lebref");
    assert_eq!(
        (deep.status, deep.body.as_str()),
        (200, "<h1>good shit</h1>\n")
    );
    let same_name = get(port, "/mangezdespommes/avecpepin/lebref/other.html");
    assert_eq!(same_name.body.lines().count(), 2, "{}", same_name.body);
    assert_eq!(same_name.body, "other page\nsecond line\n");
    assert_eq!(get(port, "/docs/").body, "the docs\n");
}

#[test]
fn serve_with_basic_auth_answers_401_without_the_credentials() {
    let k = kelpie();
    site(&k);
    let port = free_port();
    let port_text = port.to_string();
    let args = [
        "serve",
        "site",
        &port_text,
        "--basic-auth-username",
        "user",
        "--basic-auth-password",
        "pass",
    ];
    k.ok(&args);
    wait_listening(&k, port);

    let anonymous = get(port, "/index.html");
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.headers.contains("www-authenticate: basic realm="),
        "{}",
        anonymous.headers
    );
    assert!(!anonymous.body.contains("good shit"));
    // user:wrong, then user:pass.
    let wrong = request(
        port,
        "GET",
        "/",
        &[("Authorization", "Basic dXNlcjp3cm9uZw==")],
    );
    assert_eq!(wrong.status, 401);
    let right = request(port, "GET", "/", &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(
        (right.status, right.body.as_str()),
        (200, "<h1>good shit</h1>\n")
    );

    // The password is a secret: hidden in jlist unless asked for.
    let name = format!("static-page-server-{port}");
    let env = &k.app(&name)["pm2_env"]["env"];
    assert_eq!(env["PM2_SERVE_BASIC_AUTH_USERNAME"], "user");
    assert_ne!(env["PM2_SERVE_BASIC_AUTH_PASSWORD"], "pass");
}

#[test]
fn a_served_app_stops_restarts_and_comes_back_from_a_save() {
    let k = kelpie();
    site(&k);
    let port = free_port();
    let name = format!("static-page-server-{port}");
    k.ok(&["serve", "site", &port.to_string()]);
    wait_listening(&k, port);
    let first = k.pid(&name);

    // The default kill signal (SIGINT) ends it at once, cleanly.
    k.ok(&["stop", &name]);
    assert_eq!(k.status(&name), "stopped");
    wait_closed(&k, port);
    let exits = k.ok(&["events", &name, "--json"]);
    assert!(exits.contains("\"code\":0"), "{exits}");

    k.ok(&["restart", &name]);
    wait_listening(&k, port);
    assert_ne!(k.pid(&name), first);
    assert_eq!(get(port, "/").body, "<h1>good shit</h1>\n");

    k.ok(&["save"]);
    k.ok(&["kill"]);
    wait_closed(&k, port);
    k.ok(&["resurrect"]);
    wait_listening(&k, port);
    assert_eq!(get(port, "/other.html").body, "other page\nsecond line\n");

    k.ok(&["delete", &name]);
    wait_closed(&k, port);
    assert!(k.jlist().is_empty());
}

#[test]
fn ecosystem_files_declare_servers_with_script_serve_or_static() {
    let k = kelpie();
    site(&k);
    let (a, b) = (free_port(), free_port());
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [{{"name": "frontend", "script": "serve",
                           "env": {{"PM2_SERVE_PORT": {a}, "PM2_SERVE_PATH": "site"}}}}],
                "static": [{{"path": "site", "port": {b}, "spa": true,
                            "basic_auth": {{"username": "user", "password": "pass"}}}}]}}"#
        ),
    );
    k.ok(&["start", &file]);
    let names: Vec<String> = k
        .jlist()
        .iter()
        .map(|app| app["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["frontend", &format!("static-page-server-{b}")]);
    wait_listening(&k, a);
    wait_listening(&k, b);

    assert_eq!(get(a, "/index.html").body, "<h1>good shit</h1>\n");
    assert_eq!(get(a, "/nope").status, 404);
    assert_eq!(get(b, "/").status, 401);
    let auth = [("Authorization", "Basic dXNlcjpwYXNz")];
    let spa = request(b, "GET", "/mangezdesmangues/aupakistan", &auth);
    assert_eq!(
        (spa.status, spa.body.as_str()),
        (200, "<h1>good shit</h1>\n")
    );

    k.ok(&["stop", &file]);
    wait_closed(&k, a);
    wait_closed(&k, b);
}

#[test]
fn serve_refuses_what_it_cannot_serve() {
    let k = kelpie();
    let err = k.fails(&["serve", "no-such-dir", "8080"]);
    assert!(err.contains("not a directory"), "{err}");
    let err = k.fails(&["serve", ".", "--basic-auth-username", "user"]);
    assert!(err.contains("--basic-auth-password"), "{err}");
    assert!(k.jlist().is_empty());
}
