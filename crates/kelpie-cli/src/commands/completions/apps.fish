# Kelpie's addition to the script clap generated above: the names of the running daemon's apps
# where a command takes apps (`kelpie stop <TAB>`). `kelpie complete-apps -- <words>` prints
# them when the word being completed is one, and nothing otherwise (it never starts a daemon);
# the condition keeps them for the completion that follows, and files are not offered there.
function __fish_kelpie_at_app
    set -g __fish_kelpie_app_names (kelpie complete-apps -- (commandline -opc) 2>/dev/null)
    test (count $__fish_kelpie_app_names) -gt 0
end

function __fish_kelpie_app_names
    printf '%s\n' $__fish_kelpie_app_names
end

complete -c kelpie -f -n __fish_kelpie_at_app -a '(__fish_kelpie_app_names)' -d app
