//! Black-box tests of the real `kelpie` binary against temporary homes, with real processes
//! (the workspace's `fake-app`). Every test cleans up what it started, even when it fails
//! (see `kelpie_testkit::Kelpie`'s drop).

mod cli {
    mod cluster;
    mod cluster_ports;
    mod compat;
    mod completions;
    mod conf;
    mod config;
    mod daemon;
    mod events;
    mod export;
    mod faults;
    mod health;
    mod image;
    mod logs;
    mod monit;
    mod monitoring;
    mod node_api;
    mod npm_package;
    mod persistence;
    mod pid1;
    mod runtime;
    mod security;
    mod serve;
    mod source_maps;
    mod startup;
    mod supervision;
    mod survival;
    mod targets;
    mod tools;
    mod update;
    mod versioning;
    mod web;

    use kelpie_testkit::Kelpie;
    use std::sync::{Mutex, MutexGuard};

    /// Held by the tests that load both cores (HTTP load) or measure time, so they do not
    /// run at the same time as each other on a two-core machine.
    static HEAVY: Mutex<()> = Mutex::new(());

    /// Wait for the other heavy tests (a failed one does not poison the others).
    pub fn heavy() -> MutexGuard<'static, ()> {
        HEAVY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A TCP port nothing listens on now, on 127.0.0.1.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    /// 127.0.0.1:`port`.
    pub fn local(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A fresh home driven by the `kelpie` binary under test.
    pub fn kelpie() -> Kelpie {
        Kelpie::new(env!("CARGO_BIN_EXE_kelpie"))
    }
}
