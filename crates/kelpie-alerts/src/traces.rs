//! Uncaught exceptions, from what each language prints when one ends a process (a Python
//! traceback, a Go panic, a Ruby or Java stack trace, Node's), or from what a Node app reported
//! (`process:exception`), and their fingerprints: the type and the top frames of the app's own
//! code, without line numbers, columns or addresses, so that the same bug thrown again, from
//! another line of the same function or with another message, is the same group.

use kelpie_core::AppException;
use std::hash::{Hash, Hasher};

/// Frames of the app's own code in a fingerprint.
const FINGERPRINT_FRAMES: usize = 3;

/// Bytes of a stack kept.
pub(super) const STACK_MAX: usize = 8 * 1024;

/// An exception, as grouped.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Trace {
    /// `python`, `go`, `ruby`, `java`, `node`.
    pub language: &'static str,
    /// Its type (`ValueError`, `TypeError`, `panic`, `java.lang.IllegalStateException`).
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Frames of the app's own code, innermost first, normalised (`function file`).
    pub frames: Vec<String>,
    /// The trace as printed.
    pub stack: String,
}

impl Trace {
    /// The group it belongs to: a hash of its type and top own frames (its message, with
    /// numbers taken out, when it has no frame of its own).
    pub(super) fn fingerprint(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.language.hash(&mut hasher);
        self.kind.hash(&mut hasher);
        if self.frames.is_empty() {
            strip_numbers(&self.message).hash(&mut hasher);
        } else {
            self.frames
                .iter()
                .take(FINGERPRINT_FRAMES)
                .for_each(|f| f.hash(&mut hasher));
        }
        format!("{:016x}", hasher.finish())
    }
}

/// What a Node app reported.
pub(super) fn from_node(exception: &AppException) -> Trace {
    let stack = exception.stack.clone().unwrap_or_default();
    let mut trace = parse_js(&stack.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|(trace, _)| trace)
        .unwrap_or(Trace {
            language: "node",
            kind: exception.name.clone().unwrap_or_else(|| "Error".into()),
            message: exception.message.clone(),
            frames: Vec::new(),
            stack: stack.clone(),
        });
    if let Some(name) = &exception.name {
        trace.kind = name.clone();
    }
    trace.message = exception.message.clone();
    trace
}

/// The last uncaught exception in a process's last lines of stderr, and where its trace
/// begins (the lines before it are what led to it).
pub(super) fn from_stderr(lines: &[String]) -> Option<(Trace, usize)> {
    [parse_python, parse_go, parse_java, parse_ruby, parse_js]
        .iter()
        .filter_map(|parse| parse(lines))
        .max_by_key(|(_, at)| *at)
}

fn bounded(lines: &[String]) -> String {
    let mut stack = lines.join("\n");
    if stack.len() > STACK_MAX {
        let mut cut = STACK_MAX;
        while !stack.is_char_boundary(cut) {
            cut -= 1;
        }
        stack.truncate(cut);
    }
    stack
}

/// `Traceback (most recent call last):`, `  File "x.py", line 3, in f`, …, `ValueError: msg`.
fn parse_python(lines: &[String]) -> Option<(Trace, usize)> {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last):"))?;
    let mut frames = Vec::new();
    let mut end = start + 1;
    while end < lines.len() && lines[end].starts_with(' ') {
        let line = lines[end].trim();
        if let Some(rest) = line.strip_prefix("File \"") {
            let (file, rest) = rest.split_once('"')?;
            let function = rest.rsplit_once(", in ").map_or("", |(_, f)| f);
            let library = file.contains("site-packages")
                || file.contains("/lib/python")
                || file.starts_with('<');
            if !library {
                frames.push(format!("{function} {file}"));
            }
        }
        end += 1;
    }
    let last = lines.get(end)?;
    let (kind, message) = match last.split_once(": ") {
        Some((kind, message)) => (kind.to_string(), message.to_string()),
        None => (last.trim().to_string(), String::new()),
    };
    // Innermost last in Python: first here.
    frames.reverse();
    let trace = Trace {
        language: "python",
        kind,
        message,
        frames,
        stack: bounded(&lines[start..=end]),
    };
    Some((trace, start))
}

/// `panic: msg`, then `goroutine 1 [running]:`, function lines and tab-indented `file:line +0x..`.
fn parse_go(lines: &[String]) -> Option<(Trace, usize)> {
    let start = lines.iter().rposition(|l| l.starts_with("panic: "))?;
    let said = &lines[start]["panic: ".len()..];
    let (kind, message) = match said.split_once(": ") {
        Some(("runtime error", rest)) => ("runtime error".to_string(), rest.to_string()),
        _ => ("panic".to_string(), said.to_string()),
    };
    let mut frames = Vec::new();
    let mut end = start;
    for (at, line) in lines.iter().enumerate().skip(start + 1) {
        if line.is_empty() || line.starts_with("goroutine ") || line.starts_with('[') {
            end = at;
            continue;
        }
        if line.starts_with("exit status") {
            break;
        }
        end = at;
        if line.starts_with('\t') {
            continue;
        }
        // `main.handler(0xc000012345, 0x3)` → `main.handler`.
        let function = line.split('(').next().unwrap_or("").trim();
        let runtime = function.starts_with("runtime.") || function == "panic";
        if !runtime && !function.is_empty() {
            frames.push(function.to_string());
        }
    }
    let trace = Trace {
        language: "go",
        kind,
        message,
        frames,
        stack: bounded(&lines[start..=end]),
    };
    Some((trace, start))
}

/// `Exception in thread "main" java.lang.X: msg` (or `Caused by:`), then `\tat a.b.C.m(C.java:3)`.
fn parse_java(lines: &[String]) -> Option<(Trace, usize)> {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("Exception in thread "))?;
    let head = lines[start]
        .split_once("\" ")
        .map_or(lines[start].as_str(), |(_, rest)| rest);
    let (kind, message) = match head.split_once(": ") {
        Some((kind, message)) => (kind.to_string(), message.to_string()),
        None => (head.trim().to_string(), String::new()),
    };
    let mut frames = Vec::new();
    let mut end = start;
    for (at, line) in lines.iter().enumerate().skip(start + 1) {
        let Some(frame) = line.trim_start().strip_prefix("at ") else {
            if line.trim_start().starts_with("Caused by:") || line.trim_start().starts_with("...") {
                end = at;
                continue;
            }
            break;
        };
        end = at;
        let method = frame.split('(').next().unwrap_or("");
        let library = ["java.", "javax.", "jdk.", "sun.", "kotlin."]
            .iter()
            .any(|p| method.starts_with(p));
        if !library {
            frames.push(method.to_string());
        }
    }
    let trace = Trace {
        language: "java",
        kind,
        message,
        frames,
        stack: bounded(&lines[start..=end]),
    };
    Some((trace, start))
}

/// `app.rb:3:in 'method': msg (ErrorClass)`, then `\tfrom app.rb:7:in '<main>'`.
fn parse_ruby(lines: &[String]) -> Option<(Trace, usize)> {
    let start = lines.iter().rposition(|l| {
        !l.starts_with('\t')
            && l.contains(":in ")
            && l.trim_end().ends_with(')')
            && l.contains(".rb:")
    })?;
    let head = &lines[start];
    let open = head.rfind(" (")?;
    let kind = head[open + 2..head.len() - 1].to_string();
    let message = head.split_once("': ").map_or("", |(_, m)| m);
    let message = message
        .get(..message.len().saturating_sub(kind.len() + 3))
        .unwrap_or("");
    let mut frames = vec![ruby_frame(head)];
    let mut end = start;
    for (at, line) in lines.iter().enumerate().skip(start + 1) {
        let Some(from) = line.trim_start().strip_prefix("from ") else {
            break;
        };
        end = at;
        frames.push(ruby_frame(from));
    }
    frames.retain(|f| !f.contains("/gems/") && !f.contains("/lib/ruby/"));
    let trace = Trace {
        language: "ruby",
        kind,
        message: message.to_string(),
        frames,
        stack: bounded(&lines[start..=end]),
    };
    Some((trace, start))
}

/// `app.rb:3:in 'method'…` → `method app.rb`.
fn ruby_frame(line: &str) -> String {
    let file = line.split(':').next().unwrap_or("");
    let method = line
        .split_once(":in ")
        .map_or("", |(_, m)| m)
        .trim_matches(|c| c == '`' || c == '\'')
        .split(['\'', '`'])
        .next()
        .unwrap_or("");
    format!("{method} {file}")
}

/// `TypeError: msg`, then `    at fn (file:3:26)` lines (Node, Bun, Deno).
fn parse_js(lines: &[String]) -> Option<(Trace, usize)> {
    let first_frame = lines
        .iter()
        .position(|l| l.trim_start().starts_with("at "))?;
    let start = first_frame.checked_sub(1)?;
    let head = &lines[start];
    let (kind, message) = head
        .split_once(": ")
        .map_or((head.trim(), ""), |(k, m)| (k, m));
    if kind.is_empty() || kind.contains(' ') {
        return None;
    }
    let mut frames = Vec::new();
    let mut end = start;
    for (at, line) in lines.iter().enumerate().skip(first_frame) {
        let Some(frame) = line.trim_start().strip_prefix("at ") else {
            break;
        };
        end = at;
        let library = frame.contains("node:")
            || frame.contains("node_modules")
            || frame.contains("internal/");
        if library {
            continue;
        }
        // `fn (file:3:26)` → `fn file`; `file:3:26` → `file`.
        let (function, location) = match frame.rsplit_once(" (") {
            Some((function, location)) => (function, location.trim_end_matches(')')),
            None => ("", frame),
        };
        let file = strip_position(location);
        frames.push(format!("{function} {file}").trim().to_string());
    }
    let trace = Trace {
        language: "node",
        kind: kind.to_string(),
        message: message.to_string(),
        frames,
        stack: bounded(&lines[start..=end]),
    };
    Some((trace, start))
}

/// `file.js:3:26` → `file.js`.
fn strip_position(location: &str) -> &str {
    let mut rest = location;
    for _ in 0..2 {
        match rest.rsplit_once(':') {
            Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit()) && !tail.is_empty() => {
                rest = head;
            }
            _ => break,
        }
    }
    rest
}

/// A message with its numbers (ids, counts, addresses) taken out.
fn strip_numbers(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.chars() {
        if c.is_ascii_hexdigit() && (c.is_ascii_digit() || in_number) {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_python_traceback_is_its_type_message_and_own_frames() {
        let text = "starting\nTraceback (most recent call last):\n  File \"/srv/app/worker.py\", line 12, in <module>\n    main()\n  File \"/srv/app/worker.py\", line 9, in main\n    charge(None)\n  File \"/usr/lib/python3.11/json/__init__.py\", line 3, in loads\n    x\nValueError: card 1234 is None";
        let (trace, at) = from_stderr(&lines(text)).expect("a traceback");
        assert_eq!(at, 1);
        assert_eq!(
            (trace.language, trace.kind.as_str()),
            ("python", "ValueError")
        );
        assert_eq!(trace.message, "card 1234 is None");
        assert_eq!(
            trace.frames,
            ["main /srv/app/worker.py", "<module> /srv/app/worker.py"]
        );
        // Another line of the same function, another message: the same group.
        let moved = text.replace("line 9", "line 10").replace("1234", "99");
        let (again, _) = from_stderr(&lines(&moved)).expect("a traceback");
        assert_eq!(trace.fingerprint(), again.fingerprint());
    }

    #[test]
    fn a_go_panic_is_grouped_by_its_own_functions_without_addresses() {
        let text = "panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\nmain.lookup(...)\n\t/src/main.go:9\nmain.main()\n\t/src/main.go:14 +0x1d\nexit status 2";
        let (trace, _) = from_stderr(&lines(text)).expect("a panic");
        assert_eq!(
            (trace.language, trace.kind.as_str()),
            ("go", "runtime error")
        );
        assert_eq!(trace.frames, ["main.lookup", "main.main"]);
        let other = text.replace("+0x1d", "+0x2f").replace("[5]", "[7]");
        assert_eq!(
            trace.fingerprint(),
            from_stderr(&lines(&other)).expect("panic").0.fingerprint()
        );
    }

    #[test]
    fn ruby_and_java_traces_are_read() {
        let ruby = "app.rb:3:in 'charge': card is nil (ArgumentError)\n\tfrom app.rb:7:in '<main>'";
        let (trace, _) = from_stderr(&lines(ruby)).expect("ruby");
        assert_eq!(
            (trace.language, trace.kind.as_str()),
            ("ruby", "ArgumentError")
        );
        assert_eq!(trace.message, "card is nil");
        assert_eq!(trace.frames, ["charge app.rb", "<main> app.rb"]);
        let java = "Exception in thread \"main\" java.lang.IllegalStateException: no card\n\tat com.shop.Pay.charge(Pay.java:12)\n\tat java.base/java.util.Optional.get(Optional.java:1)\n\tat com.shop.Main.main(Main.java:5)";
        let (trace, _) = from_stderr(&lines(java)).expect("java");
        assert_eq!(trace.kind, "java.lang.IllegalStateException");
        assert_eq!(trace.frames, ["com.shop.Pay.charge", "com.shop.Main.main"]);
    }

    #[test]
    fn a_node_trace_keeps_the_apps_frames() {
        let text = "TypeError: card is undefined\n    at charge (/srv/pay.js:3:26)\n    at listOnTimeout (node:internal/timers:581:17)\n    at /srv/node_modules/x/y.js:1:1";
        let (trace, _) = from_stderr(&lines(text)).expect("node");
        assert_eq!(trace.frames, ["charge /srv/pay.js"]);
        let reported = from_node(&AppException {
            name: Some("TypeError".into()),
            message: "card is undefined".into(),
            stack: Some(text.into()),
            at_ms: 0,
        });
        assert_eq!(reported.fingerprint(), trace.fingerprint());
        assert!(from_stderr(&lines("just a line\nand another")).is_none());
    }
}
