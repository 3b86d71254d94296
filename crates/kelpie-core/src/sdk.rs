//! What a Node app's PM2 SDK (`@pm2/io`, `pmx`, `tx2`) tells its manager over the IPC channel,
//! kept as PM2 keeps it in `pm2_env`: the metrics (`axm_monitor`, merged key by key), the
//! actions (`axm_actions`, the first registration of a name wins), the options (`axm_options`,
//! each top-level key replaced) and the Node version. Bounded: an app cannot make the daemon
//! hold more than a few hundred kilobytes for it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most metrics kept per process (PM2's built-in ones are about ten).
pub const SDK_METRICS_MAX: usize = 128;
/// Most actions kept per process.
pub const SDK_ACTIONS_MAX: usize = 64;
/// Largest message taken (its JSON text): metric maps, action registrations, options.
pub const SDK_MESSAGE_MAX: usize = 64 * 1024;

/// Longest exception message kept with an exit.
const EXCEPTION_MESSAGE_MAX: usize = 1024;
/// Longest stack kept with an exit.
const EXCEPTION_STACK_MAX: usize = 8 * 1024;

/// The uncaught exception (or unhandled rejection) a Node app died of, as its `process:exception`
/// message gave it (Kelpie's shim sends one for every Node app; `@pm2/io` its own): kept with
/// the exit it caused, for `events` and `describe`. Bounded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppException {
    /// When it was reported (ms since the Unix epoch).
    pub at_ms: u64,
    /// `Error`, `TypeError`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its message (for a value thrown that is not an error: the value as JSON).
    pub message: String,
    /// Its stack, as Node printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl AppException {
    /// The exception a `process:exception` message's `data` describes (`{message, stack,
    /// name}`, or a bare value thrown); `None` for another message.
    pub fn from_message(message: &Value, at_ms: u64) -> Option<AppException> {
        if message.get("type").and_then(Value::as_str) != Some("process:exception") {
            return None;
        }
        let data = message.get("data")?;
        let text = |key: &str, max: usize| {
            data.get(key)
                .and_then(Value::as_str)
                .map(|s| bounded(s, max))
        };
        let message = match text("message", EXCEPTION_MESSAGE_MAX) {
            Some(message) => message,
            None => bounded(&data.to_string(), EXCEPTION_MESSAGE_MAX),
        };
        Some(AppException {
            at_ms,
            name: text("name", 128),
            message,
            stack: text("stack", EXCEPTION_STACK_MAX),
        })
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// One message of the SDK protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum SdkMessage {
    /// `{type: 'axm:monitor', data: {name: {value, unit?, type?, historic?...}}}`.
    Monitor(Map<String, Value>),
    /// `{type: 'axm:action', data: {action_name, action_type?, arity?, opts?}}`.
    Action(Value),
    /// `{type: 'axm:option:configuration', data: {...}}`.
    Options(Map<String, Value>),
    /// `{node_version: '20.20.2'}` (an untyped object with that key).
    NodeVersion(Value),
}

/// The SDK state of one process, in PM2's shapes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SdkState {
    /// `axm_monitor`: each metric's last entry, by name.
    pub monitor: Map<String, Value>,
    /// `axm_actions`: the registrations, in arrival order.
    pub actions: Vec<Value>,
    /// `axm_options`.
    pub options: Map<String, Value>,
    /// `node_version`, as the app sent it.
    pub node_version: Option<Value>,
    /// The process ended: metrics and actions it sent before are not taken any more (they
    /// can be read after its end).
    #[serde(skip)]
    pub ended: bool,
    /// The newest metrics message, not parsed yet (see [`SdkState::metrics_line`]).
    #[serde(skip)]
    pending: Option<PendingMetrics>,
}

/// A metrics message kept as it came, with the names of its metrics.
#[derive(Debug, Clone, PartialEq, Default)]
struct PendingMetrics {
    line: Box<[u8]>,
    names: Vec<String>,
}

/// An `axm:monitor` message read for the names of its metrics only.
#[derive(Deserialize)]
struct MetricNames<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    data: std::collections::BTreeMap<&'a str, serde::de::IgnoredAny>,
}

impl SdkState {
    /// Take an `axm:monitor` message (a whole IPC line) without parsing its values: an app
    /// sends one every second, with the same metrics each time, and nobody may look before
    /// the next. Kept as it came; a newer one with at least the same metrics replaces it
    /// unread (merging it first would change nothing it holds), and [`Self::settle`] parses
    /// the last one when the state is read. False when `line` is not such a message (or names
    /// a metric with an escape in its name): the caller parses it as any other.
    pub fn metrics_line(&mut self, line: &[u8]) -> bool {
        let Ok(message) = serde_json::from_slice::<MetricNames<'_>>(line) else {
            return false;
        };
        if message.kind != "axm:monitor" || line.len() > SDK_MESSAGE_MAX {
            return false;
        }
        if self.ended {
            return true;
        }
        let covers = |pending: &PendingMetrics| {
            pending
                .names
                .iter()
                .all(|name| message.data.contains_key(name.as_str()))
        };
        match self.pending.take() {
            Some(pending) if covers(&pending) && pending.names.len() == message.data.len() => {
                // The same metrics as the last message (the usual case): its names are kept.
                self.pending = Some(PendingMetrics {
                    line: line.into(),
                    names: pending.names,
                });
                return true;
            }
            Some(pending) if covers(&pending) => {}
            Some(pending) => self.apply_line(&pending.line),
            None => {}
        }
        self.pending = Some(PendingMetrics {
            line: line.into(),
            names: message.data.keys().map(|name| name.to_string()).collect(),
        });
        true
    }

    /// Parse the metrics message kept unread, if any, into `monitor`.
    pub fn settle(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.apply_line(&pending.line);
        }
    }

    fn apply_line(&mut self, line: &[u8]) {
        let parsed = serde_json::from_slice::<Value>(line);
        if let Ok(Value::Object(mut message)) = parsed {
            if let Some(Value::Object(metrics)) = message.remove("data") {
                self.apply(SdkMessage::Monitor(metrics));
            }
        }
    }

    /// Take `message` into account; whether anything changed.
    pub fn apply(&mut self, message: SdkMessage) -> bool {
        if self.ended && matches!(message, SdkMessage::Monitor(_) | SdkMessage::Action(_)) {
            return false;
        }
        match message {
            SdkMessage::Monitor(metrics) => {
                // What came before it first.
                self.settle();
                // Every second from every app using the SDK: replaced, not compared first (so
                // it always counts as a change).
                let room = SDK_METRICS_MAX.saturating_sub(self.monitor.len());
                let mut added = 0;
                for (name, entry) in metrics {
                    if let Some(known) = self.monitor.get_mut(&name) {
                        *known = entry;
                    } else if added < room {
                        self.monitor.insert(name, entry);
                        added += 1;
                    }
                }
                true
            }
            SdkMessage::Action(registration) => {
                let name = registration.get("action_name").and_then(Value::as_str);
                let Some(name) = name else {
                    return false;
                };
                let known = self
                    .actions
                    .iter()
                    .any(|a| a.get("action_name").and_then(Value::as_str) == Some(name));
                if known || self.actions.len() >= SDK_ACTIONS_MAX {
                    return false;
                }
                self.actions.push(registration);
                true
            }
            SdkMessage::Options(options) => {
                let mut changed = false;
                for (key, value) in options {
                    if self.options.get(&key) != Some(&value) {
                        self.options.insert(key, value);
                        changed = true;
                    }
                }
                changed
            }
            SdkMessage::NodeVersion(version) => {
                let changed = self.node_version.as_ref() != Some(&version);
                self.node_version = Some(version);
                changed
            }
        }
    }

    /// The process ended: PM2 forgets its metrics and actions, and keeps its options.
    pub fn process_ended(&mut self) -> bool {
        let changed =
            !self.monitor.is_empty() || !self.actions.is_empty() || self.pending.is_some();
        self.ended = true;
        self.pending = None;
        self.monitor.clear();
        self.actions.clear();
        changed
    }

    /// Whether the process registered action `name`.
    pub fn has_action(&self, name: &str) -> bool {
        self.actions
            .iter()
            .any(|a| a.get("action_name").and_then(Value::as_str) == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn metrics_merge_actions_keep_the_first_options_replace_keys() {
        let mut sdk = SdkState::default();
        assert!(sdk.apply(SdkMessage::Monitor(map(
            json!({"Heap Size": {"value": "10.48", "unit": "MiB"}, "reqs": {"value": 1}})
        ))));
        assert!(sdk.apply(SdkMessage::Monitor(map(json!({"reqs": {"value": 2}})))));
        assert_eq!(sdk.monitor["Heap Size"]["unit"], "MiB");
        assert_eq!(sdk.monitor["reqs"]["value"], 2);
        assert!(sdk.apply(SdkMessage::Action(
            json!({"action_name": "ping", "arity": 1})
        )));
        assert!(!sdk.apply(SdkMessage::Action(
            json!({"action_name": "ping", "arity": 2})
        )));
        assert!(!sdk.apply(SdkMessage::Action(json!({"arity": 2}))));
        assert_eq!(
            sdk.actions,
            vec![json!({"action_name": "ping", "arity": 1})]
        );
        assert!(sdk.has_action("ping") && !sdk.has_action("pong"));
        assert!(sdk.apply(SdkMessage::Options(map(
            json!({"metrics": {"v8": true}, "isModule": true})
        ))));
        assert!(sdk.apply(SdkMessage::Options(map(json!({"metrics": {"http": true}})))));
        assert_eq!(sdk.options["metrics"], json!({"http": true}));
        assert_eq!(sdk.options["isModule"], true);
        assert!(sdk.apply(SdkMessage::NodeVersion(json!("20.20.2"))));
        assert!(sdk.process_ended());
        assert!(sdk.monitor.is_empty() && sdk.actions.is_empty());
        // Metrics read after the end (sent just before it) are not taken.
        assert!(!sdk.apply(SdkMessage::Monitor(map(json!({"reqs": {"value": 3}})))));
        assert!(sdk.monitor.is_empty());
        assert_eq!(sdk.options["isModule"], true, "options outlive the process");
    }

    #[test]
    fn an_exception_message_becomes_a_bounded_record() {
        let message = json!({"type": "process:exception", "data": {
            "message": "boom", "name": "TypeError", "stack": format!("TypeError: boom\n{}", "é".repeat(9000)), "code": "E"
        }});
        let exception = AppException::from_message(&message, 7).expect("an exception");
        assert_eq!(exception.message, "boom");
        assert_eq!(exception.name.as_deref(), Some("TypeError"));
        let stack = exception.stack.expect("stack");
        assert!(stack.starts_with("TypeError: boom") && stack.len() <= EXCEPTION_STACK_MAX);
        let thrown = json!({"type": "process:exception", "data": "a string"});
        assert_eq!(
            AppException::from_message(&thrown, 1).map(|e| e.message),
            Some("\"a string\"".to_string())
        );
        assert_eq!(
            AppException::from_message(&json!({"type": "process:msg", "data": 1}), 1),
            None
        );
    }

    #[test]
    fn a_metrics_line_is_kept_unread_until_the_state_is_read() {
        let line = |body: &str| format!(r#"{{"type":"axm:monitor","data":{{{body}}}}}"#);
        let mut sdk = SdkState::default();
        assert!(sdk.metrics_line(line(r#""a":{"value":1},"b":{"value":1}"#).as_bytes()));
        assert!(sdk.monitor.is_empty(), "not parsed yet");
        // The same metrics: replaced unread. A subset: the earlier one is merged first.
        assert!(sdk.metrics_line(line(r#""a":{"value":2},"b":{"value":2}"#).as_bytes()));
        assert!(sdk.metrics_line(line(r#""a":{"value":3}"#).as_bytes()));
        sdk.settle();
        assert_eq!(sdk.monitor["a"]["value"], 3);
        assert_eq!(sdk.monitor["b"]["value"], 2);
        // A superset replaces unread; settling twice changes nothing.
        assert!(
            sdk.metrics_line(line(r#""a":{"value":4},"b":{"value":4},"c":{"value":4}"#).as_bytes())
        );
        sdk.settle();
        sdk.settle();
        assert_eq!(sdk.monitor.len(), 3);
        assert_eq!(sdk.monitor["c"]["value"], 4);
        // Not such a message, or an escaped name: the caller's.
        assert!(!sdk.metrics_line(br#"{"type":"process:msg","data":{"a":1}}"#));
        assert!(!sdk.metrics_line(br#"{"type":"axm:monitor","data":{"a\"b":{"value":1}}}"#));
        // After the process ended, nothing is kept.
        sdk.process_ended();
        assert!(sdk.metrics_line(line(r#""a":{"value":5}"#).as_bytes()));
        sdk.settle();
        assert!(sdk.monitor.is_empty());
    }

    #[test]
    fn an_app_cannot_grow_it_without_bound() {
        let mut sdk = SdkState::default();
        for i in 0..SDK_METRICS_MAX + 10 {
            sdk.apply(SdkMessage::Monitor(map(
                json!({format!("m{i}"): {"value": i}}),
            )));
            sdk.apply(SdkMessage::Action(json!({"action_name": format!("a{i}")})));
        }
        assert_eq!(sdk.monitor.len(), SDK_METRICS_MAX);
        assert_eq!(sdk.actions.len(), SDK_ACTIONS_MAX);
    }
}
