# Kelpie's addition to the script clap generated above (its function renamed `_kelpie_clap`):
# the names of the running daemon's apps where a command takes apps (`kelpie stop <TAB>`).
# `kelpie complete-apps -- <words>` prints them when the word being completed is one, and
# nothing otherwise (it never starts a daemon); then the generated completion runs as usual.
_kelpie() {
    if [[ $PREFIX != -* ]]; then
        local -a apps
        apps=(${(f)"$(kelpie complete-apps -- "${(@)words[1,CURRENT-1]}" 2>/dev/null)"})
        if (( ${#apps} )); then
            local expl
            _wanted apps expl 'app' compadd -a apps
            return
        fi
    fi
    _kelpie_clap "$@"
}
