# --- services: generations -----------------------------------------------------------------
#
# A generation is a Compose project that runs the site's worker services for one release, pinned
# to it: its containers see WORKSPACE/RELEASE at /workspace/frappe-bench (and deployment-data
# beside it) through an override file written here, so flipping frappe-bench never reaches them.
# The override replaces each service's /workspace mount (Compose merges volumes by target) with a
# view holding only those two, names the containers for the generation (FM names them), and
# labels them. The site's own project (FM's, reading through frappe-bench) is the generation that
# no switch of this tool started. A handover starts the new generation, checks it, hands the
# scheduler over, and only then tells the old one to stop: it drains on its own release, detached.

gen_dir="$state/generations"

# The site's own Compose project name (as compose derives it from the site dir): read once per
# run by know_base, which the phases that need it call first (a `compose config` each time would
# parse both files again for every project looked at).
base_project() {
    if [ -n "$base_name" ]; then
        printf '%s\n' "$base_name"
        return
    fi
    # shellcheck disable=SC2086
    compose $all_files config 2>/dev/null | project_name
}

# The project name in a `compose config` on standard input, else the one compose derives from
# the site dir's name.
project_name() {
    pn_name=$(sed -n 's/^name: *//p' | head -n 1)
    [ -n "$pn_name" ] || pn_name=$(basename -- "$site_dir" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')
    printf '%s\n' "$pn_name"
}

know_base() {
    base_name=$(base_project)
}

# Runs Compose for generation PROJECT: with its override, or the site's own project.
project_compose() {
    pc_project=$1
    shift
    if [ -f "$gen_dir/$pc_project.yml" ]; then
        # shellcheck disable=SC2086
        compose -p "$pc_project" $all_files -f "$gen_dir/$pc_project.yml" "$@"
    else
        # shellcheck disable=SC2086
        compose $all_files "$@"
    fi
}

# The services of PROJECT with a running container, one line, space-separated, sorted. Read from
# the containers' Compose labels in one docker call (a `compose ps` parses both compose files
# again, about 90 ms, and a check asks this several times).
running_in() {
    ri_out=$(docker ps --filter "label=com.docker.compose.project=$1" --filter status=running \
        --format '{{.Label "com.docker.compose.service"}}' 2>/dev/null) || return 1
    printf '%s\n' "$ri_out" | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ *$//'
}

# The containers of PROJECT, running ones (or, with -a, every one), as SERVICE:ID lines (full
# IDs), from their Compose labels in one docker call: a `compose ps` per service parses both
# compose files each time (about 90 ms). One-off containers (`compose run`) are not the services.
containers_in() {
    ci_project=$1
    shift
    docker ps "$@" --no-trunc --filter "label=com.docker.compose.project=$ci_project" --filter label=com.docker.compose.oneoff=False \
        --format '{{.Label "com.docker.compose.service"}}:{{.ID}}' 2>/dev/null
}

# The generation serving now: the recorded one while it runs, else the site's own project while
# it runs; empty when no service of the site runs.
live_project() {
    lp_project=$(value project "$state/live")
    if [ -n "$lp_project" ] && [ -n "$(running_in "$lp_project")" ]; then
        echo "$lp_project"
    elif [ -n "$(running_in "$(base_project)")" ]; then
        base_project
    fi
}

# Generations of this site that have containers (running or not), by label.
labelled_projects() {
    docker ps -a --filter "label=frappe-deployer.site-dir=$site_dir" --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null | sort -u
}

# The generations still draining: told to stop and still running containers, one per line. (A
# record left "draining" by a drainer that died, with nothing running, is not.)
draining_projects() {
    for dp_file in "$gen_dir"/*.drain; do
        [ -f "$dp_file" ] || continue
        dp_project=$(basename -- "$dp_file" .drain)
        if [ "$(value state "$dp_file")" = draining ] && [ -n "$(running_in "$dp_project")" ]; then echo "$dp_project"; fi
    done
    return 0
}

# The projects of this site that run services and do not drain: the live generation, and any
# other (services an operator started in the site's own project, a generation left running).
serving_projects() {
    sp_draining=" $(draining_projects | tr '\n' ' ') "
    for sp_project in $(labelled_projects) "$(base_project)"; do
        case $sp_draining in *" $sp_project "*) continue ;; esac
        [ -n "$(running_in "$sp_project")" ] && echo "$sp_project"
    done | sort -u
}

# The services running in the serving projects, one line, space-separated, sorted, each once.
serving_services() {
    for ss_project in $(serving_projects); do running_in "$ss_project" | tr ' ' '\n'; done | sort -u | tr '\n' ' ' | sed 's/ *$//'
}

# The release serving now: the one recorded live by the last handover, else frappe-bench's.
live_release() {
    lr_release=$(value release "$state/live")
    [ -n "$lr_release" ] || lr_release=$(readlink "$workspace/frappe-bench" 2>/dev/null || true)
    printf '%s\n' "$lr_release"
}

# drain_N= facts: PROJECT RELEASE SINCE STATE RUNNING KILLED DONE (lists comma-separated, - for none).
drain_facts() {
    df_n=0
    for df_file in "$gen_dir"/*.drain; do
        [ -f "$df_file" ] || continue
        df_n=$((df_n + 1))
        df_project=$(basename -- "$df_file" .drain)
        df_running=$(running_in "$df_project" | tr ' ' ',')
        printf 'drain_%s=%s %s %s %s %s %s %s\n' "$df_n" "$df_project" "$(value release "$df_file")" "$(value since "$df_file")" \
            "$(value state "$df_file")" "${df_running:--}" "$(value killed "$df_file" | sed 's/^$/-/')" "$(value "done" "$df_file" | sed 's/^$/-/')"
    done
}

