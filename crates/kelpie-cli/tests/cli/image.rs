//! The container image of the repository's `Dockerfile`, checked without Docker (no engine runs
//! on the machines this suite runs on). The test reads the Dockerfile's `app` stage (the last
//! one: WORKDIR, ENV, USER, COPY, EXPOSE, HEALTHCHECK, CMD) and builds what the image would
//! contain in an empty directory; then runs its CMD as a container runtime would: PID 1 of a new
//! pid namespace, with its own mount namespace (a fresh /proc), network namespace (loopback only),
//! that directory as its root, and the image's USER (a non-root uid), environment and WORKDIR.
//! `docker exec` and the HEALTHCHECK are `nsenter` into those namespaces and that root, as the
//! same user, with the same environment and working directory.
//!
//! The kelpie in the root is built as the image's is, static: the Dockerfile builds for musl
//! with Rust's Alpine image; this machine has no musl target, so it is glibc linked statically
//! (`-C target-feature=+crt-static`), built once into `target/static` (shared with
//! `bench/run.py --only runtime`).
//!
//! - The example image: the base image (`node:20-alpine`) is stood in for by what the example
//!   needs of it: a `node` binary (this machine's, with the shared libraries it links), the `node`
//!   user (uid 1000) and its home, /tmp, /dev/null. The rest comes from the Dockerfile.
//! - The static binary alone: only the Dockerfile's kelpie, a static `fake-app` (the testkit's,
//!   built the same way) as the app, /etc/passwd, /tmp, /dev/null: no libc, no shell, nothing
//!   else. Run as the image's USER, with the image's HEALTHCHECK.
//!
//! Skipped, with a message, where `unshare` may not make namespaces (it needs root); a failure
//! instead under `KELPIE_NO_SKIP` (CI).
//! Cleanup: SIGKILL to the runtime's host pid, which, as the namespace's init, takes every process
//! of the namespace with it; every `nsenter` is killed at its timeout.

use super::pid1::{collect, unshare_permitted, Pid1};
use super::tools::program;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

const SIGTERM: i32 = 15;
/// The issue's target for the static binary.
const MAX_BINARY_BYTES: u64 = 15 * 1024 * 1024;
/// Docker's default PATH (and the one of the node images).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Docker's default time between `docker stop`'s SIGTERM and its SIGKILL.
const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

/// One instruction: its keyword (upper case) and the rest of its logical line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    name: Option<String>,
    base: String,
    instructions: Vec<Instruction>,
}

/// The stages of a Dockerfile: comments and blank lines dropped, `\` continuations joined.
fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends with a `\\`");
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("FROM {args}: expected `image [AS name]`"),
            };
            stages.push(Stage {
                name,
                base: words[0].to_string(),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(Instruction { keyword, args });
        } else {
            assert!(keyword == "ARG", "{keyword} before the first FROM");
        }
    }
    stages
}

/// The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK CMD. The shell form is refused: it
/// needs a shell in the image, and a shell as PID 1 does not pass SIGTERM on.
fn exec_form(keyword: &str, args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| {
        panic!("{keyword} {args}: expected the exec form, a JSON array of strings ({e})")
    })
}

/// `HEALTHCHECK [--option=value...] CMD [...]`: the options and the command.
fn healthcheck(args: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut options = BTreeMap::new();
    let mut rest = args.trim();
    while let Some(option) = rest.strip_prefix("--") {
        let (word, tail) = option
            .split_once(char::is_whitespace)
            .unwrap_or((option, ""));
        let (key, value) = word
            .split_once('=')
            .unwrap_or_else(|| panic!("HEALTHCHECK option --{word}: expected --key=value"));
        options.insert(key.to_string(), value.to_string());
        rest = tail.trim_start();
    }
    let command = rest
        .strip_prefix("CMD")
        .unwrap_or_else(|| panic!("HEALTHCHECK {args}: expected CMD (not NONE)"));
    (options, exec_form("HEALTHCHECK CMD", command.trim()))
}

/// A Dockerfile duration (`30s`, `500ms`, `1m`, `1m30s`).
fn docker_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_digit() {
                break;
            }
            unit.push(next);
            chars.next();
        }
        let n: u64 = std::mem::take(&mut number)
            .parse()
            .unwrap_or_else(|_| panic!("duration {text}"));
        total += match unit.as_str() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => panic!("duration {text}: unit {unit}"),
        };
    }
    assert!(number.is_empty(), "duration {text}: no unit");
    total
}

/// `ENV KEY=value KEY2="value 2"` (or the old `ENV KEY value`), in order.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let first = args.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (key, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(key.to_string(), value.trim().to_string())];
    }
    let mut pairs = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("ENV {args}: expected KEY=value"));
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .unwrap_or_else(|| panic!("ENV {args}: unclosed quote"));
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        pairs.push((key.to_string(), value.to_string()));
        rest = tail.trim_start();
    }
    pairs
}

/// What the test needs of the Dockerfile, read from the real file.
struct Dockerfile {
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn read() -> Dockerfile {
        let path = workspace().join("Dockerfile");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Dockerfile {
            stages: parse_dockerfile(&text),
        }
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`"))
    }

    /// The image `docker build .` makes: the last stage.
    fn app(&self) -> &Stage {
        let last = self.stages.last().expect("the Dockerfile has stages");
        assert_eq!(
            last.name.as_deref(),
            Some("app"),
            "the last stage (the default target) is the example app"
        );
        last
    }
}

/// The image's settings and where its files come from, from the `app` stage.
struct ImageSpec {
    workdir: String,
    env: Vec<(String, String)>,
    uid: u32,
    gid: u32,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    health_timeout: Duration,
    expose: Vec<u16>,
    copies: Vec<Copy>,
    /// Where the image has the kelpie binary.
    kelpie_path: String,
    /// Where the image has kelpie's man page (empty: nowhere).
    man_path: String,
}

/// One file or directory of a COPY.
struct Copy {
    /// Where it is on this machine.
    source: PathBuf,
    /// Where it goes in the image.
    dest: String,
    /// `--chown`.
    owner: Option<(u32, u32)>,
}

fn owner(spec: &str) -> (u32, u32) {
    let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
    let number = |s: &str| -> u32 {
        s.parse()
            .unwrap_or_else(|_| panic!("`{spec}`: use numeric ids (a name needs /etc/passwd)"))
    };
    (number(u), number(g))
}

impl ImageSpec {
    /// Every instruction of the `app` stage, applied in order. An instruction this test does
    /// not emulate (RUN, ADD...) fails it: extend the test along with the Dockerfile.
    fn of(docker: &Dockerfile, kelpie: &Path) -> ImageSpec {
        let stage = docker.app();
        assert!(
            stage.base.starts_with("node:"),
            "image.rs stands in for a node base image only, not `{}`",
            stage.base
        );
        let build_outputs = build_outputs(docker);
        let mut spec = ImageSpec {
            workdir: "/".into(),
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            uid: 0,
            gid: 0,
            cmd: Vec::new(),
            healthcheck: Vec::new(),
            health_timeout: Duration::from_secs(30),
            expose: Vec::new(),
            copies: Vec::new(),
            kelpie_path: String::new(),
            man_path: String::new(),
        };
        let mut user_set = false;
        for ins in &stage.instructions {
            let args = ins.args.as_str();
            match ins.keyword.as_str() {
                "WORKDIR" => spec.workdir = resolve(&spec.workdir, args),
                "ENV" => {
                    for (k, v) in env_pairs(args) {
                        spec.env.retain(|(key, _)| *key != k);
                        spec.env.push((k, v));
                    }
                }
                "USER" => {
                    (spec.uid, spec.gid) = owner(args);
                    user_set = true;
                }
                "EXPOSE" => spec.expose.extend(args.split_whitespace().map(|p| {
                    p.trim_end_matches("/tcp")
                        .parse::<u16>()
                        .unwrap_or_else(|_| panic!("EXPOSE {p}"))
                })),
                "CMD" => spec.cmd = exec_form("CMD", args),
                "HEALTHCHECK" => {
                    let (options, command) = healthcheck(args);
                    if let Some(t) = options.get("timeout") {
                        spec.health_timeout = docker_duration(t);
                    }
                    spec.healthcheck = command;
                }
                "COPY" => {
                    let mut from = None;
                    let mut chown = None;
                    let mut words = Vec::new();
                    for word in args.split_whitespace() {
                        if let Some(stage) = word.strip_prefix("--from=") {
                            from = Some(stage);
                        } else if let Some(who) = word.strip_prefix("--chown=") {
                            chown = Some(owner(who));
                        } else {
                            assert!(!word.starts_with("--"), "COPY option {word}");
                            words.push(word);
                        }
                    }
                    let (dest, sources) = words.split_last().expect("COPY src... dest");
                    let dest = resolve(&spec.workdir, dest);
                    for source in sources {
                        let on_host = match from {
                            Some(stage) => {
                                let output = build_outputs
                                    .iter()
                                    .find(|o| o.stage == stage && o.path == *source)
                                    .unwrap_or_else(|| {
                                        panic!("COPY --from={stage} {source}: not a build output")
                                    });
                                let name = source.rsplit('/').next().unwrap_or(source);
                                let path = if dest.ends_with('/') {
                                    format!("{dest}{name}")
                                } else {
                                    dest.clone()
                                };
                                match output.kind {
                                    BuildOutput::Kelpie => {
                                        spec.kelpie_path = path;
                                        kelpie.to_path_buf()
                                    }
                                    BuildOutput::ManPage => {
                                        spec.man_path = path;
                                        man_page(kelpie).to_path_buf()
                                    }
                                }
                            }
                            None => workspace().join(source),
                        };
                        spec.copies.push(Copy {
                            source: on_host,
                            dest: dest.clone(),
                            owner: chown,
                        });
                    }
                }
                other => panic!("image.rs does not emulate `{other}` in the app stage"),
            }
        }
        assert!(
            user_set && spec.uid != 0,
            "the app stage runs as a non-root USER"
        );
        assert!(!spec.cmd.is_empty(), "the app stage has a CMD");
        assert!(
            !spec.healthcheck.is_empty(),
            "the app stage has a HEALTHCHECK"
        );
        assert!(!spec.kelpie_path.is_empty(), "the app stage copies kelpie");
        spec
    }

    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `dir` joined with `path` the way WORKDIR and COPY destinations are (a trailing `/` kept).
fn resolve(dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let path = path.strip_prefix("./").unwrap_or(path);
    let base = dir.trim_end_matches('/');
    if path.is_empty() || path == "." {
        format!("{base}/")
    } else {
        format!("{base}/{path}")
    }
}

/// What a build stage leaves for `COPY --from`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BuildOutput {
    /// The kelpie binary.
    Kelpie,
    /// Its man page, `kelpie man`'s output.
    ManPage,
}

/// A file `COPY --from` may take: which stage has it, where, and what it is.
struct BuildFile {
    stage: String,
    path: String,
    kind: BuildOutput,
}

/// The build stage and the files it leaves (the binary, and the man page when it writes one):
/// what `COPY --from` may take. Checks that the build is the one this test imitates (a release,
/// locked, musl build of kelpie-cli; the page written by that kelpie's `man`).
fn build_outputs(docker: &Dockerfile) -> Vec<BuildFile> {
    let build = docker.stage("build");
    let run = build
        .instructions
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build stage runs cargo build");
    for part in [
        "--release",
        "--locked",
        "-p kelpie-cli",
        "unknown-linux-musl",
        "strip",
    ] {
        assert!(run.args.contains(part), "the build's RUN lacks `{part}`");
    }
    let out = run
        .args
        .split_whitespace()
        .find(|w| w.starts_with("/out/") && w.ends_with("/kelpie"))
        .expect("the build's RUN leaves kelpie in /out/");
    let output = |stage: &str, path: &str, kind| BuildFile {
        stage: stage.to_string(),
        path: path.to_string(),
        kind,
    };
    let mut outputs = vec![output("build", out, BuildOutput::Kelpie)];
    if let Some(page) = run
        .args
        .split_whitespace()
        .find(|w| w.starts_with("/out/") && w.ends_with(".1"))
    {
        assert!(
            run.args.contains(&format!("{out} man > {page}")),
            "the build's RUN writes {page} with `{out} man > {page}`"
        );
        outputs.push(output("build", page, BuildOutput::ManPage));
    }
    // The scratch stage takes the same file and runs it.
    let scratch = docker.stage("kelpie");
    assert_eq!(scratch.base, "scratch");
    for ins in &scratch.instructions {
        match ins.keyword.as_str() {
            "COPY" => {
                let words: Vec<&str> = ins.args.split_whitespace().collect();
                assert_eq!(words, ["--from=build", out, "/kelpie"], "{ins:?}");
                outputs.push(output("kelpie", "/kelpie", BuildOutput::Kelpie));
            }
            "ENTRYPOINT" => assert_eq!(exec_form("ENTRYPOINT", &ins.args), ["/kelpie"]),
            other => panic!("unexpected `{other}` in the scratch stage"),
        }
    }
    outputs
}

/// The man page as the build writes it: `kelpie man`'s output, written once per run into
/// target/tmp.
fn man_page(kelpie: &Path) -> &'static Path {
    static PAGE: OnceLock<PathBuf> = OnceLock::new();
    PAGE.get_or_init(|| {
        let out = Command::new(kelpie)
            .arg("man")
            .stdin(Stdio::null())
            .output()
            .expect("run kelpie man");
        assert!(
            out.status.success(),
            "kelpie man: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-kelpie.1");
        std::fs::write(&path, &out.stdout).expect("write the man page");
        path
    })
}

// ---------------------------------------------------------------------------------------------
// The static binaries

#[derive(Clone)]
struct StaticBinaries {
    kelpie: PathBuf,
    fake_app: PathBuf,
}

/// The tests that run the static binaries (and so wait for their build).
const STATIC_TESTS: [&str; 2] = [
    "cli::image::the_example_image_runs_its_cmd_as_pid_1_and_stops_on_sigterm",
    "cli::image::the_static_binary_alone_runs_as_pid_1_non_root_in_an_empty_root",
];

/// The static build's outcome, once it is over (`Err`: cargo's output).
static BUILD: (Mutex<Option<Result<StaticBinaries, String>>>, Condvar) =
    (Mutex::new(None), Condvar::new());

/// Start the static build in the background when this run includes a test that needs it; called
/// by every test's first step ([`super::kelpie`]), so that the build (about 160 s from cold on two
/// cores) runs while the rest of the suite waits on its processes, instead of in front of the two
/// image tests. A no-op after the first call.
pub(super) fn start_static_build_early() {
    if STATIC_TESTS.iter().any(|name| super::selected(name)) {
        start_static_build();
    }
}

/// Start the static build on a thread of its own, once.
fn start_static_build() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        std::thread::Builder::new()
            .name("static-build".into())
            .spawn(|| {
                // Whatever happens, the waiting tests are told (a panic here would leave them
                // waiting for ever).
                let outcome = std::panic::catch_unwind(build_static_binaries)
                    .unwrap_or_else(|_| Err("the static build's thread panicked".into()));
                *BUILD.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                BUILD.1.notify_all();
            })
            .expect("spawn the static build's thread");
    });
}

/// kelpie and fake-app linked statically (glibc, crt-static), built once per run into
/// `target/static` (a no-op when up to date): started early (see [`start_static_build_early`]),
/// waited for here.
fn static_binaries() -> StaticBinaries {
    start_static_build();
    let mut outcome = BUILD.0.lock().unwrap_or_else(|p| p.into_inner());
    while outcome.is_none() {
        outcome = BUILD.1.wait(outcome).unwrap_or_else(|p| p.into_inner());
    }
    match outcome.as_ref().expect("the build is over") {
        Ok(bins) => bins.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// The build itself, on the static build's thread, holding no lock: the tests run meanwhile.
/// At their priority: niced, it lost the CPU to every other build on a shared machine and was
/// the last thing running (a cold run here: 294 s niced, 215 s not, 235 s not with two busy
/// loops beside it). It must not outlive the test binary (a run that ends early, or is interrupted):
/// cargo runs in a process group of its own under a shell that `setpriv --pdeathsig` signals
/// when this thread (so, at the latest, the test binary) ends, and that then ends the whole
/// group, rustc included.
fn build_static_binaries() -> Result<StaticBinaries, String> {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("static");
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let setpriv = program("setpriv").ok_or("the static build needs util-linux's setpriv")?;
    let began = Instant::now();
    let out = Command::new(setpriv)
        .args(["--pdeathsig", "TERM", "--", "sh", "-c"])
        .arg(r#"trap 'trap - TERM; kill -TERM 0' TERM; "$@" & wait $!"#)
        .arg("sh")
        .arg(cargo)
        .args(["build", "--release", "--locked", "--target", &triple])
        .args(["-p", "kelpie-cli", "-p", "kelpie-testkit"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // Some build scripts (proc-macro2's) rebuild everything when it changes: a run with
        // it (for libtest's -Z options) and one without share what was built.
        .env_remove("RUSTC_BOOTSTRAP")
        .current_dir(workspace())
        .process_group(0)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the static build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the static build failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "static build (target/static, {triple}, crt-static): {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let dir = target_dir.join(&triple).join("release");
    let bins = StaticBinaries {
        kelpie: dir.join("kelpie"),
        fake_app: dir.join("fake-app"),
    };
    for bin in [&bins.kelpie, &bins.fake_app] {
        if has_interpreter(bin) {
            return Err(format!(
                "{} is dynamically linked (it has a PT_INTERP)",
                bin.display()
            ));
        }
    }
    Ok(bins)
}

/// Does this ELF file name a program interpreter (the dynamic loader)? A static executable
/// (static-pie included) has none: it runs with no ld.so and no libc in the root.
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "{}: not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let mut offset_bytes = [0u8; 8];
    offset_bytes.copy_from_slice(&elf[0x20..0x28]);
    let phoff = u64::from_le_bytes(offset_bytes) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]]) == PT_INTERP
    })
}

// ---------------------------------------------------------------------------------------------
// The root directory

/// An empty directory to become a container's root, under target/tmp, with what every
/// container has: /proc (mounted by unshare), /tmp, /dev/null (and zero, random, urandom).
fn new_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("image-root-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("root dir");
    set_mode(root.path(), 0o755);
    for dir in ["proc", "dev", "etc"] {
        std::fs::create_dir(root.path().join(dir)).expect("mkdir");
    }
    let tmp = root.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir tmp");
    set_mode(&tmp, 0o1777);
    for (name, minor) in [
        ("null", "3"),
        ("zero", "5"),
        ("random", "8"),
        ("urandom", "9"),
    ] {
        let path = root.path().join("dev").join(name);
        let status = Command::new("mknod")
            .args(["-m", "666"])
            .arg(&path)
            .args(["c", "1", minor])
            .status()
            .expect("run mknod");
        assert!(status.success(), "mknod {}", path.display());
    }
    root
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `path` inside `root` (`/usr/local/bin` → `root/usr/local/bin`).
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Copy a file or a directory's contents (as COPY does) to `dest` inside the root; a copy, never
/// a link, so that nothing done to the root can touch this machine's files.
fn copy_into(root: &Path, source: &Path, dest: &str, chown: Option<(u32, u32)>) {
    let target = if source.is_dir() || dest.ends_with('/') {
        let dir = inside(root, dest);
        std::fs::create_dir_all(&dir).expect("mkdir");
        if source.is_dir() {
            for entry in std::fs::read_dir(source).expect("read_dir") {
                let entry = entry.expect("entry");
                let name = entry.file_name();
                let sub = format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy());
                copy_into(root, &entry.path(), &sub, chown);
            }
            if let Some((u, g)) = chown {
                std::os::unix::fs::chown(&dir, Some(u), Some(g)).expect("chown");
            }
            return;
        }
        dir.join(source.file_name().expect("file name"))
    } else {
        inside(root, dest)
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::copy(source, &target)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", source.display(), target.display()));
    if let Some((u, g)) = chown {
        std::os::unix::fs::chown(&target, Some(u), Some(g)).expect("chown");
    }
}

/// /etc/passwd and /etc/group with root and `name` (uid:gid), and that user's home, owned by it.
fn add_user(root: &Path, name: &str, uid: u32, gid: u32, home: &str) {
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/sbin/nologin\n{name}:x:{uid}:{gid}:{name}:{home}:/sbin/nologin\n"),
    )
    .expect("passwd");
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\n{name}:x:{gid}:\n"),
    )
    .expect("group");
    let dir = inside(root, home);
    std::fs::create_dir_all(&dir).expect("home");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown home");
}

/// The `node` binary of this machine at `/usr/local/bin/node` in the root (where the node images
/// have it), with the shared libraries it links (from `ldd`) at their paths.
fn add_node(root: &Path, node: &Path) {
    copy_into(root, node, "/usr/local/bin/node", None);
    let ldd = Command::new("ldd").arg(node).output().expect("run ldd");
    assert!(ldd.status.success(), "ldd {}", node.display());
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)` or `/lib64/ld-linux….so.2 (0x…)`
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            copy_into(root, Path::new(path), path, None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The container

/// A process's output and how it ended.
struct Exec {
    status: Option<ExitStatus>,
    out: String,
    err: String,
    took: Duration,
}

/// Run `cmd`, collecting its output; SIGKILLed at `timeout` (`status` is then `None`).
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Exec {
    let began = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if began.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // pacing: the poll of a wait whose timeout is an answer (`status` None), not a failure.
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = began.elapsed();
    // The readers end when every holder of the pipes is gone: at most 2 s more, since a process
    // it left behind (a daemon a `kelpie ping` would start) could hold them for ever.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&out) + Arc::strong_count(&err) > 2 && Instant::now() < deadline {
        // pacing: as above, the output read so far is taken after 2 s.
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = |t: &Arc<Mutex<String>>| t.lock().expect("output").clone();
    Exec {
        status,
        out: text(&out),
        err: text(&err),
        took,
    }
}

/// A command run as a container runtime runs the image's CMD: PID 1 of new pid and mount
/// namespaces (and a network namespace with only `lo`, up, when `own_network`), `root` as its
/// root, `workdir` as its directory, as `uid:gid`, with exactly `env`.
struct Container {
    pid1: Pid1,
    uid: u32,
    gid: u32,
    env: Vec<(String, String)>,
}

impl std::ops::Deref for Container {
    type Target = Pid1;
    fn deref(&self) -> &Pid1 {
        &self.pid1
    }
}

impl std::ops::DerefMut for Container {
    fn deref_mut(&mut self) -> &mut Pid1 {
        &mut self.pid1
    }
}

impl Container {
    fn start(
        root: &Path,
        workdir: &str,
        (uid, gid): (u32, u32),
        env: &[(String, String)],
        argv: &[String],
        own_network: bool,
    ) -> Container {
        let unshare = program("unshare").expect("unshare");
        let mut inner = vec![
            unshare.display().to_string(),
            "--pid".into(),
            "--fork".into(),
            // PID 1 (and so the namespace) dies with unshare, should unshare be killed first.
            "--kill-child".into(),
            "--mount-proc".into(),
            format!("--root={}", root.display()),
            format!("--wd={workdir}"),
            "--setuid".into(),
            uid.to_string(),
            "--setgid".into(),
            gid.to_string(),
            "--".into(),
        ];
        inner.extend(argv.iter().cloned());
        let mut cmd = if own_network {
            // A container's network namespace has its own loopback, up. `sh` brings it up and
            // execs the pid namespace's unshare: the spawned pid ends up being that unshare.
            let ip = program("ip").expect("ip");
            let mut cmd = Command::new(&unshare);
            cmd.args(["--net", "--", "/bin/sh", "-c"])
                .arg(format!("{} link set lo up && exec \"$@\"", ip.display()))
                .arg("sh")
                .args(&inner);
            cmd
        } else {
            let mut cmd = Command::new(&inner[0]);
            cmd.args(&inner[1..]);
            cmd
        };
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/");
        Container {
            pid1: Pid1::spawn(cmd),
            uid,
            gid,
            env: env.to_vec(),
        }
    }

    /// `docker exec`: `argv` in the container's namespaces and root, in its working directory,
    /// as its user, with its environment.
    fn exec(&self, argv: &[String], timeout: Duration) -> Exec {
        let pid = self.host_pid().expect("PID 1 runs");
        let mut cmd = Command::new(program("nsenter").expect("nsenter"));
        cmd.args(["-t", &pid.to_string()])
            .args(["--pid", "--mount", "--net", "--root", "--wd"])
            .args(["-S", &self.uid.to_string(), "-G", &self.gid.to_string()])
            .arg("--")
            .args(argv)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/");
        run_with_timeout(cmd, timeout)
    }
}

/// The `Uid:` line of a host pid: real, effective, saved, filesystem.
fn uids(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Is this host pid PID 1 of its namespace?
fn is_pid_1(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .is_some_and(|l| l.trim_end().ends_with("\t1"))
}

/// Every regular file under `dir`, as paths inside `root` (`/etc/passwd`).
fn regular_files(root: &Path, dir: &Path, into: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            regular_files(root, &entry.path(), into);
        } else if kind.is_file() {
            let path = entry.path();
            let relative = path.strip_prefix(root).expect("under root");
            into.push(format!("/{}", relative.display()));
        }
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn dockerfile_parsing() {
    let stages = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG V=1\nFROM a:${V} AS one\nRUN x \\\n  # c\n  && y\n\nfrom one\nENV A=1 B=\"two words\"\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("one"));
    assert_eq!(stages[0].instructions[0].args, "x  && y");
    assert_eq!(stages[1].base, "one");
    assert_eq!(
        env_pairs(&stages[1].instructions[0].args),
        [("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
    assert_eq!(env_pairs("OLD a value"), [("OLD".into(), "a value".into())]);
    let (options, command) = healthcheck("--interval=30s --timeout=5s CMD [\"kelpie\", \"ping\"]");
    assert_eq!(options["timeout"], "5s");
    assert_eq!(command, ["kelpie", "ping"]);
    assert_eq!(docker_duration("1m30s"), Duration::from_secs(90));
    assert_eq!(docker_duration("500ms"), Duration::from_millis(500));
    assert_eq!(resolve("/app", "./"), "/app/");
    assert_eq!(resolve("/app", "x/y"), "/app/x/y");
    assert_eq!(
        resolve("/app", "/usr/local/bin/kelpie"),
        "/usr/local/bin/kelpie"
    );
}

/// The example image has kelpie's man page where `man kelpie` looks (the build writes it with
/// `kelpie man`), without needing anything of the machine.
#[test]
fn the_example_image_ships_the_man_page() {
    let docker = Dockerfile::read();
    let image = ImageSpec::of(&docker, Path::new(env!("CARGO_BIN_EXE_kelpie")));
    assert_eq!(image.man_path, "/usr/local/share/man/man1/kelpie.1");
    let copy = image
        .copies
        .iter()
        .find(|c| c.dest == image.man_path)
        .expect("the man page is copied");
    let page = std::fs::read_to_string(&copy.source).expect("man page");
    assert!(page.contains("\n.TH KELPIE 1 "), "{page}");
    assert!(page.contains("\\fBkelpie stop\\fR"), "{page}");
}

/// The example image, as `docker build .` would make it and `docker run` would run it: its CMD
/// (`kelpie runtime ecosystem.config.js --env production`) as PID 1 and the image's non-root
/// user, the HEALTHCHECK passing, `docker exec kelpie jlist` and an HTTP request answered by the
/// app's two instances through Kelpie's shared port, then `docker stop` (SIGTERM): every app
/// stopped gracefully and exit code 0.
#[test]
fn the_example_image_runs_its_cmd_as_pid_1_and_stops_on_sigterm() {
    if !unshare_permitted() {
        return;
    }
    let (Some(node), Some(_)) = (program("node"), program("ip")) else {
        kelpie_testkit::skip(
            "the example image needs `node` (its base image's; nodejs) and `ip` (for the \
             container's loopback; iproute2) on PATH",
        );
        return;
    };
    let bins = static_binaries();
    let docker = Dockerfile::read();
    let image = ImageSpec::of(&docker, &bins.kelpie);
    let root = new_root();
    // The base image, node:20-alpine: its `node` user and node itself.
    add_user(root.path(), "node", 1000, 1000, "/home/node");
    add_node(root.path(), &node);
    for copy in &image.copies {
        copy_into(root.path(), &copy.source, &copy.dest, copy.owner);
    }
    let page = std::fs::read_to_string(inside(root.path(), &image.man_path)).expect("man page");
    assert!(
        page.contains("\n.TH KELPIE 1 "),
        "the image's man page:\n{page}"
    );
    let mut env = image.env.clone();
    env.push(("HOME".into(), "/home/node".into())); // docker run sets it from /etc/passwd
    let home = image
        .env("KELPIE_HOME")
        .expect("ENV KELPIE_HOME")
        .to_string();
    assert!(
        home.starts_with("/home/node/"),
        "KELPIE_HOME {home}: in the user's home"
    );
    let port = *image.expose.first().expect("EXPOSE");

    let mut ct = Container::start(
        root.path(),
        &image.workdir,
        (image.uid, image.gid),
        &env,
        &image.cmd,
        true,
    );
    // Both instances of `web` print their start line through the runtime, as they wrote it.
    kelpie_testkit::wait_until("two start lines", Duration::from_secs(20), || {
        let out = ct.out();
        match out.matches(&format!("listening on {port}")).count() >= 2 {
            true => Ok(()),
            false => Err(format!("{out}\n{}", ct.err())),
        }
    });
    ct.wait_out(&format!("listening on {port}"), Duration::from_secs(5));
    let pid1 = ct.host_pid().expect("PID 1");
    assert!(is_pid_1(pid1), "kelpie runtime is PID 1 of its namespace");
    let user = format!("{0} {0} {0} {0}", image.uid);
    assert_eq!(uids(pid1), user, "the runtime runs as the image's USER");
    let apps = ct.descendants();
    assert_eq!(apps.len(), 2, "two instances: {apps:?}\n{}", ct.err());
    for (pid, _) in &apps {
        assert_eq!(uids(*pid), user, "app {pid} runs as the image's USER");
    }

    // The HEALTHCHECK, as Docker runs it (in the container, within its --timeout).
    let check = ct.exec(&image.healthcheck, image.health_timeout);
    assert!(
        check.status.is_some_and(|s| s.success()),
        "HEALTHCHECK {:?} failed after {:?}: {}{}\nruntime stderr:\n{}",
        image.healthcheck,
        check.took,
        check.out,
        check.err,
        ct.err()
    );
    // It was answered by the runtime (PID 1), not by a daemon it started.
    assert!(check.out.contains("pid 1,"), "{}", check.out);
    assert_eq!(ct.descendants().len(), 2, "the HEALTHCHECK started nothing");

    // `docker exec <container> kelpie jlist`: both instances online, production environment.
    let jlist = ct.exec(&strings(&["kelpie", "jlist"]), Duration::from_secs(10));
    assert!(jlist.status.is_some_and(|s| s.success()), "{}", jlist.err);
    let list: Vec<serde_json::Value> = serde_json::from_str(&jlist.out).expect("jlist JSON");
    assert_eq!(list.len(), 2, "{list:?}");
    for app in &list {
        assert_eq!(app["name"], "web");
        assert_eq!(app["pm2_env"]["status"], "online", "{app}");
    }

    // The app answers on the exposed port, inside the container's network.
    let get = format!(
        "require('http').get('http://127.0.0.1:{port}/', r => {{ let b = ''; r.on('data', d => b += d); r.on('end', () => {{ console.log(r.statusCode + ' ' + b.trim()); }}); }}).on('error', e => {{ console.error(e.message); process.exit(1); }});"
    );
    let http = ct.exec(&strings(&["node", "-e", &get]), Duration::from_secs(10));
    assert!(
        http.status.is_some_and(|s| s.success()) && http.out.starts_with("200 hello from pid "),
        "GET /: {} {}",
        http.out,
        http.err
    );
    assert!(http.out.contains("(production)"), "{}", http.out);

    // `docker stop`: SIGTERM to PID 1; the apps stop gracefully and the runtime exits 0 well
    // before Docker's SIGKILL.
    ct.signal(SIGTERM);
    let status = ct.wait_exit(DOCKER_STOP_TIMEOUT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        ct.out(),
        ct.err()
    );
    let out = ct.out();
    assert_eq!(
        out.matches("stopping on SIGINT").count(),
        2,
        "both instances stopped gracefully:\n{out}"
    );
}

/// The static binary alone: an empty root with only the image's kelpie (where the Dockerfile puts
/// it), a static app, /etc/passwd, /tmp and /dev. The runtime runs there as PID 1 and the image's
/// non-root USER, with the image's ENV, and reaps the app's double-forked orphans; the image's
/// HEALTHCHECK passes; SIGTERM stops everything and exits 0.
#[test]
fn the_static_binary_alone_runs_as_pid_1_non_root_in_an_empty_root() {
    if !unshare_permitted() {
        return;
    }
    let bins = static_binaries();
    let size = std::fs::metadata(&bins.kelpie).expect("kelpie").len();
    assert!(
        size < MAX_BINARY_BYTES,
        "the static kelpie is {size} bytes, over the 15 MiB target"
    );
    let docker = Dockerfile::read();
    let image = ImageSpec::of(&docker, &bins.kelpie);
    let root = new_root();
    let home = image
        .env("KELPIE_HOME")
        .expect("ENV KELPIE_HOME")
        .to_string();
    let user_home = Path::new(&home)
        .parent()
        .expect("KELPIE_HOME has a parent")
        .display()
        .to_string();
    add_user(root.path(), "app", image.uid, image.gid, &user_home);
    copy_into(root.path(), &bins.kelpie, &image.kelpie_path, None);
    copy_into(root.path(), &bins.fake_app, "/fake-app", None);
    std::fs::create_dir_all(inside(root.path(), &image.workdir)).expect("WORKDIR");
    let mut files = Vec::new();
    regular_files(root.path(), root.path(), &mut files);
    files.sort();
    let mut expected = vec![
        "/etc/group".to_string(),
        "/etc/passwd".to_string(),
        "/fake-app".to_string(),
        image.kelpie_path.clone(),
    ];
    expected.sort();
    assert_eq!(files, expected, "no libc, no loader, no shell in the root");

    // The CMD's program and subcommand (`kelpie runtime`), on the static app instead of the
    // example's ecosystem file (which needs node).
    let mut argv = image.cmd[..2].to_vec();
    assert_eq!(argv, ["kelpie", "runtime"]);
    argv.extend(strings(&[
        "/fake-app",
        "--name",
        "forker",
        "--",
        "--orphans",
        "3",
        "--orphan-life",
        "100",
    ]));
    let mut env = image.env.clone();
    env.push(("HOME".into(), user_home));
    let mut ct = Container::start(
        root.path(),
        &image.workdir,
        (image.uid, image.gid),
        &env,
        &argv,
        false,
    );
    ct.wait_out("orphans 3 spawned", Duration::from_secs(10));
    let pid1 = ct.host_pid().expect("PID 1");
    assert!(is_pid_1(pid1));
    let user = format!("{0} {0} {0} {0}", image.uid);
    assert_eq!(uids(pid1), user);

    // The orphans were re-parented to PID 1, lived 100 ms and exited: none may stay a zombie.
    let app = kelpie_testkit::wait_until(
        "the orphans reaped, the app alone left",
        Duration::from_secs(10),
        || {
            let inside = ct.descendants();
            let zombies = inside.iter().filter(|p| p.1).count();
            match (zombies, inside.as_slice()) {
                (0, [(app, _)]) => Ok(*app),
                _ => Err(format!(
                    "{zombies} zombies among {inside:?}\nstderr:\n{}",
                    ct.err()
                )),
            }
        },
    );
    assert_eq!(uids(app), user, "the app runs as the image's USER");

    let check = ct.exec(&image.healthcheck, image.health_timeout);
    assert!(
        check.status.is_some_and(|s| s.success()) && check.out.contains("pid 1,"),
        "HEALTHCHECK {:?}: {:?} after {:?}: {}{}",
        image.healthcheck,
        check.status,
        check.took,
        check.out,
        check.err
    );
    assert_eq!(ct.descendants().len(), 1, "the HEALTHCHECK started nothing");
    assert!(
        inside(root.path(), &home).join("kelpie.sock").exists(),
        "the control socket is in KELPIE_HOME"
    );

    ct.signal(SIGTERM);
    let status = ct.wait_exit(DOCKER_STOP_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", ct.err());
}
