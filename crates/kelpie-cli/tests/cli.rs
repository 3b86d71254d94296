//! Black-box tests of the real `kelpie` binary against temporary homes, with real processes
//! (the workspace's `fake-app`). Every test cleans up what it started, even when it fails
//! (see `kelpie_testkit::Kelpie`'s drop).

mod cli {
    mod apps;
    mod attacks;
    mod chaos;
    mod cluster;
    mod cluster_ports;
    mod compat;
    mod completions;
    mod conf;
    mod config;
    mod control_socket;
    mod daemon;
    mod deploy;
    mod deploy_harness;
    mod events;
    mod export;
    mod faults;
    mod frameworks;
    mod health;
    mod image;
    mod insight;
    mod jobs;
    mod js_runtimes;
    mod logs;
    mod logs_pm2;
    mod lossless;
    mod monit;
    mod monitoring;
    mod node_api;
    mod node_metrics;
    mod node_start;
    mod notify;
    mod npm_package;
    mod persistence;
    mod pid1;
    mod pm2_listing;
    mod pm2_runtime;
    mod readme;
    mod restart_counts;
    mod runtime;
    mod runtime_metrics;
    mod security;
    mod serve;
    mod source_maps;
    mod startup;
    mod supervision;
    mod survival;
    mod targets;
    mod tools;
    mod unrecorded;
    mod update;
    mod versioning;
    mod web;

    use kelpie_testkit::Kelpie;
    use std::sync::{Mutex, MutexGuard};

    /// Held by the tests that load both cores (HTTP load) or measure time, so they do not
    /// run at the same time as each other on a two-core machine.
    static HEAVY: Mutex<()> = Mutex::new(());

    /// Wait for the other heavy tests (a failed one does not poison the others).
    pub(crate) fn heavy() -> MutexGuard<'static, ()> {
        HEAVY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this run includes the test `name` (`cli::module::test`), as libtest's arguments
    /// select: filters (substrings of the name, or the whole name with `--exact`) and `--skip`s.
    /// Only for starting slow preparations early: it never decides whether a test runs.
    pub(crate) fn selected(name: &str) -> bool {
        selected_by(std::env::args().skip(1), name)
    }

    /// [`selected`], from the arguments after the program's name.
    fn selected_by(args: impl Iterator<Item = String>, name: &str) -> bool {
        // libtest's options that take a value (as `--opt value` or `--opt=value`).
        const WITH_VALUE: [&str; 7] = [
            "--skip",
            "--test-threads",
            "--logfile",
            "--format",
            "--color",
            "-Z",
            "--shuffle-seed",
        ];
        let (mut filters, mut skips, mut exact) = (Vec::new(), Vec::new(), false);
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (option, inline) = match arg.split_once('=') {
                Some((option, value)) if option.starts_with('-') => (option, Some(value)),
                _ => (arg.as_str(), None),
            };
            match option {
                "--list" | "--ignored" | "--bench" => return false,
                "--exact" => exact = true,
                option if WITH_VALUE.contains(&option) => {
                    let value = inline.map(str::to_string).or_else(|| args.next());
                    if option == "--skip" {
                        skips.extend(value);
                    }
                }
                option if option.starts_with('-') => {}
                filter => filters.push(filter.to_string()),
            }
        }
        let matches = |pattern: &String| {
            if exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(matches)
    }

    #[test]
    fn selection_follows_libtests_filters_skips_and_exact() {
        let name = "cli::image::the_static_binary";
        let selects = |args: &[&str]| selected_by(args.iter().map(|a| a.to_string()), name);
        assert!(selects(&[]));
        assert!(selects(&[
            "--test-threads",
            "4",
            "-Z",
            "unstable-options",
            "--report-time"
        ]));
        assert!(selects(&["image::"]));
        assert!(selects(&["logs::", "image"]));
        assert!(!selects(&["logs::"]));
        assert!(!selects(&["--skip", "image::"]));
        assert!(!selects(&["--skip=image"]));
        assert!(!selects(&["image", "--exact"]));
        assert!(selects(&["--exact", name]));
        assert!(!selects(&["--list"]));
        // An option's value is not a filter.
        assert!(selects(&["--format", "terse"]));
    }

    /// A TCP port nothing listens on now, on 127.0.0.1.
    pub(crate) fn free_port() -> u16 {
        kelpie_testkit::free_port()
    }

    /// 127.0.0.1:`port`.
    pub(crate) fn local(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A fresh home driven by the `kelpie` binary under test. (Every test's first step: it also
    /// starts the image tests' static build early, when they are in the run.)
    pub(crate) fn kelpie() -> Kelpie {
        image::start_static_build_early();
        Kelpie::new(env!("CARGO_BIN_EXE_kelpie"))
    }
}
