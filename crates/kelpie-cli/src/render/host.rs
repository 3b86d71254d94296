//! The host line under `list` (PM2's pm2-server-monit line, built in), in `monit` and
//! `list --watch`.

use super::format::bytes;
use kelpie_proto::HostMetrics;

/// `host  cpu 12% (2 cpus) · mem 10.2gb free of 23.5gb · load 0.52 0.61 0.70 · disk / 45.1gb free
/// of 100.0gb, read 0b/s, write 12.0kb/s · net in 1.2kb/s, out 812.0b/s`
pub(crate) fn host_line(host: &HostMetrics) -> String {
    let [one, five, fifteen] = host.load;
    let mut parts = vec![
        format!("cpu {:.0}% ({} cpus)", host.cpu_percent, host.cpus),
        format!(
            "mem {} free of {}",
            bytes(host.memory_available_bytes),
            bytes(host.memory_total_bytes)
        ),
        format!("load {one:.2} {five:.2} {fifteen:.2}"),
    ];
    let traffic = format!(
        "read {}/s, write {}/s",
        rate(host.disk_read_per_sec),
        rate(host.disk_written_per_sec)
    );
    parts.push(match &host.filesystem {
        Some(fs) => format!(
            "disk {} {} free of {}, {traffic}",
            fs.mountpoint,
            bytes(fs.available_bytes),
            bytes(fs.size_bytes)
        ),
        None => format!("disk {traffic}"),
    });
    parts.push(format!(
        "net in {}/s, out {}/s",
        rate(host.net_received_per_sec),
        rate(host.net_transmitted_per_sec)
    ));
    format!("host  {}", parts.join(" · "))
}

fn rate(per_sec: f64) -> String {
    bytes(per_sec.max(0.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_proto::HostFilesystem;

    #[test]
    fn the_host_line_names_every_figure() {
        let host = HostMetrics {
            cpu_percent: 12.4,
            cpus: 2,
            load: [0.52, 0.61, 0.7],
            memory_total_bytes: 24 << 30,
            memory_available_bytes: 10 << 30,
            filesystem: Some(HostFilesystem {
                mountpoint: "/".into(),
                size_bytes: 100 << 30,
                available_bytes: 45 << 30,
            }),
            disk_read_per_sec: 0.0,
            disk_written_per_sec: 12_288.0,
            net_received_per_sec: 1228.8,
            net_transmitted_per_sec: 512.0,
            at_ms: 0,
            interval_ms: 1000,
        };
        assert_eq!(
            host_line(&host),
            "host  cpu 12% (2 cpus) · mem 10.0gb free of 24.0gb · load 0.52 0.61 0.70 · disk / 45.0gb free of 100.0gb, read 0b/s, write 12.0kb/s · net in 1.2kb/s, out 0.5kb/s"
        );
    }
}
