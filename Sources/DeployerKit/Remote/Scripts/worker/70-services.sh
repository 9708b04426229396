# Seconds SERVICE gets to stop under RULES (PATTERN=SECONDS,...; first match wins; else 10).
stop_wait() {
    sw_service=$1
    sw_rules=$2
    sw_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas
    set -- $sw_rules
    IFS=$sw_ifs
    for sw_rule in "$@"; do
        # shellcheck disable=SC2254 # the pattern is a shell pattern on purpose
        case $sw_service in
            ${sw_rule%=*}) echo "${sw_rule##*=}"; return ;;
        esac
    done
    echo 10
}

# Stops PROJECT's running services (or SERVICE... of them) gracefully, each with its own wait
# under RULES, in parallel. (What a drain kills is recorded by drain; a stop here says nothing.)
stop_in() {
    si_project=$1
    si_rules=$2
    shift 2
    si_services=${*:-$(running_in "$si_project")}
    si_pids=""
    for si_service in $si_services; do
        project_compose "$si_project" stop -t "$(stop_wait "$si_service" "$si_rules")" "$si_service" >&2 &
        si_pids="$si_pids $!"
    done
    si_status=0
    for si_pid in $si_pids; do wait "$si_pid" || si_status=5; done
    return $si_status
}

# In place: stops every generation of the site and the site's own project, then removes their
# containers; the site's own project serves again from the next start.
stop_everything() {
    se_rules=$1
    se_status=0
    for se_project in $(labelled_projects) "$(base_project)"; do
        stop_in "$se_project" "$se_rules" || se_status=5
        project_compose "$se_project" down --remove-orphans -t 10 >&2 || se_status=5
        [ -f "$gen_dir/$se_project.yml" ] && rm -rf "$gen_dir/$se_project.yml" "$gen_dir/$se_project.view"
    done
    rm -f "$state/live"
    return $se_status
}

# Whether a TCP connection to HOST PORT opens within 3 s: 0 yes, 1 no, 2 nothing here can try.
tcp_open() {
    if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
        # shellcheck disable=SC2016 # expanded by bash, from its arguments
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    if command -v nc >/dev/null 2>&1; then
        nc -z -w 3 "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    return 2
}

# Checks DEPS (NAME@HOST:PORT,...) from this host; prints dep_NAME=ok|unreachable|unchecked.
check_dependencies() {
    [ -n "${1:-}" ] || return 0
    cd_status=0
    cd_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas
    set -- $1
    IFS=$cd_ifs
    for cd_dep in "$@"; do
        cd_name=${cd_dep%%@*}
        cd_address=${cd_dep#*@}
        cd_port=${cd_address##*:}
        cd_host=${cd_address%:*}
        cd_host=${cd_host#[}
        cd_host=${cd_host%]}
        # (a failing command in an if keeps `set -e` from ending the script)
        if tcp_open "$cd_host" "$cd_port"; then cd_result=0; else cd_result=$?; fi
        case $cd_result in
            0) printf 'dep_%s=ok\n' "$cd_name" ;;
            2)
                printf 'dep_%s=unchecked\n' "$cd_name"
                printf 'warning: cannot check %s (%s:%s) from the worker: it has none of bash, nc, python3\n' "$cd_name" "$cd_host" "$cd_port" >&2
                ;;
            *)
                printf 'dep_%s=unreachable\n' "$cd_name"
                printf 'error: %s %s:%s is not reachable from the worker (TCP): check the address in the worker config and the main server firewall\n' "$cd_name" "$cd_host" "$cd_port" >&2
                cd_status=5
                ;;
        esac
    done
    return $cd_status
}

# After SETTLE seconds: every SERVICE of PROJECT runs and has not restarted (a crash loop under a
# restart policy also "runs" between crashes). Prints running=.
check_running() {
    cr_project=$1
    cr_settle=$2
    shift 2
    [ "$cr_settle" -gt 0 ] 2>/dev/null && sleep "$cr_settle"
    cr_running=$(running_in "$cr_project") || cr_running=""
    printf 'running=%s\n' "$cr_running"
    # Every container of the project with its restart count, in two docker calls.
    cr_ids=$(containers_in "$cr_project" | sed 's/^[^:]*://')
    cr_restarts=""
    # (a container gone meanwhile fails the call, not the lines of the others)
    # shellcheck disable=SC2086 # container IDs are single words
    [ -z "$cr_ids" ] || cr_restarts=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.RestartCount}}' $cr_ids 2>/dev/null || true)
    for cr_service in "$@"; do
        case " $cr_running " in
            *" $cr_service "*) ;;
            *)
                printf "error: service %s is not running after start: see 'docker compose logs %s' in %s\n" "$cr_service" "$cr_service" "$site_dir" >&2
                return 5
                ;;
        esac
        cr_count=$(printf '%s\n' "$cr_restarts" | awk -v s="$cr_service" 'BEGIN { n = 0 } $1 == s && $2 + 0 > n { n = $2 + 0 } END { print n }')
        if [ "$cr_count" -gt 0 ]; then
            printf "error: service %s restarted %s times within %s s of starting (crash loop): see 'docker compose logs %s' in %s\n" \
                "$cr_service" "$cr_count" "$cr_settle" "$cr_service" "$site_dir" >&2
            return 5
        fi
    done
}

# In place: starts SERVICE... of the site's own project, checks DEPS and them. Prints up_ms=.
start_services() {
    sv_settle=$1
    sv_deps=$2
    shift 2
    # --no-deps: schedule's dependencies (Redis) run on the main server, never here.
    # shellcheck disable=SC2086
    compose $all_files up -d --no-deps "$@" >&2 || {
        printf 'error: docker compose up failed in %s\n' "$site_dir" >&2
        return 5
    }
    printf 'up_ms=%s\n' "$(now_ms)"
    sv_deps_ok=0
    check_dependencies "$sv_deps" || sv_deps_ok=5
    check_running "$(base_project)" "$sv_settle" "$@" || return 5
    return $sv_deps_ok
}

