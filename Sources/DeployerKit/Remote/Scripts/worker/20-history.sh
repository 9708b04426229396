# --- history: one line per sync or rollback that held the lock ------------------------------
# TAB-separated KEY=VALUE fields (the tool keeps tabs and newlines out of values). Only appended,
# under the lock; past 1 MiB the file becomes history.1 (one older file is kept).
append_history() {
    if [ -f "$state/history" ] && [ "$(wc -c < "$state/history")" -gt 1048576 ]; then
        mv -f "$state/history" "$state/history.1"
    fi
    { printf '%s\n' "$1" >> "$state/history"; } 2>/dev/null || {
        printf 'error: %s: the history could not be appended to\n' "$(write_problem "$state")" >&2
        return 1
    }
}

# The operation that holds the lock ended without releasing it (its tool was killed, or lost its
# connection), so it never appended its entry: the operation taking the lock over appends it, with
# what the lock recorded (when, by whom, the kind, the release live then) and the release live now.
append_unfinished() {
    au_live=$(live_release)
    au_since=$(value since "$state/lock")
    # (a lock taken by an older frappe-deployer records no kind)
    au_kind=$(value kind "$state/lock" | tr '\t' ' ')
    # (no value may hold a tab: the lock's values are lines, but a holder's user name could)
    append_history "$(printf 'at=%s\tkind=%s\tby=%s\tfrom=%s\tto=%s\tresult=unfinished\terror=%s' \
        "${au_since:-$(date +%s)}" "${au_kind:-unknown}" "$(value holder "$state/lock" | tr '\t' ' ')" \
        "$(value live "$state/lock")" "$au_live" \
        "it ended without releasing the lock (its tool was killed or lost its connection); ${au_live:-no release} was live when the next operation took the lock")"
}

# The releases marked bad, space-separated: the last switch to each from another release that
# ended (result ok, rolled-back or switch-failed; a refusal or an early failure says nothing about
# the release) failed its checks. A restart of the live release that fails (a worker config that
# does not work) marks nothing: that release runs on. A later switch to it that succeeds (--force)
# clears the mark.
bad_releases() {
    cat "$state/history.1" "$state/history" 2>/dev/null | awk -F '\t' '
        { from = ""; to = ""; result = ""
          for (i = 1; i <= NF; i++) {
              if (substr($i, 1, 5) == "from=") from = substr($i, 6)
              else if (substr($i, 1, 3) == "to=") to = substr($i, 4)
              else if (substr($i, 1, 7) == "result=") result = substr($i, 8)
          }
          if (to == "") next
          if (result == "ok") last[to] = result
          else if ((result == "rolled-back" || result == "switch-failed") && from != to) last[to] = result }
        END { for (release in last) if (last[release] != "ok") print release }' | sort | tr '\n' ' ' | sed 's/ *$//'
}

show_history() {
    sh_limit=${opt_limit:-100}
    case $sh_limit in '' | *[!0-9]*) fail 2 "history needs --limit=N (a number)" ;; esac
    cat "$state/history.1" "$state/history" 2>/dev/null | tail -n "$sh_limit" | awk '{ printf "entry_%d=%s\n", NR, $0 }'
    printf 'bad_releases=%s\n' "$(bad_releases)"
}

