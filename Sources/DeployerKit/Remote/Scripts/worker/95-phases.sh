prune() {
    pr_keep=$(required keep)
    [ "$pr_keep" -ge 1 ] 2>/dev/null || fail 2 "keep must be a number of at least 1: $pr_keep"
    pr_live=$(live_release)
    pr_previous=$(value previous "$state/releases")
    # Releases a generation still runs (live, or draining) are never removed.
    pr_used=" $(value release "$state/live") "
    for pr_project in $(draining_projects); do pr_used="$pr_used$(value release "$gen_dir/$pr_project.drain") "; done
    pr_kept=0
    pr_pruned=""
    pr_failed=""
    for pr_release in $(release_dirs | sort -r); do
        pr_kept=$((pr_kept + 1))
        if [ $pr_kept -le "$pr_keep" ] || [ "$pr_release" = "$pr_live" ] || [ "$pr_release" = "$pr_previous" ]; then
            continue
        fi
        case $pr_used in *" $pr_release "*) continue ;; esac
        # Out of the release list in one rename, then removed: a removal that fails part-way
        # leaves a .fd-prune-* directory, which the next staging finishes off, never half a
        # release among the releases. The new release runs either way: a failure is a warning.
        pr_aside="$workspace/.fd-prune-$pr_release.$$"
        if ! mv "$workspace/$pr_release" "$pr_aside" 2>/dev/null; then
            pr_failed="$pr_failed $pr_release"
        elif pr_error=$(rm -rf "$pr_aside" 2>&1); then
            pr_pruned="$pr_pruned $pr_release"
        else
            pr_failed="$pr_failed $pr_release"
            printf 'prune_error=%s\n' "$(printf '%s\n' "$pr_error" | head -n 1)"
        fi
    done
    printf 'pruned=%s\n' "${pr_pruned# }"
    printf 'prune_failed=%s\n' "${pr_failed# }"
}

stop() {
    st_rules=$(required stop)
    find_compose
    know_base
    mkdir -p "$workspace/deployment-data" "$state"
    # The live release is about to be rewritten in place: it is no longer a verified copy.
    rm -f "$state/verified"
    printf 'stopping_ms=%s\n' "$(now_ms)"
    stop_everything "$st_rules" || fail 5 "stopping the worker services failed in $site_dir"
    printf 'stopped=yes\n'
}

activate() {
    ac_site=$(required site)
    ac_release=$(required release)
    ac_dir="$workspace/$ac_release"
    [ -d "$ac_dir" ] || fail 4 "release $ac_dir is not on the worker: the transfer did not complete"
    link_configs "$ac_site" "$ac_dir"
    relink "$ac_release" "$workspace/frappe-bench" || exit 4
    mkdir -p "$workspace/frappe-bench/config/pids"
    printf 'live_release=%s\n' "$ac_release"
}

drains() {
    find_compose
    drain_facts
}

start() {
    sr_settle=$(required settle)
    [ $# -gt 0 ] || fail 2 "start needs the services to start after --"
    find_compose
    know_base
    start_services "$sr_settle" "${opt_deps:-}" "$@" || exit 5
    # Jobs the stopped workers lost to RQ's warm shutdown go back on their queues.
    sr_worker=$(printf '%s\n' "$@" | grep -v '^schedule$' | head -n 1)
    [ -n "$sr_worker" ] && recover_detached "$(base_project)" "$sr_worker" 0
    return 0
}

case $phase in
    preflight) preflight "$@" ;;
    lock) lock ;;
    unlock) unlock "$@" ;;
    history) show_history ;;
    authorize) authorize ;;
    jobs) jobs ;;
    status) status "$@" ;;
    digest) digest "$@" ;;
    stage-prepare) stage_prepare ;;
    stage-activate) stage_activate "$@" ;;
    unstage) unstage ;;
    switch) switch "$@" ;;
    prune) prune ;;
    stop) stop ;;
    activate) activate ;;
    start) start "$@" ;;
    drains) drains ;;
    *) fail 2 "unknown phase: $phase" ;;
esac
