//! `kelpie man`: the man page, kelpie(1), in roff, from the CLI's definition (clap_mangen for
//! the title, synopsis, description and options), with a section of every command and its
//! description, and where Kelpie keeps its files. The npm package and the Docker image install
//! it (`kelpie man > kelpie.1`).

use crate::cli::Cli;
use anyhow::Result;
use clap::CommandFactory;
use std::process::ExitCode;

/// `kelpie man`: print the page.
pub(super) fn man() -> Result<ExitCode> {
    out!("{}", page()?);
    Ok(ExitCode::SUCCESS)
}

/// kelpie(1).
pub(super) fn page() -> Result<String> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone())
        .source(format!("kelpie {}", env!("CARGO_PKG_VERSION")))
        .title("KELPIE")
        .date(date())
        .manual("Kelpie Manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut page = String::from_utf8(page)?;
    page.push_str(&commands_section(&command));
    page.push_str(FILES_AND_ENVIRONMENT);
    Ok(page)
}

/// The page's date, in UTC: `$SOURCE_DATE_EPOCH`'s (the reproducible-builds convention) when
/// set, else today's.
fn date() -> String {
    let unix_ms = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|seconds| seconds.trim().parse::<i64>().ok())
        .map(|seconds| seconds.saturating_mul(1000))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
    kelpie_core::DateFormat::parse("YYYY-MM-DD").format(unix_ms, 0)
}

/// COMMANDS: every visible command, with its aliases and its whole description (clap_mangen's
/// own section names a page per command, kelpie-stop(1), which Kelpie does not ship).
fn commands_section(root: &clap::Command) -> String {
    let mut section = String::from(
        ".SH COMMANDS\n`kelpie \\fIcommand\\fR \\-\\-help' prints the options of a command.\n",
    );
    for command in root.get_subcommands().filter(|c| !c.is_hide_set()) {
        let aliases: Vec<&str> = command.get_visible_aliases().collect();
        let hidden_aliases: Vec<&str> = command
            .get_all_aliases()
            .filter(|a| !aliases.contains(a))
            .collect();
        section.push_str(".TP\n");
        section.push_str(&format!("\\fBkelpie {}\\fR", escape(command.get_name())));
        let all: Vec<&str> = aliases.into_iter().chain(hidden_aliases).collect();
        if !all.is_empty() {
            section.push_str(&format!(" (also: {})", escape(&all.join(", "))));
        }
        section.push('\n');
        let about = command
            .get_long_about()
            .or_else(|| command.get_about())
            .map(|about| about.to_string())
            .unwrap_or_default();
        for line in about.lines() {
            section.push_str(&text_line(line));
        }
    }
    section
}

/// Where Kelpie keeps things, and the variables it reads (as the README says).
const FILES_AND_ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBKELPIE_HOME\fR
The daemon's home (default \fI~/.kelpie\fR). Every command talks to the daemon of this home,
and starts it on first use.
.TP
\fBPM2_HOME\fR
Run as \fBpm2\fR (a link so named, the drop\-in), the home is \fI$PM2_HOME\fR, else
\fI~/.pm2\fR, and its files have PM2's names (\fIpm2.pid\fR, \fIpm2.log\fR, \fIdump.pm2\fR).
\fBKELPIE_FILE_NAMES\fR=pm2 gives PM2's names to a \fBkelpie\fR command too.
.TP
\fBKELPIE_WEB_TOKEN\fR
The token \fBkelpie web\fR requires, when \fB\-\-token\fR is not given.
.SH FILES
.TP
\fI$KELPIE_HOME/kelpie.sock\fR
The daemon's control socket.
.TP
\fI$KELPIE_HOME/state.json\fR
Every app, written after each change.
.TP
\fI$KELPIE_HOME/dump.json\fR
The list \fBkelpie save\fR wrote, for \fBkelpie resurrect\fR.
.TP
\fI$KELPIE_HOME/kelpie.log\fR
The daemon's own log.
.TP
\fI$KELPIE_HOME/kelpie.toml\fR
Daemon-wide settings (optional).
.TP
\fI$KELPIE_HOME/logs/\fR
Each app's \fI<name>\-out.log\fR and \fI<name>\-error.log\fR.
.SH SEE ALSO
\fBkelpie completions\fR prints a completion script for bash, zsh or fish.
"#;

/// One line of text in roff: backslashes and hyphens escaped, and a line starting with `.` or
/// `'` (which roff would take for a request) protected.
fn text_line(line: &str) -> String {
    let line = escape(line.trim());
    if line.starts_with(['.', '\'']) {
        format!("\\&{line}\n")
    } else {
        format!("{line}\n")
    }
}

/// Text escaped for roff: `\` as `\e`, `-` as `\-` (a minus, not a hyphen: options stay
/// searchable and copyable), and any other character than ASCII by its code (`\[u2026]`):
/// groff reads its input as Latin-1 unless told otherwise.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\e"),
            '-' => escaped.push_str("\\-"),
            c if c.is_ascii() => escaped.push(c),
            c => escaped.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_roff() {
        assert_eq!(text_line(".hidden"), "\\&.hidden\n");
        assert_eq!(text_line("a\\b --x"), "a\\eb \\-\\-x\n");
        assert_eq!(escape("a…"), "a\\[u2026]");
    }
}
