//! Crash forensics: what Kelpie keeps of each exit besides its code or signal (whether the
//! kernel's OOM killer did it, and the last lines the process wrote to stderr), and the status
//! and metrics a running process publishes on its notify socket. Pure: the daemon reads the
//! counters and the lines, the rules are here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Lines of stderr kept with an exit.
pub const STDERR_TAIL_LINES: usize = 20;
/// Bytes of one kept line (longer ones are cut, with `…`).
pub const STDERR_LINE_BYTES: usize = 512;
/// Bytes of all kept lines of one exit (the oldest go first): with [`crate::EXIT_HISTORY`]
/// exits, at most 40 KiB per instance in `state.json`.
pub const STDERR_TAIL_BYTES: usize = 4096;

/// How Kelpie knows the kernel's OOM killer ended a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OomKill {
    /// Certain: the process's own cgroup (`memory.events`, `oom_kill`) counted an OOM kill
    /// during its life. (The victim may have been another process of its tree.)
    Cgroup,
    /// Likely, not proven: no cgroup could tell, the process died of a SIGKILL Kelpie did not
    /// send, and the machine's OOM-kill counter (`/proc/vmstat`, `oom_kill`) rose in the
    /// second or two before.
    Likely,
}

impl OomKill {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            OomKill::Cgroup => "killed by the kernel's OOM killer (its cgroup counted it)",
            OomKill::Likely => {
                "likely killed by the kernel's OOM killer (SIGKILL while the machine's OOM-kill count rose)"
            }
        }
    }
}

/// What was seen about the OOM killer when a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OomEvidence {
    /// OOM kills its cgroup counted (`memory.events`), when it had one with the memory
    /// controller.
    pub cgroup_kills: Option<u64>,
    /// Whether the machine's OOM-kill counter rose just before the exit, when it could be read.
    pub system_rose: Option<bool>,
}

/// Whether an exit was the OOM killer's doing. `on_its_own`: the process ended without Kelpie
/// stopping it (Kelpie's own SIGKILL at `kill_timeout` is not the OOM killer's).
pub fn oom_verdict(on_its_own: bool, signal: Option<&str>, seen: OomEvidence) -> Option<OomKill> {
    if !on_its_own {
        return None;
    }
    match seen.cgroup_kills {
        // The cgroup knows, either way: no guessing from the machine's counter.
        Some(kills) => (kills > 0).then_some(OomKill::Cgroup),
        None => {
            (signal == Some("SIGKILL") && seen.system_rose == Some(true)).then_some(OomKill::Likely)
        }
    }
}

/// The last lines of stderr to keep with an exit, from `lines` (oldest first, without their
/// newlines): at most [`STDERR_TAIL_LINES`], each cut to [`STDERR_LINE_BYTES`], all within
/// [`STDERR_TAIL_BYTES`]. Bytes that are not UTF-8 are replaced (`�`).
pub fn stderr_tail<'a, I>(lines: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let mut kept = Vec::new();
    let mut bytes = 0;
    for line in lines.into_iter().rev().take(STDERR_TAIL_LINES) {
        let text = cut(&String::from_utf8_lossy(line), STDERR_LINE_BYTES);
        if bytes + text.len() > STDERR_TAIL_BYTES {
            break;
        }
        bytes += text.len();
        kept.push(text);
    }
    kept.reverse();
    kept
}

/// `text` within `max` bytes, cut at a character boundary with `…` when it was longer.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Longest `STATUS=` text kept (longer ones are cut, with `…`).
pub const STATUS_MAX_BYTES: usize = 256;
/// Metrics kept per process; a new name beyond this is ignored.
pub const METRICS_MAX: usize = 32;
/// Longest metric name.
pub const METRIC_NAME_MAX: usize = 64;

/// The notify-socket assignment that carries a metric: `X_KELPIE_METRIC=<name>=<number>`.
/// systemd's `sd_notify(3)` asks that variables of one's own be prefixed with `X_`, so the
/// same line sent to systemd is ignored there.
pub const METRIC_VARIABLE: &str = "X_KELPIE_METRIC";

/// One assignment a process sent on its notify socket.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyLine {
    /// `READY=1`.
    Ready,
    /// `WATCHDOG=1`.
    Watchdog,
    /// `STATUS=<text>` (cut to [`STATUS_MAX_BYTES`]; empty clears it).
    Status(String),
    /// `X_KELPIE_METRIC=<name>=<number>`; `None` (an empty value) removes the metric.
    Metric(String, Option<f64>),
    /// An `X_KELPIE_METRIC` line that does not follow the syntax, and why.
    BadMetric(MetricError),
}

/// Why a metric a process published was not taken. `Display` is the line the daemon logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// No `=` between the name and the value.
    #[error("`{METRIC_VARIABLE}={assignment}`: expected {METRIC_VARIABLE}=<name>=<number>")]
    Syntax {
        /// What followed `X_KELPIE_METRIC=`.
        assignment: String,
    },
    /// A name that is not `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("metric name `{name}`: expected letters, digits and `_`, not starting with a digit")]
    BadName {
        /// The name as sent.
        name: String,
    },
    /// A name longer than [`METRIC_NAME_MAX`].
    #[error("metric name `{name}`: longer than {METRIC_NAME_MAX} bytes")]
    NameTooLong {
        /// The name as sent.
        name: String,
    },
    /// A value that is not a finite number.
    #[error("metric `{name}`: `{value}` is not a finite number")]
    NotANumber {
        /// The metric's name.
        name: String,
        /// The value as sent.
        value: String,
    },
    /// A new metric beyond [`METRICS_MAX`].
    #[error("metric `{name}` ignored: a process keeps at most {METRICS_MAX} metrics")]
    TooMany {
        /// The metric's name.
        name: String,
    },
}

/// Read one line of a notify datagram (systemd's format: `VARIABLE=value`, one per line).
/// `None` for assignments Kelpie does not use (`MAINPID=`, `RELOADING=1`...).
pub fn parse_notify_line(line: &[u8]) -> Option<NotifyLine> {
    match line {
        b"READY=1" => return Some(NotifyLine::Ready),
        b"WATCHDOG=1" => return Some(NotifyLine::Watchdog),
        _ => {}
    }
    let text = String::from_utf8_lossy(line);
    let (variable, value) = text.split_once('=')?;
    match variable {
        "STATUS" => Some(NotifyLine::Status(cut(value.trim_end(), STATUS_MAX_BYTES))),
        METRIC_VARIABLE => Some(parse_metric(value)),
        _ => None,
    }
}

fn parse_metric(assignment: &str) -> NotifyLine {
    let Some((name, value)) = assignment.split_once('=') else {
        return NotifyLine::BadMetric(MetricError::Syntax {
            assignment: assignment.to_string(),
        });
    };
    if let Err(why) = check_metric_name(name) {
        return NotifyLine::BadMetric(why);
    }
    let value = value.trim();
    if value.is_empty() {
        return NotifyLine::Metric(name.to_string(), None);
    }
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() => NotifyLine::Metric(name.to_string(), Some(number)),
        _ => NotifyLine::BadMetric(MetricError::NotANumber {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// A metric name is a Prometheus name without colons (those are for recording rules):
/// `[a-zA-Z_][a-zA-Z0-9_]*`, at most [`METRIC_NAME_MAX`] bytes.
pub fn check_metric_name(name: &str) -> Result<(), MetricError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(MetricError::BadName {
            name: name.to_string(),
        });
    }
    if name.len() > METRIC_NAME_MAX {
        return Err(MetricError::NameTooLong {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// What a process published on its notify socket: its last `STATUS=` and its metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Published {
    /// The last `STATUS=` text (systemd's status text), if any and not empty.
    pub status_text: Option<String>,
    /// The last value of each metric, by name.
    pub metrics: BTreeMap<String, f64>,
}

impl Published {
    /// Take `line` into account; `Ok(true)` when something changed, `Err` with why a line was
    /// ignored (a bad metric, or one too many).
    pub fn apply(&mut self, line: &NotifyLine) -> Result<bool, MetricError> {
        match line {
            NotifyLine::Status(text) => {
                let text = (!text.is_empty()).then(|| text.clone());
                let changed = self.status_text != text;
                self.status_text = text;
                Ok(changed)
            }
            NotifyLine::Metric(name, None) => Ok(self.metrics.remove(name).is_some()),
            NotifyLine::Metric(name, Some(value)) => {
                if !self.metrics.contains_key(name) && self.metrics.len() >= METRICS_MAX {
                    return Err(MetricError::TooMany { name: name.clone() });
                }
                let old = self.metrics.insert(name.clone(), *value);
                Ok(old != Some(*value))
            }
            NotifyLine::BadMetric(why) => Err(why.clone()),
            NotifyLine::Ready | NotifyLine::Watchdog => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_verdicts() {
        let cgroup = |kills| OomEvidence {
            cgroup_kills: Some(kills),
            system_rose: Some(true),
        };
        let system = |rose| OomEvidence {
            cgroup_kills: None,
            system_rose: rose,
        };
        let table: &[(bool, Option<&str>, OomEvidence, Option<OomKill>)] = &[
            // The cgroup counted a kill: certain, however the main process ended.
            (true, Some("SIGKILL"), cgroup(1), Some(OomKill::Cgroup)),
            (true, None, cgroup(2), Some(OomKill::Cgroup)),
            // The cgroup counted none: not the OOM killer, whatever the machine's counter says.
            (true, Some("SIGKILL"), cgroup(0), None),
            // No cgroup: a SIGKILL while the machine's counter rose.
            (
                true,
                Some("SIGKILL"),
                system(Some(true)),
                Some(OomKill::Likely),
            ),
            (true, Some("SIGKILL"), system(Some(false)), None),
            (true, Some("SIGKILL"), system(None), None),
            (true, Some("SIGSEGV"), system(Some(true)), None),
            (true, None, system(Some(true)), None),
            // Kelpie stopped it (its own SIGKILL at kill_timeout).
            (false, Some("SIGKILL"), cgroup(1), None),
            (false, Some("SIGKILL"), system(Some(true)), None),
        ];
        for (on_its_own, signal, seen, expected) in table {
            assert_eq!(
                oom_verdict(*on_its_own, *signal, *seen),
                *expected,
                "{on_its_own} {signal:?} {seen:?}"
            );
        }
    }

    fn tail_of(lines: &[&str]) -> Vec<String> {
        stderr_tail(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn the_stderr_tail_is_bounded_in_lines_and_bytes() {
        let many: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let tail = tail_of(&refs);
        assert_eq!(tail.len(), STDERR_TAIL_LINES);
        assert_eq!(tail.first().map(String::as_str), Some("line 30"));
        assert_eq!(tail.last().map(String::as_str), Some("line 49"));

        let long = "é".repeat(1000);
        let tail = tail_of(&["before", &long]);
        assert_eq!(tail[0], "before");
        assert!(tail[1].len() <= STDERR_LINE_BYTES && tail[1].ends_with('…'));

        let big: Vec<String> = (0..20).map(|i| format!("{i}{}", "x".repeat(400))).collect();
        let refs: Vec<&str> = big.iter().map(String::as_str).collect();
        let tail = tail_of(&refs);
        assert!(tail.iter().map(String::len).sum::<usize>() <= STDERR_TAIL_BYTES);
        assert!(
            tail.last().is_some_and(|l| l.starts_with("19")),
            "newest kept"
        );
        assert_eq!(tail.len(), 10);

        assert_eq!(
            stderr_tail([b"bad \xff bytes".as_slice()]),
            ["bad \u{fffd} bytes"]
        );
        assert!(tail_of(&[]).is_empty());
    }

    #[test]
    fn notify_lines() {
        let parse = |line: &str| parse_notify_line(line.as_bytes());
        assert_eq!(parse("READY=1"), Some(NotifyLine::Ready));
        assert_eq!(parse("WATCHDOG=1"), Some(NotifyLine::Watchdog));
        assert_eq!(
            parse("STATUS=serving 12 clients"),
            Some(NotifyLine::Status("serving 12 clients".into()))
        );
        assert_eq!(parse("STATUS="), Some(NotifyLine::Status(String::new())));
        let long = parse(&format!("STATUS={}", "s".repeat(1000)));
        assert!(matches!(long, Some(NotifyLine::Status(t)) if t.len() <= STATUS_MAX_BYTES));
        assert_eq!(
            parse("X_KELPIE_METRIC=queue_depth=12"),
            Some(NotifyLine::Metric("queue_depth".into(), Some(12.0)))
        );
        assert_eq!(
            parse("X_KELPIE_METRIC=latency_seconds=-0.25"),
            Some(NotifyLine::Metric("latency_seconds".into(), Some(-0.25)))
        );
        assert_eq!(
            parse("X_KELPIE_METRIC=_x1=1e3"),
            Some(NotifyLine::Metric("_x1".into(), Some(1000.0)))
        );
        assert_eq!(
            parse("X_KELPIE_METRIC=queue_depth="),
            Some(NotifyLine::Metric("queue_depth".into(), None))
        );
        for bad in [
            "X_KELPIE_METRIC=queue_depth",
            "X_KELPIE_METRIC=1st=1",
            "X_KELPIE_METRIC=a-b=1",
            "X_KELPIE_METRIC=a:b=1",
            "X_KELPIE_METRIC==1",
            "X_KELPIE_METRIC=é=1",
            "X_KELPIE_METRIC=x=NaN",
            "X_KELPIE_METRIC=x=inf",
            "X_KELPIE_METRIC=x=12 MB",
        ] {
            assert!(
                matches!(parse(bad), Some(NotifyLine::BadMetric(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        let long_name = format!("X_KELPIE_METRIC={}=1", "n".repeat(METRIC_NAME_MAX + 1));
        assert!(matches!(parse(&long_name), Some(NotifyLine::BadMetric(_))));
        assert_eq!(parse("MAINPID=42"), None);
        assert_eq!(parse("READY=0"), None);
        assert_eq!(parse("no equals sign"), None);
    }

    #[test]
    fn published_values_are_bounded() {
        let mut published = Published::default();
        assert_eq!(
            published.apply(&NotifyLine::Status("warming up".into())),
            Ok(true)
        );
        assert_eq!(
            published.apply(&NotifyLine::Status("warming up".into())),
            Ok(false)
        );
        assert_eq!(published.status_text.as_deref(), Some("warming up"));
        assert_eq!(
            published.apply(&NotifyLine::Status(String::new())),
            Ok(true)
        );
        assert_eq!(published.status_text, None);

        for i in 0..METRICS_MAX {
            assert_eq!(
                published.apply(&NotifyLine::Metric(format!("m{i}"), Some(1.0))),
                Ok(true)
            );
        }
        assert!(published
            .apply(&NotifyLine::Metric("one_too_many".into(), Some(1.0)))
            .is_err());
        assert_eq!(
            published.apply(&NotifyLine::Metric("m0".into(), Some(2.0))),
            Ok(true),
            "an existing metric is still updated"
        );
        assert_eq!(
            published.apply(&NotifyLine::Metric("m0".into(), None)),
            Ok(true)
        );
        assert_eq!(published.metrics.len(), METRICS_MAX - 1);
        assert!(published
            .apply(&NotifyLine::BadMetric(MetricError::NameTooLong {
                name: "why".into()
            }))
            .is_err());
    }
}
