//! The Hello the daemon answers each connection with: its version and protocol, which the CLI
//! checks before anything else (an old daemon meeting a new CLI says so, see `kelpie update`).

/// For tests of an old daemon meeting a new CLI: the daemon answers the Hello with this
/// `version:protocol` instead of its own. Not passed on to the program an update executes.
pub(crate) const TEST_VERSION_ENV: &str = "KELPIE_TEST_DAEMON_VERSION";

/// The Hello this daemon answers with (see [`TEST_VERSION_ENV`]).
pub fn daemon_hello() -> kelpie_proto::Hello {
    let pretend = std::env::var(TEST_VERSION_ENV).ok().and_then(|value| {
        let (version, protocol) = value.split_once(':')?;
        Some(kelpie_proto::Hello {
            protocol: protocol.parse().ok()?,
            version: version.to_string(),
        })
    });
    pretend.unwrap_or_else(kelpie_proto::Hello::current)
}
