//! Secrets and privileges: env values named like secrets are masked where they are shown, the
//! files that hold them are private, apps run as exactly their configured user and groups, and
//! a root daemon takes no orders from another user.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// An app whose config `env` holds secrets and ordinary values.
fn start_with_secrets(k: &Kelpie) {
    let file = k.write(
        "secrets.json",
        &format!(
            r#"{{"apps": [{{"name": "vault", "script": "{}", "env": {{
                "PORT": "3000",
                "API_TOKEN": "tok-value-1",
                "db_password": "pw-value-2",
                "Stripe_Secret": "sec-value-3",
                "AWS_ACCESS_KEY_ID": "key-value-4"
            }}}}]}}"#,
            k.fake_app()
        ),
    );
    k.ok(&["start", &file]);
}

const SECRET_VALUES: [&str; 4] = ["tok-value-1", "pw-value-2", "sec-value-3", "key-value-4"];

#[test]
fn secret_env_values_are_masked_unless_asked_and_still_reach_the_app() {
    let k = kelpie();
    start_with_secrets(&k);

    let described = k.ok(&["describe", "vault"]);
    assert!(described.contains("PORT=3000"), "{described}");
    for name in [
        "API_TOKEN",
        "db_password",
        "Stripe_Secret",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(
            described.contains(&format!("{name}=****")),
            "{name}: {described}"
        );
    }
    for value in SECRET_VALUES {
        assert!(!described.contains(value), "{value} shown: {described}");
    }
    assert!(described.contains("--show-secrets"), "{described}");
    let shown = k.ok(&["describe", "vault", "--show-secrets"]);
    assert!(shown.contains("API_TOKEN=tok-value-1"), "{shown}");
    assert!(shown.contains("db_password=pw-value-2"), "{shown}");

    let jlist = k.ok(&["jlist"]);
    for value in SECRET_VALUES {
        assert!(!jlist.contains(value), "{value} in jlist: {jlist}");
    }
    let env = &k.app("vault")["pm2_env"]["env"];
    assert_eq!(env["PORT"], "3000");
    assert_eq!(env["API_TOKEN"], "****");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "****");
    let full = k.ok(&["jlist", "--show-secrets"]);
    let full: serde_json::Value = serde_json::from_str(full.trim()).expect("jlist JSON");
    assert_eq!(full[0]["pm2_env"]["env"]["API_TOKEN"], "tok-value-1");
    assert_eq!(full[0]["pm2_env"]["env"]["Stripe_Secret"], "sec-value-3");

    // Masking is only how they are shown: the app gets the values, and the dump keeps them.
    let environ = std::fs::read(format!("/proc/{}/environ", k.pid("vault"))).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("API_TOKEN=tok-value-1"), "{environ}");
    k.ok(&["save"]);
    let dump = std::fs::read_to_string(k.home().join("dump.json")).expect("dump");
    assert!(dump.contains("tok-value-1"), "{dump}");
}

#[test]
fn the_files_that_hold_secrets_are_private() {
    let k = kelpie();
    start_with_secrets(&k);
    k.ok(&["save"]);
    // A second save keeps the first as dump.json.bak.
    k.ok(&["save", "--force"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    k.ok(&["web", "--port", &port.to_string()]);
    k.ok(&["update"]);
    let home = k.home();
    assert_eq!(mode(home), 0o700, "the home");
    assert_eq!(mode(&home.join("kelpie.sock")), 0o600, "the socket");
    for file in ["dump.json", "dump.json.bak", "state.json", "web.token"] {
        assert_eq!(mode(&home.join(file)), 0o600, "{file}");
    }
    // What `kelpie update` and the old daemon hand over is written 0600 (like the files above,
    // by the same function) and removed once read.
    for file in ["handoff.json", "update-to", "update-result"] {
        assert!(
            !home.join(file).exists(),
            "{file} is left behind (mode {:o})",
            mode(&home.join(file))
        );
    }
    k.ok(&["kill"]);
    assert_eq!(mode(&home.join("dump.json")), 0o600);
}
