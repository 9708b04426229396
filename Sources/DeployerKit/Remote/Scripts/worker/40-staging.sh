# --- staging ---------------------------------------------------------------------------------

digest() {
    dg_release=$(required release)
    [ -d "$workspace/$dg_release" ] || fail 4 "release $workspace/$dg_release is not on the worker"
    printf 'digest=%s\n' "$(release_digest "$workspace/$dg_release" "$@")"
}

stage_prepare() {
    sp_stage=$(required stage)
    case ${sp_stage##*/} in
        .fd-staging-*) ;;
        *) fail 2 "not a staging directory: $sp_stage" ;;
    esac
    mkdir -p "$workspace/deployment-data" "$state"
    # What syncs that did not finish left behind; the lock guarantees none of them still runs. The
    # old copy of a swapped release stays while its generation drains (the drain removes it).
    find_compose optional
    repair_live
    sp_draining=$(draining_projects)
    sp_left=""
    for sp_leftover in "$workspace"/.fd-staging-* "$workspace"/.fd-old-* "$workspace"/.fd-failed-* "$workspace"/.fd-prune-*; do
        case ${sp_leftover##*/} in .fd-old-*) [ -n "$sp_draining" ] && continue ;; esac
        [ -e "$sp_leftover" ] || continue
        if rm -rf "$sp_leftover" 2>/dev/null; then
            printf 'removed=%s\n' "${sp_leftover##*/}"
        else
            sp_left="$sp_left ${sp_leftover##*/}"
        fi
    done
    printf 'leftovers=%s\n' "${sp_left# }"
    mkdir -p "$sp_stage"
    printf 'prepared=yes\n'
}

# Replaces LINK with a symlink to TARGET in one rename, so no reader sees it missing.
relink() {
    rl_target=$1
    rl_link=$2
    if [ -d "$rl_link" ] && [ ! -L "$rl_link" ]; then
        printf 'error: %s is a directory, not a link: move it away first\n' "$rl_link" >&2
        return 4
    fi
    rl_tmp="$rl_link.fd-new.$$"
    rm -f "$rl_tmp"
    ln -s "$rl_target" "$rl_tmp" || return 4
    if ! mv -T "$rl_tmp" "$rl_link" 2>/dev/null; then
        # mv without -T (non-GNU): fall back to replacing the link in two steps.
        rm -f "$rl_tmp"
        ln -sfn "$rl_target" "$rl_link" || return 4
    fi
}

# Gives release directory DIR its own copy of the worker configs as deployment-data holds them
# now, and links the release's config files to that copy (`sites/common_site_config.json ->
# common_site_config.workers.json`, likewise the site's): a release keeps the configuration it
# went live with, so the generation that runs it, and a rollback to it, read that one, whatever
# later syncs bring into deployment-data. The copies keep the files' times (their fingerprint).
link_configs() {
    lc_site=$1
    lc_dir=$2
    lc_data="$workspace/deployment-data"
    for lc_file in "$lc_data/sites/common_site_config.workers.json" "$lc_data/sites/$lc_site/site_config.workers.json"; do
        [ -f "$lc_file" ] || fail 4 "$lc_file is missing on the worker: run remote-worker enable on the main server"
    done
    mkdir -p "$lc_data/sites/$lc_site/private/files" "$lc_data/sites/$lc_site/public/files" "$lc_data/config/pids" "$lc_dir/sites/$lc_site"
    keep_config "$lc_data/sites/common_site_config.workers.json" "$lc_dir/sites/common_site_config.workers.json"
    keep_config "$lc_data/sites/$lc_site/site_config.workers.json" "$lc_dir/sites/$lc_site/site_config.workers.json"
    relink "common_site_config.workers.json" "$lc_dir/sites/common_site_config.json" || exit 4
    relink "site_config.workers.json" "$lc_dir/sites/$lc_site/site_config.json" || exit 4
}

# Copies worker config SOURCE to COPY in one rename (mode and time kept), so no reader sees half.
keep_config() {
    kc_tmp="$2.fd-new.$$"
    if ! { cp -p "$1" "$kc_tmp" && mv -f "$kc_tmp" "$2"; } 2>/dev/null; then
        rm -f "$kc_tmp"
        fail 4 "$(write_problem "${2%/*}"): the worker config $2 could not be written"
    fi
}

# The fingerprint of release directory DIR's own worker configs (size:mtime of each, the two
# files in the order link_configs makes them); empty when it has none (a release linked before
# releases kept their own).
config_fingerprint() {
    cf_common="$1/sites/common_site_config.workers.json"
    cf_site="$1/sites/$2/site_config.workers.json"
    [ -f "$cf_common" ] && [ -f "$cf_site" ] || return 0
    stat -c '%s:%Y' "$cf_common" "$cf_site" | tr '\n' ' ' | sed 's/ *$//'
}

# The live release's directory is gone (a crash between the swap's two renames, or removed by
# hand): the copy set aside comes back under its name before any leftover is removed, since the
# running generation's code is that copy. With no such copy, live_missing= says so, and the
# staged copy takes the name without a swap.
repair_live() {
    rp_live=$(live_release)
    [ -n "$rp_live" ] && [ ! -d "$workspace/$rp_live" ] || return 0
    for rp_aside in "$workspace/.fd-old-$rp_live"-* "$workspace/.fd-old-$rp_live".*; do
        if [ -d "$rp_aside" ] && mv "$rp_aside" "$workspace/$rp_live"; then
            printf 'repaired=%s\n' "$rp_live"
            return 0
        fi
    done
    printf 'live_missing=%s\n' "$rp_live"
}

stage_activate() {
    sa_site=$(required site)
    sa_release=$(required release)
    sa_stage=$(required stage)
    [ -d "$sa_stage" ] || fail 4 "staged release $sa_stage is not on the worker: the transfer did not complete"
    link_configs "$sa_site" "$sa_stage"
    # The copy's digest is taken by the switch during its settle time (copy_digest), with the
    # release's excludes recorded here, one a line (none holds a newline).
    mkdir -p "$state" && record "$state/digest.excludes" "$@" || exit 4
    sa_live=$(live_release)
    if [ "$sa_release" = "$sa_live" ] && [ -d "$workspace/$sa_live" ]; then
        # The live release cannot be replaced by a rename while it runs: the switch swaps it in.
        printf 'swap=yes\n'
        return
    fi
    if [ -e "$workspace/$sa_release" ]; then
        # An older copy of this release that is not live: replaced by the fresh one.
        mv "$workspace/$sa_release" "$workspace/.fd-old-$sa_release.$$"
        rm -rf "$workspace/.fd-old-$sa_release.$$"
    fi
    mv "$sa_stage" "$workspace/$sa_release"
    printf 'swap=no\n'
}

# The digest of release R's copy in the workspace, with the excludes stage-activate recorded;
# fails when they are not recorded.
copy_digest() {
    cd_root="$workspace/$1"
    [ -f "$state/digest.excludes" ] || return 1
    set --
    while IFS= read -r cd_pattern; do
        [ -z "$cd_pattern" ] || set -- "$@" "$cd_pattern"
    done < "$state/digest.excludes"
    release_digest "$cd_root" "$@"
}

unstage() {
    us_stage=$(required stage)
    case ${us_stage##*/} in
        .fd-staging-*) rm -rf "$us_stage" ;;
        *) fail 2 "not a staging directory: $us_stage" ;;
    esac
    printf 'unstaged=yes\n'
}

