#!/usr/bin/env bash
# A near-zero-cost SageMaker-contract container for benchmarks: nginx answering /ping and
# /invocations with a fixed body. Run by berth as `exec:` (argument `serve`); the port it serves
# on is in its instance log, where the benchmark reads it to call it directly.
set -euo pipefail
[[ "${1:-}" == serve ]] || { echo "usage: $0 serve" >&2; exit 2; }
PORT=${SAGEMAKER_BIND_TO_PORT:-8080}
DIR=$(mktemp -d -t berth-nginx-container.XXXXXX)
# Under a berth running as root the worker is uid 0 without capabilities (berth's sandbox), so
# nginx must not try to switch to its default user "nobody".
USER_LINE=""
[[ $(id -u) -eq 0 ]] && USER_LINE="user root root;"
cat > "$DIR/nginx.conf" <<CONF
$USER_LINE
worker_processes 1;
pid $DIR/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $DIR;
  proxy_temp_path $DIR;
  fastcgi_temp_path $DIR;
  uwsgi_temp_path $DIR;
  scgi_temp_path $DIR;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT;
    location = /ping { return 200 ""; }
    location = /invocations { default_type application/json; return 200 '{"predictions":[1]}'; }
  }
}
CONF
exec nginx -c "$DIR/nginx.conf" -g 'daemon off;'
