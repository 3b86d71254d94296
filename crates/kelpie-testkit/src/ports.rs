//! Ports for tests, picked below the kernel's ephemeral range (32768-60999 by default).
//!
//! A port found by binding port 0 is ephemeral: between the moment it is picked and the moment
//! the app under test binds it, the kernel may give it to another test's `bind(0)` or to an
//! outgoing connection of a load test. Below 32768 neither happens; only another test picking
//! the same port could, and each test process walks the range from its own place.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

/// A TCP port nothing listens on, on any address, below the ephemeral range.
pub fn free_port() -> u16 {
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    for _ in 0..COUNT {
        let step = TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (start + step) % COUNT).expect("below 32 000");
        // The wildcard bind fails when anything listens on the port, whatever its address.
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port between {FIRST} and {}", FIRST + COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_free() {
        let first = free_port();
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, first)).expect("free");
        let second = free_port();
        assert_ne!(first, second);
        for port in [first, second] {
            assert!((20_000..32_000).contains(&port), "{port}");
        }
        drop(held);
    }
}
