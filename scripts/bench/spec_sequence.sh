#!/usr/bin/env bash
# The spec's sync as its original tool runs it: a fresh ssh connection for every remote step and
# sequential `rsync -avz --delete --checksum` runs, services stopped for the whole transfer.
#
#   spec_sequence.sh SSH_CONFIG PORT USER@HOST BENCH_WORKSPACE REMOTE_WORKSPACE SITE RELEASE
#
# Prints `downtime_ms=N` (services stopped until started again) and rsync's --stats on stdout.
set -euo pipefail
cfg=$1 port=$2 dest=$3 local_ws=$4 remote_ws=$5 site=$6 release=$7
site_dir=${remote_ws%/*}
q() { printf '%q' "$1"; }
r() { ssh -F "$cfg" -p "$port" -o BatchMode=yes "$dest" "$@"; }
now_ms() { date +%s%3N; }
excludes=(--exclude='**/.git/**' --exclude='**/node_modules/**' --exclude='**/__pycache__/**'
          --exclude='sites/*/public/files/**' --exclude='sites/*/private/**' --exclude='.cache/**'
          --exclude='*.pyc' --exclude='*.log')
compose="docker compose -f docker-compose.yml -f docker-compose.workers.yml"

r "echo 'SSH OK'" >/dev/null
r "mkdir -p $(q "$remote_ws")"
t0=$(now_ms)
r "cd $(q "$site_dir") && docker compose -f docker-compose.workers.yml down" 2>/dev/null
r "cd $(q "$site_dir") && $compose down" 2>/dev/null
rsync -avz --delete --checksum --stats -e "ssh -F $cfg -p $port -o BatchMode=yes" "${excludes[@]}" \
    "$local_ws/$release/" "$dest:$remote_ws/$release/" | sed -n '/^Total bytes sent/p'
rsync -avz --delete --checksum --stats -e "ssh -F $cfg -p $port -o BatchMode=yes" "${excludes[@]}" \
    "$local_ws/deployment-data/" "$dest:$remote_ws/deployment-data/" | sed -n '/^Total bytes sent/p'
r "mkdir -p $(q "$remote_ws/deployment-data/sites/$site/private/files")"
r "mkdir -p $(q "$remote_ws/deployment-data/sites/$site/public/files")"
r "ln -sfn $(q "$release") $(q "$remote_ws/frappe-bench")"
r "mkdir -p $(q "$remote_ws/frappe-bench/config/pids")"
r "ln -sfn ../../deployment-data/sites/common_site_config.workers.json $(q "$remote_ws/$release/sites/common_site_config.json")"
r "ln -sfn ../../../deployment-data/sites/$site/site_config.workers.json $(q "$remote_ws/$release/sites/$site/site_config.json")"
r "cd $(q "$site_dir") && $compose up -d --no-deps schedule" 2>/dev/null
r "cd $(q "$site_dir") && docker compose -f docker-compose.workers.yml up -d" 2>/dev/null
echo "downtime_ms=$(( $(now_ms) - t0 ))"
