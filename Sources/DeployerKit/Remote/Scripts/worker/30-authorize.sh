# --- authorize: a least-privilege key for this site --------------------------------------------

# The dispatcher: the forced command of the key (authorized_keys command=). It runs only the worker
# script installed beside it, for this site's workspace (the client names the script it expects by
# its cksum on the first line of standard input; the phase's arguments follow, NUL-separated), and
# rsync confined to the workspace by rrsync; anything else is refused.
write_dispatch() {
    cat <<DISPATCH
#!/bin/sh
# frappe-deployer: the forced command of a least-privilege key for $site_dir, written by
# \`frappe-deployer remote-worker authorize --install\`. It runs only the worker script beside it,
# for this workspace, and rsync confined to the workspace by rrsync; anything else is refused.
set -eu
here='$state/authorized'
workspace='$workspace'
refuse() { printf 'error: %s\\n' "\$*" >&2; exit 126; }
case \${SSH_ORIGINAL_COMMAND:-} in
    'rsync --server '*)
        exec '$1' -absolute -no-lock "\$workspace" ;;
    frappe-deployer-worker)
        IFS= read -r claim || refuse "no worker script named on standard input"
        have=\$(cksum < "\$here/worker.sh" | cut -d ' ' -f 1,2)
        [ "\$claim" = "\$have" ] || refuse "the worker script authorized on this worker (cksum \$have) is not this frappe-deployer's (\$claim): run remote-worker authorize --install again with a full-access key"
        FD_AUTHORIZED_WORKSPACE=\$workspace
        export FD_AUTHORIZED_WORKSPACE
        # xargs turns the NUL-separated arguments into a command line; the script's own exit
        # status (which xargs would fold into 123) comes back on the captured standard output.
        exec 3>&1
        # shellcheck disable=SC2016 # expanded by the inner sh
        status=\$(xargs -0 -x sh -c 'sh "\$0" "\$@" >&3 3>&-; echo "\$?"' "\$here/worker.sh")
        exit "\${status:-2}" ;;
    *)
        refuse "this key only runs frappe-deployer for \$workspace: '\${SSH_ORIGINAL_COMMAND:-a login shell}' is refused" ;;
esac
DISPATCH
}

authorize() {
    az_site=$(required site)
    az_script=$(required script)
    az_key=$(required key)
    # The entry's command= and the dispatcher quote these paths with nothing but single quotes.
    case $site_dir in *[!A-Za-z0-9_./@+-]*) fail 3 "$site_dir holds characters a forced command cannot carry safely" ;; esac
    az_type=${az_key%%:*}
    az_base64=${az_key#*:}
    case $az_type in '' | *[!a-z0-9@.-]*) fail 2 "bad key type: $az_type" ;; esac
    case $az_base64 in '' | *[!A-Za-z0-9+/=]*) fail 2 "the key is not base64" ;; esac
    az_rrsync=$(command -v rrsync 2>/dev/null) || fail 3 "rrsync is not installed on the worker: install it (Debian's rsync package ships it; it runs on python3)"
    "$az_rrsync" -help 2>&1 | grep -q -- '-absolute' || fail 3 "$az_rrsync does not know -absolute (rrsync -help does not list it): upgrade rsync on the worker"
    az_new="$site_dir/.fd-authorized.new"
    [ -f "$az_new/worker.sh" ] || fail 2 "authorize needs the worker script in $az_new"
    [ "$(cksum < "$az_new/worker.sh" | cut -d ' ' -f 1,2)" = "$az_script" ] \
        || fail 3 "the worker script staged in $az_new is not the one sent (cksum differs): try again"
    mkdir -p "$state" || fail 3 "$(write_problem "$site_dir"): $state could not be created"
    write_dispatch "$az_rrsync" > "$az_new/dispatch" || fail 3 "$(write_problem "$site_dir"): the dispatcher could not be written"
    chmod 0755 "$az_new"
    chmod 0644 "$az_new/worker.sh" "$az_new/dispatch"
    rm -rf "$state/authorized.old"
    [ ! -d "$state/authorized" ] || mv "$state/authorized" "$state/authorized.old"
    mv "$az_new" "$state/authorized"
    rm -rf "$state/authorized.old"
    # The entry: this site's earlier one (by its comment) replaced, every other line kept.
    az_marker="frappe-deployer:$site_dir"
    az_entry="restrict,command=\"/bin/sh $state/authorized/dispatch\" $az_type $az_base64 $az_marker"
    az_ssh="$HOME/.ssh"
    mkdir -p "$az_ssh" && chmod 0700 "$az_ssh"
    az_keys="$az_ssh/authorized_keys"
    # Every other line is kept exactly (a line that cannot be read fails this, never drops keys);
    # the marker is matched at the end of a line, so another site whose path starts alike stays.
    az_copied=yes
    if [ -f "$az_keys" ]; then
        awk -v marker=" $az_marker" 'length($0) < length(marker) || substr($0, length($0) - length(marker) + 1) != marker' \
            "$az_keys" > "$az_keys.fd-new" 2>/dev/null || az_copied=no
    else
        : > "$az_keys.fd-new" 2>/dev/null || az_copied=no
    fi
    if [ $az_copied = no ] || ! printf '%s\n' "$az_entry" >> "$az_keys.fd-new" \
        || ! chmod 0600 "$az_keys.fd-new" || ! mv -f "$az_keys.fd-new" "$az_keys"; then
        rm -f "$az_keys.fd-new"
        fail 3 "$(write_problem "$az_ssh"): $az_keys could not be written; it is unchanged"
    fi
    printf 'authorized_entry=%s\n' "$az_entry"
    printf 'rrsync=%s\n' "$az_rrsync"
    printf 'site=%s\n' "$az_site"
}

status() {
    required site >/dev/null
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker"
    find_compose optional
    know_base
    st_current=$(live_release)
    printf 'current_release=%s\n' "$st_current"
    opt_digest=$st_current
    release_facts "$st_current" "$@"
    # shellcheck disable=SC2086
    printf 'worker_services=%s\n' "$(services_of $worker_files 2>/dev/null || true)"
    # One service:state pair per container of the live generation (running, exited, restarting...).
    st_live=$(live_project 2>/dev/null)
    printf 'live_generation=%s\n' "$st_live"
    st_project=${st_live:-$base_name}
    printf 'service_states=%s\n' "$(project_compose "$st_project" ps -a --format '{{.Service}}:{{.State}}' 2>/dev/null | sort | tr '\n' ' ' | sed 's/ *$//')"
    drain_facts 2>/dev/null
    # RQ's suspend flag (what FM's `fmx restart` sets while it drains): a suspended queue looks
    # healthy and runs nothing, on the main server and every worker. Read through a live worker.
    st_worker=$(running_in "$st_project" | tr ' ' '\n' | grep -v '^schedule$' | head -n 1)
    if [ -n "$st_worker" ] && st_flag=$(project_compose "$st_project" exec -T "$st_worker" /workspace/frappe-bench/env/bin/python -c "$suspended_py" 2>/dev/null); then
        printf 'queue_suspended=%s\n' "$st_flag"
    fi
    if [ -f "$state/lock" ]; then
        printf 'lock_holder=%s\n' "$(value holder "$state/lock")"
        printf 'lock_since=%s\n' "$(value since "$state/lock")"
        printf 'lock_alive=%s\n' "$( { alive "$(value session "$state/lock")" || switch_running; } && echo yes || echo no)"
    fi
    if [ -f "$state/last-sync" ]; then
        sed 's/^/last_/' "$state/last-sync"
    fi
    printf 'bad_releases=%s\n' "$(bad_releases)"
}

