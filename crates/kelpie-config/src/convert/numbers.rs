//! Bounded numbers with a meaning: `instances` (with PM2's `max` and `-N`), a CPU percentage,
//! a number of processes, a nice value, exit codes.

use super::{expected, integer, out_of_range, ValueError};
use serde_json::Value;

/// `instances`: a positive count; `0` and `"max"` mean one per CPU; `-N` means N fewer than the
/// CPUs, at least one (PM2's rules: `-1` is "all CPUs but one").
pub(crate) fn instances(value: &Value, cpus: u32) -> Result<u32, ValueError> {
    if value
        .as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("max"))
    {
        return Ok(cpus);
    }
    let n = integer(value).ok_or_else(|| {
        expected(
            "a number of instances, \"max\", or -N for \"all CPUs but N\"",
            value,
        )
    })?;
    match n {
        0 => Ok(cpus),
        n if n < 0 => {
            let fewer = u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX);
            Ok(cpus.saturating_sub(fewer).max(1))
        }
        n => u32::try_from(n)
            .ok()
            .filter(|n| kelpie_core::check_instances(*n).is_ok())
            .ok_or_else(|| {
                out_of_range(
                    &format!("at most {} instances", kelpie_core::MAX_INSTANCES),
                    value,
                )
            }),
    }
}

/// `instances` as a number of CPUs left out (`"max"` and `0`: none; `-N`: N), or `None` for a
/// plain count: the same file means another count on another machine.
pub(crate) fn instances_cpu_relative(value: &Value) -> Option<u32> {
    if value
        .as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("max"))
    {
        return Some(0);
    }
    match integer(value)? {
        n if n <= 0 => Some(u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX)),
        _ => None,
    }
}

/// `max_cpu`: a percentage of one core, `80`, `"80%"` or `"150"` (two cores are 200), from 1
/// to 100 × the CPUs available.
pub(crate) fn cpu_percent(value: &Value, cpus: u32) -> Result<u32, ValueError> {
    let max = cpus.max(1).saturating_mul(100);
    let number = match value {
        Value::String(s) => {
            let s = s.trim();
            Value::from(s.strip_suffix('%').unwrap_or(s).trim())
        }
        other => other.clone(),
    };
    let what = format!(
        "a CPU percentage from 1 to {max} (100 is one core; this machine has {} CPUs)",
        cpus.max(1)
    );
    let n = integer(&number).ok_or_else(|| expected(&what, value))?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| out_of_range(&what, value))
}

/// Most processes `max_processes` accepts: Linux's own limit on pids (`pid_max`'s maximum).
pub(super) const MAX_PROCESSES: u32 = 4_194_304;

/// `max_processes`: a whole number of processes from 1 to [`MAX_PROCESSES`], as a number or a
/// string.
pub(crate) fn max_processes(value: &Value) -> Result<u32, ValueError> {
    let number = match value {
        Value::String(s) => Value::from(s.trim()),
        other => other.clone(),
    };
    let what = format!("a number of processes from 1 to {MAX_PROCESSES}");
    let n = integer(&number).ok_or_else(|| expected(&what, value))?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PROCESSES).contains(n))
        .ok_or_else(|| out_of_range(&what, value))
}

/// `nice`: -20 (highest priority) to 19 (lowest), as `nice(1)`.
pub(crate) fn nice(value: &Value) -> Result<i32, ValueError> {
    const WHAT: &str = "a nice value from -20 (highest priority) to 19 (lowest)";
    let n = integer(value).ok_or_else(|| expected(WHAT, value))?;
    Some(n)
        .filter(|n| (-20..=19).contains(n))
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| out_of_range(WHAT, value))
}

/// Exit codes: one number or a list of them.
pub(crate) fn exit_codes(value: &Value) -> Result<Vec<i32>, ValueError> {
    let one = |v: &Value| {
        integer(v)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| expected("an exit code (a whole number) or a list of them", v))
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|code| vec![code]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes_take_one_or_many() {
        assert_eq!(exit_codes(&json!(0)), Ok(vec![0]));
        assert_eq!(exit_codes(&json!([0, 2, "3"])), Ok(vec![0, 2, 3]));
        assert!(exit_codes(&json!(["x"])).is_err());
    }

    #[test]
    fn instances_follow_pm2_rules() {
        assert_eq!(instances(&json!(4), 8), Ok(4));
        assert_eq!(instances(&json!("max"), 8), Ok(8));
        assert_eq!(instances(&json!("MAX"), 8), Ok(8));
        assert_eq!(instances(&json!(0), 8), Ok(8));
        assert_eq!(instances(&json!(-1), 8), Ok(7));
        assert_eq!(instances(&json!(9999), 8), Ok(9999));
        assert!(instances(&json!(10_000), 8).is_err());
        assert!(instances(&json!(4_000_000_000u64), 8).is_err());
        assert_eq!(instances(&json!("-1"), 8), Ok(7));
        assert_eq!(instances(&json!(-1), 1), Ok(1));
        assert_eq!(instances(&json!(-2), 8), Ok(6));
        assert_eq!(instances(&json!(-20), 8), Ok(1));
        assert_eq!(instances(&json!("3"), 8), Ok(3));
        assert!(instances(&json!("many"), 8).is_err());
    }

    #[test]
    fn cpu_percentages_go_up_to_every_core() {
        assert_eq!(cpu_percent(&json!(80), 4), Ok(80));
        assert_eq!(cpu_percent(&json!("80%"), 4), Ok(80));
        assert_eq!(cpu_percent(&json!(" 150 "), 4), Ok(150));
        assert_eq!(cpu_percent(&json!("400"), 4), Ok(400));
        assert_eq!(
            cpu_percent(&json!("401%"), 4).map_err(|e| e.to_string()),
            Err("expected a CPU percentage from 1 to 400 (100 is one core; this machine has 4 CPUs), got \"401%\"".into())
        );
        for bad in [json!(0), json!(-5), json!("%"), json!("80.5%"), json!(true)] {
            assert!(cpu_percent(&bad, 4).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_processes_is_a_positive_count() {
        assert_eq!(max_processes(&json!(64)), Ok(64));
        assert_eq!(max_processes(&json!(" 200 ")), Ok(200));
        assert_eq!(max_processes(&json!(MAX_PROCESSES)), Ok(MAX_PROCESSES));
        assert_eq!(
            max_processes(&json!(0)).map_err(|e| e.to_string()),
            Err("expected a number of processes from 1 to 4194304, got 0".into())
        );
        for bad in [
            json!(-1),
            json!("ten"),
            json!(1.5),
            json!(true),
            json!(4_194_305),
        ] {
            assert!(max_processes(&bad).is_err(), "{bad}");
        }
    }
}
