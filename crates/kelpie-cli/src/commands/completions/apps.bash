# Kelpie's addition to the script clap generated above: the names of the running daemon's apps
# where a command takes apps (`kelpie stop <TAB>`). `kelpie complete-apps -- <words>` prints them
# when the word being completed is one, and nothing otherwise (it never starts a daemon); then
# the generated completion (`_kelpie`) runs as usual.
_kelpie_with_apps() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" != -* ]]; then
        local apps
        apps="$(kelpie complete-apps -- "${COMP_WORDS[@]:0:COMP_CWORD}" 2>/dev/null)"
        if [[ -n "$apps" ]]; then
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$apps" -- "$cur"))
            return 0
        fi
    fi
    _kelpie "$@"
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _kelpie_with_apps -o nosort -o bashdefault -o default kelpie
else
    complete -F _kelpie_with_apps -o bashdefault -o default kelpie
fi
