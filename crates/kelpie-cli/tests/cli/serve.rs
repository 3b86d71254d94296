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
    /// The header lines as sent.
    head: String,
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
        head: head.to_string(),
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
    // A server started as root serves as `nobody`, who must be able to reach the site.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(k.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    root.display().to_string()
}

#[test]
fn serve_answers_files_index_pages_and_a_custom_404() {
    let k = kelpie();
    let root = site(&k);
    let port = free_port();
    let out = k.ok(&["serve", &root, &port.to_string(), "--host", "127.0.0.1"]);
    assert!(
        out.contains(&format!("serving {root} on http://127.0.0.1:{port}/")),
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

/// The value of header `name` (any case) in `answer`, as sent.
fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.head.lines().find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        key.eq_ignore_ascii_case(name).then_some(value)
    })
}

/// The resident memory of process `pid`, in KiB.
fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A 1 GiB file is streamed (the server's memory stays small while it sends it), a Range
/// request gets 206 with that part, and a repeated GET with the file's ETag (or its date) gets
/// 304 without the body.
#[test]
fn serve_streams_big_files_answers_ranges_and_conditional_requests() {
    const GIB: u64 = 1 << 30;
    let k = kelpie();
    let root = site(&k);
    // Sparse: a gibibyte to send, without writing one to the disk.
    let big = std::fs::File::create(format!("{root}/big.bin")).expect("create");
    big.set_len(GIB).expect("set_len");
    let port = free_port();
    k.ok(&["serve", &root, &port.to_string(), "--name", "files"]);
    wait_listening(&k, port);
    let server = k.pid("files");

    let mut stream = TcpStream::connect_timeout(&local(port), 5 * SECS).expect("connect");
    stream.set_read_timeout(Some(30 * SECS)).expect("timeout");
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut received: u64 = 0;
    let mut peak_rss_kb = 0;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        // A read with a timeout can end in EINTR when the test process is stopped and
        // continued meanwhile (signal(7)); it is retried, as `read_exact` would.
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e:?}"),
        };
        if n == 0 {
            break;
        }
        received += n as u64;
        // Every ~64 MiB received, how much memory the server holds while sending.
        if received % (64 << 20) < n as u64 {
            peak_rss_kb = peak_rss_kb.max(vm_rss_kb(server));
        }
    }
    assert!(
        received > GIB,
        "the whole file and its headers: {received} bytes"
    );
    assert!(
        peak_rss_kb > 0 && peak_rss_kb < 64 * 1024,
        "the server's memory while sending 1 GiB: {peak_rss_kb} KiB"
    );

    let part = request(port, "GET", "/big.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206, "{}", part.headers);
    assert_eq!(
        header(&part, "content-range"),
        Some("bytes 100-199/1073741824")
    );
    assert_eq!(part.body.len(), 100);
    let beyond = request(port, "GET", "/big.bin", &[("Range", "bytes=2000000000-")]);
    assert_eq!(beyond.status, 416, "{}", beyond.headers);

    let first = get(port, "/index.html");
    assert_eq!(first.status, 200);
    let etag = header(&first, "etag").expect("an ETag").to_string();
    let modified = header(&first, "last-modified")
        .expect("a Last-Modified")
        .to_string();
    let again = request(port, "GET", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(
        (again.status, again.body.as_str()),
        (304, ""),
        "{}",
        again.headers
    );
    let again = request(
        port,
        "GET",
        "/index.html",
        &[("If-Modified-Since", &modified)],
    );
    assert_eq!(
        (again.status, again.body.as_str()),
        (304, ""),
        "{}",
        again.headers
    );
    let stale = request(
        port,
        "GET",
        "/index.html",
        &[("If-Match", "\"not-this-one\"")],
    );
    assert_eq!(stale.status, 412, "{}", stale.headers);
    // Changed since: the new content, with another ETag.
    std::fs::write(format!("{root}/index.html"), "<h1>new</h1>\n").expect("write");
    let changed = request(port, "GET", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(
        (changed.status, changed.body.as_str()),
        (200, "<h1>new</h1>\n")
    );
    assert_ne!(header(&changed, "etag"), Some(etag.as_str()));
    // A 404 page is never "not modified", whatever the client had.
    let missing = request(port, "GET", "/nope.html", &[("If-None-Match", "*")]);
    assert_eq!(missing.status, 404, "{}", missing.headers);
    assert_eq!(missing.body, "your file doesnt exist\n");
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
        // `start`'s flags, declared once and taken by `serve` too.
        "--max-memory-restart",
        "300M",
        "--kill-timeout",
        "2500",
    ]);
    let app = k.app("front");
    assert_eq!(app["pm2_env"]["pm_cwd"], root.as_str());
    assert_eq!(app["pm2_env"]["max_memory_restart"], 300 * 1024 * 1024);
    assert_eq!(app["pm2_env"]["kill_timeout"], 2500);
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
    let err = k.fails(&["serve", ".", "8080", "--interpreter", "node"]);
    assert!(err.contains("does not take --interpreter"), "{err}");
    let err = k.fails(&["serve", ".", "--port", "unix:/tmp/x.sock"]);
    assert!(err.contains("takes a TCP port number"), "{err}");
    assert!(k.jlist().is_empty());
}
