//! The scripts a host runs, one per phase: POSIX `sh`, read by `sh -s` from ssh's standard
//! input. Every value from the config (hooks, env values, paths, the repository) travels as a
//! single-quoted shell word, so quotes, `$`, `!` and spaces arrive as written; a hook is run by
//! a login shell (`bash -lc`, else `sh -lc`) as its own script text.
//!
//! A script reports to the CLI with lines `@@kelpie:<word> <values>` on its standard output;
//! every other line is the output of a hook or of git, shown to the user.

use super::config::{Host, Target};

/// What every script starts with: the library of steps, over the variables of the prelude.
const LIBRARY: &str = r#"
kd_say() { printf '@@kelpie:%s\n' "$*"; }
kd_fail() { kd_say "fail $1 $2"; exit 1; }
kd_shell() {
    if command -v bash >/dev/null 2>&1; then bash -lc "$1"; else sh -lc "$1"; fi
}
kd_hook() {
    [ -n "$3" ] || return 0
    kd_say "step $1"
    ( cd "$2" || exit 1; kd_env; kd_shell "$3" ) </dev/null 2>&1
    kd_rc=$?
    [ "$kd_rc" -eq 0 ] || kd_fail "$1" "$kd_rc"
}
kd_is_setup() { [ -d "$P/releases" ] && [ -d "$P/repo" ]; }
kd_lock() {
    mkdir -p "$P/.kelpie-deploy" 2>/dev/null
    if mkdir "$P/.kelpie-deploy/lock" 2>/dev/null; then
        printf '%s\n%s\n' "$OWNER" "$TOKEN" > "$P/.kelpie-deploy/lock/owner"
        kd_say "locked"
    else
        kd_say "held $(head -n 1 "$P/.kelpie-deploy/lock/owner" 2>/dev/null)"
        exit 1
    fi
}
kd_unlock() {
    if grep -qxF "$TOKEN" "$P/.kelpie-deploy/lock/owner" 2>/dev/null; then
        rm -rf "$P/.kelpie-deploy/lock"
    fi
}
kd_fetch() {
    kd_say "step fetch"
    git -C "$P/repo" remote set-url -- origin "$REPO" 2>&1 \
        && git -C "$P/repo" fetch -q --prune $DEPTH origin 2>&1 \
        || kd_fail fetch $?
}
kd_resolve() {
    SHA=$(git -C "$P/repo" rev-parse -q --verify "$1^{commit}" 2>/dev/null) \
        || SHA=$(git -C "$P/repo" rev-parse -q --verify "${1#*/}^{commit}" 2>/dev/null) \
        || { kd_say "noref $1"; kd_fail ref 1; }
}
kd_new_id() {
    ID=$(date -u +%Y%m%d%H%M%S)-$(printf '%s' "$SHA" | cut -c1-7)$1
}
kd_build() {
    kd_say "step build"
    kd_new_id ""
    while [ -e "$P/releases/$ID" ]; do sleep 1; kd_new_id ""; done
    kd_tmp="$P/releases/.$ID.partial"
    rm -rf "$kd_tmp" "$kd_tmp.tar"
    if mkdir -p "$kd_tmp" \
        && git -C "$P/repo" archive --format=tar -o "$kd_tmp.tar" "$SHA" 2>&1 \
        && tar -xf "$kd_tmp.tar" -C "$kd_tmp" 2>&1 \
        && printf '%s\n' "$SHA" > "$kd_tmp/REVISION" \
        && kd_link_shared "$kd_tmp" \
        && mv "$kd_tmp" "$P/releases/$ID"; then
        rm -f "$kd_tmp.tar"
    else
        kd_rc=$?
        rm -rf "$kd_tmp" "$kd_tmp.tar"
        kd_fail build "$kd_rc"
    fi
}
kd_switch() {
    ln -sfn "releases/$1" "$P/.current.tmp" || return 1
    mv -T "$P/.current.tmp" "$P/current" 2>/dev/null \
        || mv -fh "$P/.current.tmp" "$P/current" 2>/dev/null \
        || { rm -f "$P/.current.tmp"; ln -sfn "releases/$1" "$P/current"; }
}
kd_link_source() {
    [ -e "$P/source" ] || [ -L "$P/source" ] || ln -s current "$P/source"
}
kd_prune() {
    kd_n=0
    for kd_r in $(ls -1 "$P/releases" | sort -r); do
        kd_n=$((kd_n + 1))
        [ "$kd_n" -le "$KEEP" ] && continue
        { [ "$kd_r" = "$1" ] || [ "$kd_r" = "$2" ]; } && continue
        rm -rf "$P/releases/$kd_r"
    done
}
kd_current_sha() {
    cat "$P/current/REVISION" 2>/dev/null || git -C "$P/current" rev-parse HEAD 2>/dev/null
}
kd_runs_from() {
    kd_phys=$(cd -P "$1" 2>/dev/null && pwd) || kd_phys=$1
    kd_shell 'kelpie jlist 2>/dev/null || pm2 jlist 2>/dev/null' </dev/null 2>/dev/null \
        | grep -qF -e "$kd_phys/" -e "$kd_phys\""
}
kd_activate() {
    kd_say "step $1"
    ( cd "$2" || exit 1; kd_env; KELPIE_DEPLOY_RELEASE=$(pwd -P); KELPIE_DEPLOY_PATH=$P
      export KELPIE_DEPLOY_RELEASE KELPIE_DEPLOY_PATH
      kd_shell "$HOOK_POST_DEPLOY" ) </dev/null 2>&1
}
"#;

/// Quote `text` as one shell word.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The deploy path as a shell expression: `~/x` is the remote user's home.
fn path_expression(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", quote(rest))
    } else {
        quote(path)
    }
}

/// What the scripts of one run share: the target, the host, who holds the lock.
pub(super) struct Prelude<'a> {
    /// The section.
    pub target: &'a Target,
    /// The host the script is for.
    pub host: &'a Host,
    /// The default `post-deploy`'s file name.
    pub post_deploy: &'a str,
    /// Who deploys, written in the lock.
    pub owner: &'a str,
    /// This run's token: only the run that took a lock removes it.
    pub token: &'a str,
}

impl Prelude<'_> {
    fn text(&self, vars: &[(&str, &str)]) -> String {
        let target = self.target;
        let hook = |hook: &Option<String>| quote(hook.as_deref().unwrap_or(""));
        let mut text = format!("P={}\n", path_expression(&self.host.path));
        text.push_str(&format!("REPO={}\n", quote(&target.repo)));
        text.push_str(&format!("REF={}\n", quote(&target.git_ref)));
        text.push_str(&format!(
            "DEPTH={}\n",
            if target.shallow { "--depth=5" } else { "" }
        ));
        text.push_str(&format!("KEEP={}\n", target.keep_releases));
        text.push_str(&format!("OWNER={}\n", quote(self.owner)));
        text.push_str(&format!("TOKEN={}\n", quote(self.token)));
        text.push_str(&format!(
            "HOOK_PRE_DEPLOY={}\n",
            hook(&target.hooks.pre_deploy)
        ));
        text.push_str(&format!(
            "HOOK_POST_SETUP={}\n",
            hook(&target.hooks.post_setup)
        ));
        text.push_str(&format!("HOOK_POST_DEPLOY={}\n", quote(self.post_deploy)));
        for (name, value) in vars {
            text.push_str(&format!("{name}={}\n", quote(value)));
        }
        text.push_str("kd_env() {\n    SHARED=\"$P/shared\"; export SHARED\n");
        for (name, value) in &target.variables {
            text.push_str(&format!("    {name}={}; export {name}\n", quote(value)));
        }
        text.push_str("    :\n}\n");
        text.push_str("kd_link_shared() {\n");
        text.push_str(
            "    for kd_d in logs pids; do\n        [ -e \"$1/$kd_d\" ] || [ -L \"$1/$kd_d\" ] || ln -s \"$P/shared/$kd_d\" \"$1/$kd_d\"\n    done\n",
        );
        for dir in &target.shared_dirs {
            let dir = quote(dir);
            text.push_str(&format!(
                "    mkdir -p \"$P/shared/\"{dir} && rm -rf \"$1/\"{dir} && mkdir -p \"$(dirname \"$1/\"{dir})\" && ln -s \"$P/shared/\"{dir} \"$1/\"{dir} || return 1\n"
            ));
        }
        for file in &target.shared_files {
            let file = quote(file);
            text.push_str(&format!(
                "    if [ ! -e \"$P/shared/\"{file} ] && [ -f \"$1/\"{file} ]; then mkdir -p \"$(dirname \"$P/shared/\"{file})\" && cp \"$1/\"{file} \"$P/shared/\"{file}; fi\n    if [ -e \"$P/shared/\"{file} ]; then rm -rf \"$1/\"{file} && mkdir -p \"$(dirname \"$1/\"{file})\" && ln -s \"$P/shared/\"{file} \"$1/\"{file} || return 1; fi\n"
            ));
        }
        text.push_str("    :\n}\n");
        text.push_str(LIBRARY);
        text
    }

    /// A whole script: the prelude, `body` as the main function, run with no standard input
    /// (the script itself is on it) and its errors on standard output, in order.
    fn script(&self, vars: &[(&str, &str)], body: &str) -> String {
        format!(
            "{}kd_main() {{\n{body}\n}}\nkd_main </dev/null 2>&1\n",
            self.text(vars)
        )
    }

    /// `setup`: the layout made or completed, a PM2 host adopted, the first release built.
    pub(super) fn setup(&self, pre_setup: PreSetup<'_>) -> String {
        let (pre_setup_var, pre_setup_step) = match pre_setup {
            PreSetup::None => (String::new(), ""),
            PreSetup::Command(command) => (
                command.to_string(),
                "    kd_hook pre-setup \"$HOME\" \"$PRE_SETUP\"\n",
            ),
            PreSetup::LocalFile(content) => (
                content.to_string(),
                "    kd_say \"step pre-setup\"\n    ( cd \"$HOME\" && kd_env && printf '%s\\n' \"$PRE_SETUP\" | bash -s ) 2>&1 || kd_fail pre-setup $?\n",
            ),
        };
        let body = format!(
            r#"{pre_setup_step}    mkdir -p "$P/releases" "$P/shared/logs" "$P/shared/pids" "$P/.kelpie-deploy" || kd_fail setup $?
    command -v git >/dev/null 2>&1 || {{ kd_say "missing git $PATH"; kd_fail setup 127; }}
    if [ -d "$P/source" ] && [ ! -L "$P/source" ]; then
        kd_say "step adopt"
        SHA=$(git -C "$P/source" rev-parse HEAD 2>/dev/null) || kd_fail adopt 1
        kd_new_id -pm2
        mv "$P/source" "$P/releases/$ID" || kd_fail adopt $?
        printf '%s\n' "$SHA" > "$P/releases/$ID/REVISION"
        rm -f "$P/current"
        kd_switch "$ID" || kd_fail adopt $?
        kd_say "adopted $ID"
    fi
    if [ ! -d "$P/repo" ]; then
        kd_say "step clone"
        rm -rf "$P/.repo.partial"
        {{ git clone -q --mirror $DEPTH -- "$REPO" "$P/.repo.partial" 2>&1 && mv "$P/.repo.partial" "$P/repo"; }} || kd_fail clone $?
    fi
    if [ ! -e "$P/current" ]; then
        kd_fetch
        kd_resolve "$REF"
        kd_build
        kd_switch "$ID" || kd_fail switch $?
        kd_say "built $ID $SHA"
    fi
    kd_link_source
    kd_shell 'command -v kelpie || command -v pm2' </dev/null >/dev/null 2>&1 \
        || kd_say "missing kelpie $(kd_shell 'printf %s "$PATH"' </dev/null 2>/dev/null)"
    kd_hook post-setup "$P/current" "$HOOK_POST_SETUP"
    kd_say "ready $(kd_current_sha)""#
        );
        self.script(&[("PRE_SETUP", &pre_setup_var)], &body)
    }

    /// The lock, taken on a host that is set up.
    pub(super) fn lock(&self) -> String {
        self.script(
            &[],
            r#"    kd_is_setup || { kd_say "notsetup"; exit 1; }
    kd_lock"#,
        )
    }

    /// `pre-deploy`, the fetch and the new release of `git_ref`, built beside the live one.
    pub(super) fn prepare(&self, git_ref: &str) -> String {
        self.script(
            &[("WANT", git_ref)],
            r#"    kd_dir=$P/current; [ -d "$kd_dir" ] || kd_dir=$P
    kd_hook pre-deploy "$kd_dir" "$HOOK_PRE_DEPLOY"
    kd_fetch
    kd_resolve "$WANT"
    kd_build
    kd_say "release $ID $SHA new""#,
        )
    }

    /// The release to go back to for `revert n`: kept if it still is, else built again.
    pub(super) fn prepare_revert(&self, back: u32) -> String {
        self.script(
            &[("BACK", &back.to_string())],
            r#"    kd_cur=$(kd_current_sha)
    SHA=$( [ -f "$P/.deploys" ] && awk '{l[NR]=$0} END {for (i = NR; i > 0; i--) print l[i]}' "$P/.deploys" \
        | awk -v cur="$kd_cur" 'NF && $0 != cur && !seen[$0]++' | sed -n "${BACK}p")
    [ -n "$SHA" ] || { kd_say "norevert $BACK"; kd_fail revert 1; }
    ID=
    for kd_r in $(ls -1 "$P/releases" | sort -r); do
        [ -f "$P/releases/$kd_r/FAILED" ] && continue
        if [ "$(cat "$P/releases/$kd_r/REVISION" 2>/dev/null)" = "$SHA" ]; then ID=$kd_r; break; fi
    done
    if [ -n "$ID" ]; then
        kd_say "release $ID $SHA kept"
    else
        git -C "$P/repo" cat-file -e "$SHA^{commit}" 2>/dev/null || kd_fetch
        kd_build
        kd_say "release $ID $SHA new"
    fi"#,
        )
    }

    /// The release activated: `post-deploy` in it, then `current` switched, `.deploys`
    /// appended, old releases pruned, the lock released. A failing `post-deploy` marks the
    /// release FAILED and, when an app already runs from it, activates `current` again.
    pub(super) fn activate(&self, id: &str, sha: &str) -> String {
        self.script(
            &[("ID", id), ("SHA", sha)],
            r#"    R=$P/releases/$ID
    kd_prev=$(readlink "$P/current" 2>/dev/null); kd_prev=${kd_prev##*/}
    kd_activate post-deploy "$R"
    kd_rc=$?
    if [ "$kd_rc" -ne 0 ]; then
        : > "$R/FAILED"
        if [ -d "$P/current" ] && [ "$kd_prev" != "$ID" ] && kd_runs_from "$R"; then
            kd_activate restore "$P/current"
            kd_say "restored $?"
        fi
        kd_unlock
        kd_fail post-deploy "$kd_rc"
    fi
    rm -f "$R/FAILED"
    kd_say "step switch"
    kd_switch "$ID" || { kd_rc=$?; kd_unlock; kd_fail switch "$kd_rc"; }
    kd_link_source
    printf '%s\n' "$SHA" >> "$P/.deploys"
    kd_prune "$ID" "$kd_prev"
    kd_unlock
    kd_say "live $ID $SHA""#,
        )
    }

    /// A deploy given up before any switch: the release it built removed, its lock released.
    pub(super) fn abort(&self, new_release: Option<&str>) -> String {
        self.script(
            &[("NEWID", new_release.unwrap_or(""))],
            r#"    [ -n "$NEWID" ] && rm -rf "$P/releases/$NEWID"
    kd_unlock
    kd_say "aborted""#,
        )
    }

    /// `unlock`: the lock removed, whoever holds it.
    pub(super) fn unlock(&self) -> String {
        self.script(
            &[],
            r#"    if [ -d "$P/.kelpie-deploy/lock" ]; then
        kd_say "unlocked $(head -n 1 "$P/.kelpie-deploy/lock/owner" 2>/dev/null)"
        rm -rf "$P/.kelpie-deploy/lock"
    else
        kd_say "unlocked"
    fi"#,
        )
    }

    /// `curr`: the live release's short sha, as `git rev-parse --short`.
    pub(super) fn current(&self) -> String {
        self.script(
            &[],
            r#"    kd_s=$(kd_current_sha)
    [ -n "$kd_s" ] || { kd_say "notsetup"; exit 1; }
    printf '%s\n' "$kd_s" | cut -c1-7"#,
        )
    }

    /// `prev`: the second-last line of `.deploys`, as PM2.
    pub(super) fn previous(&self) -> String {
        self.script(
            &[],
            r#"    [ -f "$P/.deploys" ] || { kd_say "nodeploys"; exit 1; }
    tail -n 2 "$P/.deploys" | head -n 1"#,
        )
    }

    /// `list`: `<n>\t<sha>`, newest first, as PM2.
    pub(super) fn list(&self) -> String {
        self.script(
            &[],
            r#"    [ -f "$P/.deploys" ] || { kd_say "nodeploys"; exit 1; }
    awk '{l[NR]=$0} END {for (i = NR; i > 0; i--) printf "%d\t%s\n", NR - i, l[i]}' "$P/.deploys""#,
        )
    }

    /// `kelpie fleet`: a command in the user's home, in a login shell with the env; what it
    /// prints on stderr reported apart (`stderr <line>`), and its status (`exit <n>`).
    pub(super) fn fleet(&self, command: &str) -> String {
        self.script(
            &[("CMD", command)],
            r#"    kd_e=$(mktemp 2>/dev/null) || kd_e=/tmp/.kelpie-fleet.$$
    ( cd "$HOME" || exit 1; kd_env; kd_shell "$CMD" ) </dev/null 2>"$kd_e"
    kd_rc=$?
    while IFS= read -r kd_l || [ -n "$kd_l" ]; do kd_say "stderr $kd_l"; done < "$kd_e"
    rm -f "$kd_e"
    kd_say "exit $kd_rc""#,
        )
    }

    /// `exec`: the command in `current`, in a login shell with the env.
    pub(super) fn exec(&self, command: &str) -> String {
        self.script(
            &[("CMD", command)],
            r#"    kd_dir=$P/current; [ -d "$kd_dir" ] || { kd_say "notsetup"; exit 1; }
    ( cd "$kd_dir" || exit 1; kd_env; kd_shell "$CMD" ) </dev/null 2>&1
    kd_say "exit $?""#,
        )
    }
}

/// What `pre-setup` runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum PreSetup<'a> {
    /// No hook.
    None,
    /// A command, run on the host in the user's home.
    Command(&'a str),
    /// A local script's text, run by `bash -s` on the host (PM2's rule when the hook's first
    /// word is a file here).
    LocalFile(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_word_is_read_back_as_written_by_sh() {
        for text in ["it's \"q\" $HOME !", "a b\tc", "`x` \\ $(y)", ""] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(text)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), text);
        }
    }

    #[test]
    fn a_home_path_is_expanded_on_the_host() {
        assert_eq!(path_expression("~/app"), "\"$HOME\"/'app'");
        assert_eq!(path_expression("/srv/a b"), "'/srv/a b'");
    }
}
