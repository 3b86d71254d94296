//! Where the app's output goes: the journal, Kelpie's own files as `append:` files, or nowhere;
//! and the log settings that do not carry over.

use kelpie_core::AppSpec;
use std::fmt::Write as _;

/// Where the unit's output goes, for the comment at its top: the journal, files, or nowhere.
pub(super) fn output_comment(app: &AppSpec, base: &str, template: bool) -> String {
    if app.disable_logs {
        return "# Output is discarded (disable_logs).\n".into();
    }
    let journal = format!(
        "the journal (`journalctl -u {base}{}`)",
        if template { "@*" } else { "" }
    );
    let place = |file: &Option<String>| match file.as_deref() {
        Some("/dev/null") => "nowhere".to_string(),
        Some(path) => path.to_string(),
        None => journal.clone(),
    };
    let (out, err) = (place(&app.out_file), place(&app.error_file));
    if out == err {
        format!("# Output goes to {out}.\n")
    } else {
        format!("# Output goes to {out}; errors to {err}.\n")
    }
}

/// Output settings: Kelpie's own files become `append:` files; default files (Kelpie's home)
/// become the journal.
pub(super) fn log_lines(app: &AppSpec, text: &mut String, warnings: &mut Vec<String>) {
    let name = &app.name;
    let target = |file: &Option<String>| match file.as_deref() {
        Some("/dev/null") => Some("null".to_string()),
        Some(path) => Some(format!("append:{}", path.replace('%', "%%"))),
        None => None,
    };
    if app.disable_logs {
        text.push_str("StandardOutput=null\nStandardError=null\n");
    } else {
        if let Some(out) = target(&app.out_file) {
            let _ = writeln!(text, "StandardOutput={out}");
        }
        if let Some(err) = target(&app.error_file) {
            let _ = writeln!(text, "StandardError={err}");
        }
    }
    if app.log_file.is_some() {
        warnings.push(format!(
            "app `{name}`: field `log_file` is not exported: the journal holds both streams (`journalctl -u`)"
        ));
    }
    if app.log_rotation != kelpie_core::LogRotation::default() {
        warnings.push(format!(
            "app `{name}`: log rotation fields are not exported: journald (or logrotate for append: files) rotates"
        ));
    }
}
