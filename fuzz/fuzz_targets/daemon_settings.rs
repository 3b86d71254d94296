//! Any bytes as `kelpie.toml`: settings, or errors that say why.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::project().write("kelpie.toml", data);
    match kelpie_config::DaemonSettings::load(&path) {
        Ok(settings) => {
            if let Some(web) = settings.web {
                let _ = web.socket_addr();
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
