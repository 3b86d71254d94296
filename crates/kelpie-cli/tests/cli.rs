//! Black-box tests of the real `kelpie` binary against temporary homes, with real processes
//! (the workspace's `fake-app`). Every test cleans up what it started, even when it fails
//! (see `kelpie_testkit::Kelpie`'s drop).

mod cli {
    mod config;
    mod daemon;
    mod logs;
    mod persistence;
    mod supervision;
    mod targets;

    use kelpie_testkit::Kelpie;

    /// A fresh home driven by the `kelpie` binary under test.
    pub fn kelpie() -> Kelpie {
        Kelpie::new(env!("CARGO_BIN_EXE_kelpie"))
    }
}
