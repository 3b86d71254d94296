//! list (and `list --watch`), jlist, describe, pid.

use super::call;
use crate::cli::ListArgs;
use crate::client::Client;
use crate::render;
use anyhow::{bail, Result};
use kelpie_core::DateFormat;
use kelpie_proto::{
    resolve_targets, Home, HostMetrics, ProcessInfo, Request, Response, Target, Targetable,
};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(super) fn processes(home: &Home) -> Result<Vec<ProcessInfo>> {
    match call(home, &Request::List)? {
        Response::Processes(list) => Ok(list),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

pub(super) fn list(home: &Home, args: &ListArgs) -> Result<ExitCode> {
    let order = args.sort.as_deref().and_then(|text| {
        let (order, warnings) = ListOrder::parse(text);
        for warning in warnings {
            eprintln!("[kelpie] --sort: {warning}");
        }
        order
    });
    if args.watch {
        return watch(home, args.interval, order);
    }
    let mut client = Client::connect_or_start(home)?;
    // Both asked at once: the second answer is ready when the first is read.
    client.send(&Request::List)?;
    client.send(&Request::Host)?;
    let mut list = match client.receive()? {
        Response::Processes(list) => list,
        Response::Error(e) => return Err(crate::exit::from_wire(&e)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    };
    if let Some(order) = order {
        order.sort(&mut list);
    }
    render::print_table(&list)?;
    if let Some(host) = host(client.receive()) {
        outln!("{}", render::host_line(&host));
    }
    Ok(ExitCode::SUCCESS)
}

/// The host's use, under the table as PM2 shows it with pm2-server-monit. Nothing when the
/// daemon has not sampled it yet (its first second) or is older than the request.
fn host(answer: Result<Response>) -> Option<HostMetrics> {
    match answer {
        Ok(Response::Host(host)) => host,
        _ => None,
    }
}

/// `list --watch`: the table redrawn in place every `interval` until `q`, Esc or Ctrl-C. Each
/// refresh moves the cursor home and overwrites the previous table line by line (clearing what
/// is left of each line and below), so nothing scrolls or flickers, and the last table stays on
/// the screen at the end. Lines wider than the terminal are cut, not wrapped. Without a
/// terminal (stdin and stdout), a table is printed after another until the process is ended.
fn watch(home: &Home, interval: Duration, order: Option<ListOrder>) -> Result<ExitCode> {
    let mut client = Some(Client::connect_or_start(home)?);
    let on_terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let raw = if on_terminal {
        Some(render::RawTerminal::enter(false)?)
    } else {
        None
    };
    let clock = DateFormat::parse("HH:mm:ss");
    let mut out = std::io::stdout();
    if on_terminal {
        // Clear once, and cut lines at the edge instead of wrapping them (a wrapped table would
        // scroll); the terminal's state is restored when the watch ends.
        out.write_all(b"\x1b[2J\x1b[?7l")?;
    }
    loop {
        let mut frame = Vec::new();
        let now = now_ms();
        writeln!(
            frame,
            "kelpie list, every {}: q to quit{:>12}",
            interval_text(interval),
            clock.format(now, kelpie_sys::utc_offset_secs(now.div_euclid(1000)))
        )?;
        match refresh(home, &mut client) {
            Ok(mut list) => {
                if let Some(order) = order {
                    order.sort(&mut list);
                }
                render::write_table(&mut frame, &list, on_terminal)?;
                if let Some(host) = client
                    .as_mut()
                    .and_then(|c| host(c.request(&Request::Host)))
                {
                    writeln!(frame, "{}", render::host_line(&host))?;
                }
            }
            Err(e) => writeln!(frame, "kelpie: {e:#}")?,
        }
        if on_terminal {
            let mut screen = b"\x1b[H".to_vec();
            for line in frame.split_inclusive(|b| *b == b'\n') {
                screen.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                screen.extend_from_slice(b"\x1b[K\r\n");
            }
            screen.extend_from_slice(b"\x1b[J");
            out.write_all(&screen)?;
        } else {
            frame.push(b'\n');
            out.write_all(&frame)?;
        }
        out.flush()?;
        let deadline = Instant::now() + interval;
        match &raw {
            Some(raw) => {
                if quit_pressed(raw, deadline)? {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            None => std::thread::sleep(interval),
        }
    }
}

/// What `list --sort` orders the rows by: PM2's fields (`pm2 ls --sort`, its UX's list),
/// and `restarts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortField {
    Name,
    Namespace,
    Id,
    Pid,
    Cpu,
    Memory,
    /// The time the current (or last) process started (PM2's `pm_uptime`): ascending puts
    /// the longest-running first, as in PM2.
    Uptime,
    Status,
    Restarts,
}

/// `--sort`'s field names, as typed (in any case).
const SORT_FIELDS: [(&str, SortField); 9] = [
    ("name", SortField::Name),
    ("namespace", SortField::Namespace),
    ("id", SortField::Id),
    ("pid", SortField::Pid),
    ("cpu", SortField::Cpu),
    ("memory", SortField::Memory),
    ("uptime", SortField::Uptime),
    ("status", SortField::Status),
    ("restarts", SortField::Restarts),
];

/// `list --sort <field>[:asc|desc]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListOrder {
    field: SortField,
    descending: bool,
}

impl ListOrder {
    /// `--sort`'s value, and what could not be read in it. PM2 ignores an unknown field (it
    /// lists in its default order) and reads any order but `desc` as ascending, silently;
    /// Kelpie does the same but says so: an unknown field gives no order (the list stays in
    /// id order), an unknown order word ascending.
    fn parse(text: &str) -> (Option<ListOrder>, Vec<String>) {
        let (field, direction) = text.split_once(':').unwrap_or((text, ""));
        let Some(field) = SORT_FIELDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field.trim()))
            .map(|(_, field)| *field)
        else {
            let names: Vec<&str> = SORT_FIELDS.iter().map(|(name, _)| *name).collect();
            return (
                None,
                vec![format!(
                    "`{field}` is not a field to sort by ({}): listed by id",
                    names.join(", ")
                )],
            );
        };
        let direction = direction.trim();
        let mut warnings = Vec::new();
        let descending = if direction.eq_ignore_ascii_case("desc") {
            true
        } else {
            if !direction.is_empty() && !direction.eq_ignore_ascii_case("asc") {
                warnings.push(format!(
                    "`{direction}` is not an order (asc, desc): sorted ascending"
                ));
            }
            false
        };
        (Some(ListOrder { field, descending }), warnings)
    }

    /// `list` sorted; rows that compare equal stay in id order, either way (as in PM2).
    fn sort(self, list: &mut [ProcessInfo]) {
        list.sort_by(|a, b| {
            let order = self.compare(a, b);
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
    }

    fn compare(self, a: &ProcessInfo, b: &ProcessInfo) -> std::cmp::Ordering {
        match self.field {
            SortField::Name => a.spec.name.cmp(&b.spec.name),
            SortField::Namespace => a.spec.namespace.cmp(&b.spec.namespace),
            SortField::Id => a.pm_id.cmp(&b.pm_id),
            // A process that does not run has pid 0 (as PM2 shows it).
            SortField::Pid => a.state.pid.unwrap_or(0).cmp(&b.state.pid.unwrap_or(0)),
            SortField::Cpu => a.cpu.total_cmp(&b.cpu),
            SortField::Memory => a.memory.cmp(&b.memory),
            SortField::Uptime => a.state.started_at_ms.cmp(&b.state.started_at_ms),
            SortField::Status => a.state.status.as_str().cmp(b.state.status.as_str()),
            SortField::Restarts => a.state.restart_time.cmp(&b.state.restart_time),
        }
    }
}

/// The list, connecting again after the connection broke (a daemon that was restarted).
fn refresh(home: &Home, client: &mut Option<Client>) -> Result<Vec<ProcessInfo>> {
    if client.is_none() {
        *client = Client::connect(home)?;
    }
    let Some(connection) = client.as_mut() else {
        bail!("the daemon is not running");
    };
    match connection.request(&Request::List) {
        Ok(Response::Processes(list)) => Ok(list),
        Ok(other) => bail!("unexpected answer from the daemon: {other:?}"),
        Err(e) => {
            *client = None;
            Err(e)
        }
    }
}

/// Wait until `deadline` for `q`, Esc or Ctrl-C (or a signal); whether one came.
fn quit_pressed(raw: &render::RawTerminal, deadline: Instant) -> Result<bool> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    loop {
        if raw.signalled() {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        if event::poll(left.min(Duration::from_millis(100)))? {
            if let Event::Key(key) = event::read()? {
                let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                let quit = match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => true,
                    KeyCode::Char('c') | KeyCode::Char('d') => ctrl,
                    _ => false,
                };
                if quit && key.kind != KeyEventKind::Release {
                    return Ok(true);
                }
            }
        }
    }
}

/// `1s`, `500ms`, `1.5s`.
fn interval_text(interval: Duration) -> String {
    let ms = interval.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{:.1}s", interval.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn jlist(home: &Home, show_secrets: bool) -> Result<ExitCode> {
    let list = processes(home)?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    render::write_jlist(&mut out, &list, show_secrets)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The instances of `list` that `target` selects, by the daemon's rule; an unknown target is
/// an error.
pub(super) fn select<'a>(list: &'a [ProcessInfo], target: &Target) -> Result<Vec<&'a ProcessInfo>> {
    let instances: Vec<Targetable<'_>> = list.iter().map(ProcessInfo::targetable).collect();
    let ids = resolve_targets(std::slice::from_ref(target), &instances)
        .map_err(|_| anyhow::anyhow!("no app matches {}", target.describe()))?;
    Ok(list.iter().filter(|p| ids.contains(&p.pm_id)).collect())
}

pub(super) fn describe(
    home: &Home,
    target: &str,
    json: bool,
    show_secrets: bool,
) -> Result<ExitCode> {
    let target = super::parse_target(target)?;
    let list = processes(home)?;
    let found = select(&list, &target)?;
    if found.is_empty() {
        bail!("there are no apps to describe");
    }
    // What the apps said of themselves, their names and paths: shown, never obeyed by the
    // terminal (the JSON form escapes them itself).
    let shown: Vec<ProcessInfo> = match json {
        true => Vec::new(),
        false => {
            kelpie_view::terminal::visible_strings(found.iter().map(|p| (*p).clone()).collect())
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        render::write_describe_json(&mut out, &found, show_secrets)?;
        return Ok(ExitCode::SUCCESS);
    }
    for process in &shown {
        render::write_describe(&mut out, process, show_secrets)?;
    }
    drop(out);
    let mut names: Vec<&str> = found.iter().map(|p| p.spec.name.as_str()).collect();
    names.dedup();
    super::notify::describe_exceptions(home, &names)?;
    Ok(ExitCode::SUCCESS)
}

/// `prettylist`: the `jlist` data as PM2 prints it.
pub(super) fn prettylist(home: &Home, show_secrets: bool) -> Result<ExitCode> {
    let list = kelpie_view::terminal::visible_strings(processes(home)?);
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    render::write_prettylist(&mut out, &list, show_secrets)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `env <target>`: `NAME: value` lines (PM2's shape) of the environment the first selected
/// instance was given: the environment it inherited from the shell that started it, its
/// config's `env` over it, and Kelpie's variables (`pm_id`, `name`, `NODE_APP_INSTANCE`...),
/// secrets masked unless `show_secrets`.
pub(super) fn env(home: &Home, target: &str, show_secrets: bool) -> Result<ExitCode> {
    let target = super::parse_target(target)?;
    let answer = call(
        home,
        &Request::Env(kelpie_proto::Targets {
            targets: vec![target],
        }),
    )?;
    let Response::Json(answer) = answer else {
        bail!("unexpected answer from the daemon: {answer:?}");
    };
    let env: std::collections::BTreeMap<String, String> =
        serde_json::from_value(answer["env"].clone()).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    for (name, value) in render::shown_env(&env, show_secrets).iter() {
        let (name, value) = (
            kelpie_view::terminal::visible(name),
            kelpie_view::terminal::visible(value),
        );
        writeln!(out, "{name}: {value}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `id <name>`: the ids of the app's instances, printed as PM2 prints them (`[ 0, 1 ]`).
pub(super) fn ids(home: &Home, name: &str) -> Result<ExitCode> {
    let list = processes(home)?;
    let ids: Vec<String> = list
        .iter()
        .filter(|p| p.spec.name == name)
        .map(|p| p.pm_id.to_string())
        .collect();
    if ids.is_empty() {
        outln!("[]");
    } else {
        outln!("[ {} ]", ids.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `events [target]`: the exits of the selected instances, newest last.
pub(super) fn events(home: &Home, args: &crate::cli::EventsArgs) -> Result<ExitCode> {
    let target = args
        .target
        .as_deref()
        .map(super::parse_target)
        .transpose()?
        .unwrap_or(Target::All);
    let list = processes(home)?;
    let list = match args.json {
        true => list,
        false => kelpie_view::terminal::visible_strings(list),
    };
    let found = select(&list, &target)?;
    let events = render::collect_events(&found, args.lines);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        render::write_events_json(&mut out, &events)?;
    } else {
        render::write_events(&mut out, &events, args.stderr)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `pid [target]`: one pid per line (0 for an instance that is not running, like PM2).
pub(super) fn pid(home: &Home, target: Option<&str>) -> Result<ExitCode> {
    let target = target
        .map(super::parse_target)
        .transpose()?
        .unwrap_or(Target::All);
    let list = processes(home)?;
    let found = select(&list, &target)?;
    let mut out = std::io::stdout().lock();
    for p in found {
        writeln!(out, "{}", p.state.pid.unwrap_or(0))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_reads_a_field_in_any_case_and_an_order() {
        let read = |text| ListOrder::parse(text);
        assert_eq!(
            read("name:desc"),
            (
                Some(ListOrder {
                    field: SortField::Name,
                    descending: true
                }),
                vec![]
            )
        );
        assert_eq!(
            read("MEMORY"),
            (
                Some(ListOrder {
                    field: SortField::Memory,
                    descending: false
                }),
                vec![]
            )
        );
        assert_eq!(read("Restarts:DESC").0.map(|o| o.descending), Some(true));
        assert_eq!(read("uptime:asc").1, Vec::<String>::new());
        assert_eq!(read("id:").1, Vec::<String>::new());
    }

    #[test]
    fn sort_names_what_it_cannot_read() {
        let (order, warnings) = ListOrder::parse("bogus:desc");
        assert_eq!(order, None);
        assert_eq!(
            warnings,
            [
                "`bogus` is not a field to sort by (name, namespace, id, pid, cpu, memory, \
              uptime, status, restarts): listed by id"
            ]
        );
        let (order, warnings) = ListOrder::parse("pid:down");
        assert_eq!(
            order.map(|o| (o.field, o.descending)),
            Some((SortField::Pid, false))
        );
        assert_eq!(
            warnings,
            ["`down` is not an order (asc, desc): sorted ascending"]
        );
    }
}
