#!/bin/sh
# The container's start: the production launcher with configuration from the environment alone
# (no file to mount), run from the image's working directory /app (docs/container.md).
#
#   /app/logs              access.log and audit.jsonl   (MCP_GATEWAY_LOG_DIR, set in the Dockerfile)
#   /app/registry/servers  server definition files      ([gateway] servers_dir: relative paths resolve against /app)
#   /app/var               sessions, registry state, mitmproxy's confdir   ([gateway] state_dir "var")
#   /app/policies          policy files                 ([gateway] policy_dir "policies")
#
# `docker run -v $(pwd)/logs:/app/logs` creates a missing host folder owned by root: started as
# root, this script makes the two volume folders and /app/var writable by the unprivileged user
# `gateway` (their top level only), then runs the gateway as that user. Started as any other user
# (`docker run --user`, or outside a container) it runs the gateway as that user directly.
set -eu

app_dir=$(pwd)
log_dir=${MCP_GATEWAY_LOG_DIR:-$app_dir/logs}
run_as=gateway

if [ "$(id -u)" = 0 ] && id "$run_as" >/dev/null 2>&1; then
    mkdir -p "$log_dir" "$app_dir/registry/servers" "$app_dir/var"
    chown "$run_as:$run_as" "$log_dir" "$app_dir/registry/servers" "$app_dir/var"
    exec setpriv --reuid="$run_as" --regid="$run_as" --init-groups python -m addons.launcher run "$@"
fi
mkdir -p "$log_dir" "$app_dir/registry/servers" "$app_dir/var"
exec python -m addons.launcher run "$@"
