//! CPU and memory of each app's main process, read from /proc when a list is asked for.
//! (The health issue replaces this with a periodic sampler of the whole process tree.)

use kelpie_proto::ProcessInfo;
use std::collections::HashMap;
use std::time::Instant;

/// Remembers the previous reading of each process, so CPU is the use since then (like PM2's
/// pidusage): the first reading of a process gives its average since it started.
#[derive(Default)]
pub struct Sampler {
    last: HashMap<(u32, u64), (u64, Instant)>,
}

impl Sampler {
    /// Fill `memory` and `cpu` of every running process. Blocking: call off the async workers.
    pub fn fill(&mut self, infos: &mut [ProcessInfo]) {
        let hz = kelpie_sys::clock_ticks_per_second() as f64;
        let uptime = system_uptime_secs();
        let now = Instant::now();
        let mut seen = HashMap::new();
        for info in infos.iter_mut() {
            let Some(pid) = info.state.pid else { continue };
            let Some(sample) = kelpie_sys::sample_process(pid) else {
                continue;
            };
            info.memory = sample.rss_bytes;
            let key = (pid, sample.start_ticks);
            info.cpu = match self.last.get(&key) {
                Some((ticks, at)) => {
                    let elapsed = now.duration_since(*at).as_secs_f64();
                    if elapsed > 0.0 {
                        (sample.cpu_ticks.saturating_sub(*ticks) as f64 / hz) / elapsed * 100.0
                    } else {
                        0.0
                    }
                }
                None => {
                    let age = uptime
                        .map(|u| u - sample.start_ticks as f64 / hz)
                        .unwrap_or(0.0);
                    if age > 0.0 {
                        (sample.cpu_ticks as f64 / hz) / age * 100.0
                    } else {
                        0.0
                    }
                }
            };
            info.cpu = (info.cpu * 10.0).round() / 10.0;
            seen.insert(key, (sample.cpu_ticks, now));
        }
        self.last = seen;
    }
}

fn system_uptime_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
