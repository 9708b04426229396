# Writes a key=value record FILE from its lines, atomically.
record() {
    prepare_record "$@" && mv -f "$1.new" "$1"
}

# Writes FILE.new with LINE... and checks it holds them (a full disk can leave it empty or
# short without a failing exit); on failure removes it, says so on stderr and returns 1.
# FILE.new goes live with `mv -f FILE.new FILE` (a rename needs no space).
prepare_record() {
    pc_file=$1
    shift
    if { printf '%s\n' "$@" > "$pc_file.new"; } 2>/dev/null && [ "$(cat "$pc_file.new" 2>/dev/null)" = "$(printf '%s\n' "$@")" ]; then
        return 0
    fi
    rm -f "$pc_file.new"
    printf 'error: %s: %s could not be recorded\n' "$(write_problem "${pc_file%/*}")" "${pc_file##*/}" >&2
    return 1
}

# Why a write in DIR failed, in words: the disk is full (under 64 KiB free), or DIR is not writable.
write_problem() {
    wp_free=$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [ "${wp_free:-64}" -lt 64 ] 2>/dev/null; then
        printf "the worker's disk is full at %s" "$1"
    else
        printf '%s is not writable by %s' "$1" "$(id -un)"
    fi
}

# Fills FILE with SIZE newlines and checks they are all there: space the switch's result and log
# overwrite in place (1<>), so they are written even if the disk fills up during the switch.
reserve() {
    rs_size=$2
    { head -c "$rs_size" /dev/zero | tr '\0' '\n' > "$1"; } 2>/dev/null && [ "$(wc -c < "$1")" -eq "$rs_size" ]
}

# "..." for YAML, with backslashes and double quotes escaped.
yaml_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}

# Writes generation PROJECT of RELEASE: the view (mount points only) and the override that pins
# SERVICE... to the release.
write_generation() {
    wg_project=$1
    wg_release=$2
    shift 2
    mkdir -p "$gen_dir/$wg_project.view/frappe-bench" "$gen_dir/$wg_project.view/deployment-data" 2>/dev/null || return 1
    wg_text=$(
        printf 'services:\n'
        for wg_service in "$@"; do
            printf '  %s:\n' "$wg_service"
            printf '    container_name: %s\n' "$wg_project-$wg_service"
            printf '    labels:\n'
            printf '      frappe-deployer.site-dir: %s\n' "$(yaml_quote "$site_dir")"
            printf '      frappe-deployer.release: %s\n' "$(yaml_quote "$wg_release")"
            printf '    volumes:\n'
            printf '      - {type: bind, source: %s, target: /workspace}\n' "$(yaml_quote "$gen_dir/$wg_project.view")"
            printf '      - {type: bind, source: %s, target: /workspace/frappe-bench}\n' "$(yaml_quote "$workspace/$wg_release")"
            printf '      - {type: bind, source: %s, target: /workspace/deployment-data}\n' "$(yaml_quote "$workspace/deployment-data")"
        done
    )
    record "$gen_dir/$wg_project.yml" "$wg_text"
}

# Removes generation PROJECT's containers and files (its drain record stays, for status).
remove_generation() {
    project_compose "$1" down --remove-orphans -t 10 >&2 2>/dev/null || true
    rm -rf "$gen_dir/$1.yml" "$gen_dir/$1.view"
}

