//! `kelpie_app_exceptions_total`: the exception inbox's counts, by app and group
//! (docs/notifications.md, "The exception inbox").

use super::text::Family;

/// One sample per app and exception group: (app, group, type, count).
pub(super) fn exceptions_family(text: &mut String, counts: &[(String, String, String, u64)]) {
    let mut family = Family::new(
        text,
        "kelpie_app_exceptions_total",
        "counter",
        "Uncaught exceptions of the app in the group (its fingerprint; `kelpie errors`), since the inbox was last cleared.",
    );
    for (app, group, kind, count) in counts {
        family.sample(
            "kelpie_app_exceptions_total",
            &[("app", app), ("group", group), ("type", kind)],
            *count as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels are escaped as the text format says; a type with a quote stays one sample.
    #[test]
    fn each_app_and_group_is_one_sample() {
        let mut text = String::new();
        exceptions_family(
            &mut text,
            &[
                ("api".into(), "0a1b".into(), "TypeError".into(), 3),
                ("web".into(), "0a1b".into(), "Bad \"quote\"".into(), 1),
            ],
        );
        assert!(
            text.contains("# TYPE kelpie_app_exceptions_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                "kelpie_app_exceptions_total{app=\"api\",group=\"0a1b\",type=\"TypeError\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains("type=\"Bad \\\"quote\\\"\""), "{text}");
    }
}
