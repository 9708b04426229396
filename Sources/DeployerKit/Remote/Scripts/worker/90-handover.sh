# Tells generation PROJECT to stop, at once: SIGTERM to each of its running containers (what
# `docker stop` sends first; RQ's warm shutdown: no new job, the running one finishes). Prints
# SERVICE:CONTAINER per line, for drain.
tell_to_stop() {
    for ts_entry in $(containers_in "$1" --filter status=running); do
        docker kill --signal TERM "${ts_entry#*:}" >/dev/null 2>&1 && printf '%s\n' "$ts_entry"
    done
}

# Waits, detached, while generation PROJECT of RELEASE drains: each told container (SERVICE:ID
# in TOLD) gets its wait under RULES to exit, and is killed when it runs out (never a second
# SIGTERM: RQ reads that as a cold shutdown that kills the job). Then removes the generation,
# records what was killed, and finishes what waited for it: the frappe-bench flip (FLIP, when it
# read through the link), and the old copy of a swapped release (ASIDE). Jobs its idle workers
# lost to RQ's warm shutdown go back on their queues through the live generation's RECOVER service.
drain() {
    dr_project=$1
    dr_release=$2
    dr_rules=$3
    dr_flip=$4
    dr_aside=$5
    dr_recover=$6
    dr_told=$7
    dr_file="$gen_dir/$dr_project.drain"
    dr_since=$(value since "$dr_file")
    [ -n "$dr_recover" ] && recover_detached "$(value project "$state/live")" "$dr_recover" 3
    dr_pids=""
    for dr_entry in $dr_told; do
        (
            dr_service=${dr_entry%%:*}
            dr_id=${dr_entry#*:}
            if ! timeout "$(stop_wait "$dr_service" "$dr_rules")" docker wait "$dr_id" >/dev/null 2>&1; then
                docker kill "$dr_id" >/dev/null 2>&1 && echo "$dr_service" >> "$dr_file.killed"
            fi
        ) &
        dr_pids="$dr_pids $!"
    done
    for dr_pid in $dr_pids; do wait "$dr_pid"; done
    dr_killed=$(sort -u "$dr_file.killed" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
    rm -f "$dr_file.killed"
    remove_generation "$dr_project"
    if [ -n "$dr_flip" ] && [ "$(value release "$state/live")" = "$dr_flip" ]; then
        relink "$dr_flip" "$workspace/frappe-bench"
    fi
    [ -n "$dr_aside" ] && rm -rf "$dr_aside"
    record "$dr_file" "release=$dr_release" "since=$dr_since" "state=done" "done=$(date +%s)" "killed=$dr_killed"
}

# Undoes a handover that failed with REASON: the new generation stops (gracefully: a job it took
# finishes) and goes; the old one never stopped, and its scheduler starts again. Uses
# do_handover's variables (it is part of it). Returns 7 (the old release serves) or 8 (none did).
undo_handover() {
    printf 'reason=%s\n' "$1"
    printf 'error: %s did not start; %s\n' "$dh_release" "${dh_old:+the old generation keeps serving}" >&2
    stop_in "$dh_project" "$dh_stop"
    remove_generation "$dh_project"
    if [ -n "$dh_aside" ]; then
        rm -rf "$workspace/.fd-failed-$dh_release"
        mv "$workspace/$dh_release" "$workspace/.fd-failed-$dh_release"
        mv "$dh_aside" "$workspace/$dh_release"
    fi
    for dh_each in $dh_old_schedules; do project_compose "$dh_each" start schedule >&2; done
    # The new workers' own warm shutdown may have lost a job: the old generation puts it back.
    if [ -n "$dh_old" ]; then
        dh_recover=$(running_in "$dh_old" | tr ' ' '\n' | grep -v '^schedule$' | head -n 1)
        [ -n "$dh_recover" ] && recover_detached "$dh_old" "$dh_recover" 1
    fi
    if [ -z "$dh_old" ]; then
        printf 'running=\nrolled_back=none\n'
        return 8
    fi
    printf 'running=%s\n' "$(running_in "$dh_old")"
    printf 'rolled_back=%s\n' "$dh_old_release"
    printf 'downtime_ms=0\n'
    return 7
}

# The handover, run detached by `switch`. Writes key=value facts to stdout (the result file) and
# its errors to stderr (the log). Never exits early: every path ends with a return code.
do_handover() {
    set +e
    dh_release=${opt_release:?}
    dh_project=${opt_project:?}
    dh_stop=${opt_stop:?}
    dh_settle=${opt_settle:?}
    dh_old=$(live_project)
    dh_olds=$(serving_projects | grep -vx "$dh_project" | tr '\n' ' ')
    dh_old_release=$(value release "$state/live")
    [ -n "$dh_old_release" ] && [ "$dh_old" = "$(value project "$state/live")" ] || dh_old_release=$(readlink "$workspace/frappe-bench" 2>/dev/null)
    printf 'previous=%s\n' "$dh_old_release"
    dh_workers=""
    dh_schedule=no
    for dh_service in "$@"; do
        if [ "$dh_service" = schedule ]; then dh_schedule=yes; else dh_workers="$dh_workers $dh_service"; fi
    done
    dh_workers=${dh_workers# }
    dh_aside=""
    if [ -n "${opt_stage:-}" ]; then
        # Same release name as the live one: the fresh copy takes the name; the old generation
        # keeps its mount of the old copy, which goes when it has drained.
        dh_aside="$workspace/.fd-old-$dh_release-$dh_project"
        if ! { mv "$workspace/$dh_release" "$dh_aside" && mv "$opt_stage" "$workspace/$dh_release"; }; then
            printf 'reason=the staged copy of %s could not be put in place\n' "$dh_release"
            [ -d "$dh_aside" ] && [ ! -e "$workspace/$dh_release" ] && mv "$dh_aside" "$workspace/$dh_release"
            return 5
        fi
    fi
    mkdir -p "$workspace/deployment-data/config/pids"
    dh_failed=""
    if ! write_generation "$dh_project" "$dh_release" "$@"; then
        dh_failed="$(write_problem "$gen_dir"): the generation's override could not be written"
    fi
    # 1. The new generation's workers start beside the old ones, which keep taking jobs.
    # shellcheck disable=SC2086 # service names are single words
    if [ -z "$dh_failed" ] && [ -n "$dh_workers" ] && ! project_compose "$dh_project" up -d --no-deps $dh_workers >&2; then
        dh_failed="docker compose up failed in $site_dir"
    fi
    dh_up=$(now_ms)
    if [ -z "$dh_failed" ] && ! check_dependencies "${opt_deps:-}" 2>> "$state/switch.checks"; then
        dh_failed=$(sed -n 's/^error: //p' "$state/switch.checks" | tail -n 1)
        [ -n "$dh_failed" ] || dh_failed="$(write_problem "$state"): the dependency check's output was lost"
    fi
    # 2. One scheduler at any moment: the old one stops before the new one starts.
    dh_old_schedules=""
    dh_schedule_gap=0
    if [ -z "$dh_failed" ] && [ $dh_schedule = yes ]; then
        for dh_each in $dh_olds; do
            case " $(running_in "$dh_each") " in
                *" schedule "*)
                    dh_old_schedules="$dh_old_schedules $dh_each"
                    stop_in "$dh_each" "$dh_stop" schedule
                    ;;
            esac
        done
        dh_schedule_stopped=$(now_ms)
        if ! project_compose "$dh_project" up -d --no-deps schedule >&2; then
            dh_failed="docker compose up of schedule failed in $site_dir"
        fi
        dh_schedule_gap=$(( $(now_ms) - dh_schedule_stopped ))
    fi
    # --verified=MAIN without the copy's digest: the copy in place is digested during the settle
    # time (once the services have started, so it does not slow their start), and recorded with
    # MAIN once the new generation runs.
    dh_digest_pid=""
    if [ -z "$dh_failed" ] && [ -n "${opt_verified:-}" ] && [ "${opt_verified#*:}" = "$opt_verified" ]; then
        copy_digest "$dh_release" > "$state/copy.digest" &
        dh_digest_pid=$!
    fi
    # 3. The new generation must stay up for SETTLE seconds, without restarting.
    if [ -z "$dh_failed" ]; then
        if ! check_running "$dh_project" "$dh_settle" "$@" > "$state/switch.start" 2>> "$state/switch.checks"; then
            dh_failed=$(sed -n 's/^error: //p' "$state/switch.checks" | tail -n 1)
            [ -n "$dh_failed" ] || dh_failed="$(write_problem "$state"): the check of the started services was lost"
        elif [ -z "$(value running "$state/switch.start")" ]; then
            dh_failed="$(write_problem "$state"): the check of the started services could not be recorded"
        fi
    fi
    cat "$state/switch.checks" >&2 2>/dev/null
    rm -f "$state/switch.checks"
    # 4. The new generation is recorded live (every record written and checked first: a full
    # disk undoes the handover like a failed check, so the records never disagree with what
    # runs), and then the old one is told to stop.
    if [ -z "$dh_failed" ]; then
        dh_records="$state/live"
        if ! prepare_record "$state/live" "project=$dh_project" "release=$dh_release" "since=$(date +%s)"; then
            dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        dh_verified=${opt_verified:-}
        if [ -n "$dh_digest_pid" ]; then
            # No digest (it failed): no verified record, so the next sync stages afresh.
            dh_copy=""
            wait "$dh_digest_pid" && dh_copy=$(cat "$state/copy.digest" 2>/dev/null)
            dh_digest_pid=""
            dh_verified=${dh_copy:+$opt_verified:$dh_copy}
        fi
        if [ -z "$dh_failed" ] && [ -n "$dh_verified" ]; then
            dh_records="$dh_records $state/verified"
            prepare_record "$state/verified" "release=$dh_release" "main=${dh_verified%%:*}" "copy=${dh_verified#*:}" \
                || dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        if [ -z "$dh_failed" ] && [ -n "$dh_old_release" ] && [ "$dh_old_release" != "$dh_release" ]; then
            dh_records="$dh_records $state/releases"
            prepare_record "$state/releases" "previous=$dh_old_release" \
                || dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        # The drains, recorded before the lock is released, so no later sync starts a third generation.
        for dh_each in $dh_olds; do
            [ -z "$dh_failed" ] || break
            dh_each_release=$dh_old_release
            [ -f "$gen_dir/$dh_each.yml" ] && dh_each_release=$(sed -n 's/^ *frappe-deployer.release: "\(.*\)"$/\1/p' "$gen_dir/$dh_each.yml" | head -n 1)
            dh_records="$dh_records $gen_dir/$dh_each.drain"
            prepare_record "$gen_dir/$dh_each.drain" "release=${dh_each_release:--}" "since=$(date +%s)" "state=draining" \
                || dh_failed="$(write_problem "$gen_dir"): the switch could not be recorded"
        done
        if [ -n "$dh_failed" ]; then
            for dh_each in $dh_records; do rm -f "$dh_each.new"; done
        fi
    fi
    # A digest still running (the handover failed before step 4) reads the copy the undo may move.
    [ -z "$dh_digest_pid" ] || wait "$dh_digest_pid"
    rm -f "$state/copy.digest"
    if [ -n "$dh_failed" ]; then
        undo_handover "$dh_failed"
        return $?
    fi
    for dh_each in $dh_records; do mv -f "$dh_each.new" "$dh_each"; done
    printf 'running=%s\n' "$(value running "$state/switch.start")"
    dh_flip=""
    dh_base=$(base_project)
    dh_base_serves=no
    case " $dh_olds " in
        *" $dh_base "*)
            for dh_service in $(running_in "$dh_base"); do
                case " $* " in *" $dh_service "*) dh_base_serves=yes ;; esac
            done
            ;;
    esac
    if [ $dh_base_serves = yes ]; then
        # Old workers of the site's own project read through frappe-bench: the flip waits until
        # they have drained, so their running jobs never read the new release.
        dh_flip=$dh_release
        printf 'flip=deferred\n'
    else
        relink "$dh_release" "$workspace/frappe-bench" || printf 'warning: frappe-bench could not be pointed at %s\n' "$dh_release" >&2
        printf 'flip=done\n'
    fi
    dh_telling=$(now_ms)
    # Jobs never waited for a worker: the new generation was up before the old was told to stop.
    printf 'downtime_ms=%s\n' "$(( dh_up > dh_telling ? dh_up - dh_telling : 0 ))"
    printf 'scheduler_gap_ms=%s\n' "$dh_schedule_gap"
    printf 'live=%s\n' "$dh_release"
    dh_n=0
    for dh_each in $dh_olds; do
        dh_n=$((dh_n + 1))
        dh_each_release=$dh_old_release
        [ -f "$gen_dir/$dh_each.yml" ] && dh_each_release=$(sed -n 's/^ *frappe-deployer.release: "\(.*\)"$/\1/p' "$gen_dir/$dh_each.yml" | head -n 1)
        printf 'draining_%s=%s %s %s\n' "$dh_n" "$dh_each" "${dh_each_release:--}" "$(running_in "$dh_each" | tr ' ' ',' | sed 's/^$/-/')"
        # Told now, before this returns: from here on, the old workers take no new job (its drain
        # record went live with the others above).
        dh_told=$(tell_to_stop "$dh_each" | tr '\n' ' ')
        dh_each_aside=""
        [ "$dh_each" = "$dh_old" ] && dh_each_aside=$dh_aside
        dh_each_flip=""
        [ "$dh_each" = "$dh_base" ] && dh_each_flip=$dh_flip
        (
            trap '' HUP INT TERM PIPE
            drain "$dh_each" "${dh_each_release:--}" "$dh_stop" "$dh_each_flip" "$dh_each_aside" "${dh_workers%% *}" "$dh_told" 2>> "$state/drain.log"
        ) < /dev/null > /dev/null 2>&1 &
    done
    if [ -n "$dh_aside" ] && [ -z "$dh_old" ]; then rm -rf "$dh_aside"; fi
    # Leftovers of generations that no longer run and do not drain.
    for dh_leftover in $(labelled_projects); do
        case " $dh_project $dh_olds " in *" $dh_leftover "*) continue ;; esac
        [ -n "$(running_in "$dh_leftover")" ] && continue
        draining_projects | grep -qx "$dh_leftover" || remove_generation "$dh_leftover"
    done
    return 0
}

switch() {
    required site >/dev/null
    sw_release=$(required release)
    sw_project=$(required project)
    required stop >/dev/null
    required settle >/dev/null
    case $sw_project in
        '' | *[!a-z0-9_-]*) fail 2 "not a generation name: $sw_project" ;;
    esac
    [ $# -gt 0 ] || fail 2 "switch needs the services to start after --"
    find_compose
    know_base
    mkdir -p "$state" "$gen_dir"
    [ -d "$workspace/$sw_release" ] || fail 4 "release $workspace/$sw_release is not on the worker"
    if sw_draining=$(draining_projects) && [ -n "$sw_draining" ]; then
        fail 4 "a generation is still draining ($(echo "$sw_draining" | tr '\n' ' ')): a third is not started"
    fi
    # The result and the log are written over space reserved now (1<>, no truncation), so they
    # reach the tool even if the disk fills up during the switch; without that space, nothing starts.
    if ! reserve "$state/switch.result" 65536 || ! reserve "$state/switch.log" 65536; then
        rm -f "$state/switch.result" "$state/switch.log"
        fail 4 "$(write_problem "$state"): the switch's result could not be reserved; nothing was switched, the running release serves on"
    fi
    # The copy about to change (or be replaced) is no longer the one verified.
    rm -f "$state/verified"
    # Detached from this connection: a dropped link or an interrupted client cannot stop it half-way.
    (
        trap '' HUP INT TERM PIPE
        {
            do_handover "$@"
            echo "exit=$?"
        } 1<> "$state/switch.result" 2<> "$state/switch.log"
    ) < /dev/null > /dev/null 2>&1 &
    sw_job=$!
    printf '%s:%s\n' "$sw_job" "$(proc_start "$sw_job")" > "$state/switch.pid" 2>/dev/null || true
    wait "$sw_job" || true
    rm -f "$state/switch.pid"
    grep -v -e '^exit=' -e '^$' "$state/switch.result" || true
    sw_code=$(value exit "$state/switch.result")
    if [ "${sw_code:-8}" != 0 ]; then
        grep '^error: ' "$state/switch.log" >&2 || true
        exit "${sw_code:-8}"
    fi
}

