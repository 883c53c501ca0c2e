#!/usr/bin/env bash
# eid-gateway benchmark against its peers (issue 6, part 1: measurement only).
#
#   bench/run.sh                 # everything, ~12 min on the 2-core box (wrk: median of REPEATS runs); prints ONE table
#   ONLY=headless bench/run.sh   # only row 5 (10,000 pending BankID transactions, ~2 min)
#   ONLY=workers bench/run.sh    # only row 6 (--workers 2 vs --workers 1 on both cores, ~2 min)
#   ONLY=routes bench/run.sh     # only row 7 (20 routes vs 1 route, authenticated GET, ~1.5 min)
#   ONLY=accesslog bench/run.sh  # only row 8 (access log on vs off, defaults otherwise, ~1.5 min)
#
# Knobs (environment): DURATION=8 WARMUP=2 REPEATS=3 CONNECTIONS=50 LOGIN_N=50 PAR_LOGINS=20
#   PAR_LOGIN_N=100 PYSPY=1 PYSPY_SECONDS=8 ONLY=proxy,verify,unauth,pyspy,logins,workers,routes,headless SKIP_INSTALL=1
#   HEADLESS_N=10000 HEADLESS_INTERVAL=5 HEADLESS_INTERVALS=3 HEADLESS_KEY=ec HEADLESS_EXPIRES_IN=900
#   HEADLESS_IDP_CPUS=1 OP_CPUS=0 (OP_CPUS=1: the OP beside the load generator, as a remote OP would be;
#   it changes only row 4, for every server alike)
#   WORKERS_CPUS=0,1
#
# What it does, all on 127.0.0.1: installs what is missing (apt: nginx apache2
# libapache2-mod-auth-openidc wrk, with a deny-all policy-rc.d so no package service starts;
# npm ci tests/op; py-spy into .venv only), then starts
#   upstream   nginx, 1 worker, GET / "ok\n", GET /1m 1 MiB          :19080
#   op         tests/op/server.js (oidc-provider), client gw-basic    :19090
#   nginx      plain reverse proxy (the floor)                        :19081
#              + deploy/nginx/auth_request.conf rendered (forward-auth) :19087
#   apache     mpm_event + mod_auth_openidc, client-cookie :19082, shm :19084 (same OP, gw-basic, PKCE)
#   gateway    .venv/bin/eid-gateway run --workers 1 (bench/out/gateway.yaml) :19083, metrics :19091
#              + the same with direct_login_redirect: true (gateway-direct.yaml) :19097, metrics :19098,
#                measured in rows 3 and 4 only (it idles otherwise)
# every server pinned to CPU 0 (taskset), wrk / the login client / py-spy on CPU 1; logs in
# bench/out/logs; RSS = VmRSS summed over each server's process tree every 100 ms, peak per run.
# Step `workers` (row 6): a second gateway (:19095) started with --workers 1, then --workers 2, pinned to
#   WORKERS_CPUS (both cores), and wrk on the SAME cores, the upstream nginx moved there too for the
#   step: a 2-core machine has no third core for the load generator (bench/tools/workers.py).
# Step `routes` (row 7): two gateways like row 1's with their upstream and headers moved into routes, one
#   with 1 route (:19099, metrics :19101) and one with 20 (:19100, metrics :19102), the measured request
#   matching the last route tried (bench/tools/routes_config.py); wrk alternates between them
#   (bench/tools/pair.py).
# Step `accesslog` (row 8): two gateways like row 1's at their defaults (log_level: info), one with the access
#   log on (the default, to its log file under out/logs), one with access_log: off (:19103 and :19104,
#   metrics :19105 and :19106); wrk alternates (bench/tools/pair.py).
# Step `headless` (row 5), after everything else has stopped: the dev IdP (bench/tools/headless_idp.py)
#   :19093 on HEADLESS_IDP_CPUS (default: the driver's CPU 1; it stands in for a remote service) and a
#   gateway with a `flow: headless` provider (private_key_jwt with a HEADLESS_KEY key, poll_interval
#   HEADLESS_INTERVAL s, --workers 1) :19092, metrics :19094, on CPU 0; the driver
#   bench/tools/headless_load.py on CPU 1 starts HEADLESS_N transactions and asks each one's status once
#   per interval for HEADLESS_INTERVALS intervals.
# Every process it starts is stopped by PID at the end, also on failure (trap), and each server
# runs under `timeout MAX_SECONDS` as a backstop.
# Output: the table on stdout and in bench/out/results.md; raw data bench/out/results.json, rss.txt,
# py-spy profiles bench/out/pyspy-*.txt (collapsed stacks), workers.json, headless.json.
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$BENCH")"
OUT="$BENCH/out"
PY="$REPO/.venv/bin/python"

: "${BIND_HOST:=127.0.0.1}" "${UPSTREAM_PORT:=19080}" "${NGINX_PROXY_PORT:=19081}" "${APACHE_CC_PORT:=19082}"
: "${GATEWAY_PORT:=19083}" "${APACHE_SHM_PORT:=19084}" "${NGINX_AUTHREQ_PORT:=19087}" "${OP_PORT:=19090}"
: "${GATEWAY_METRICS_PORT:=19091}" "${SERVER_CPUS:=0}" "${WRK_CPUS:=1}"
: "${HEADLESS_GW_PORT:=19092}" "${HEADLESS_IDP_PORT:=19093}" "${HEADLESS_METRICS_PORT:=19094}"
: "${WORKERS_GW_PORT:=19095}" "${WORKERS_METRICS_PORT:=19110}" "${WORKERS_CPUS:=0,1}"
: "${GATEWAY_DIRECT_PORT:=19097}" "${GATEWAY_DIRECT_METRICS_PORT:=19098}"
: "${ROUTES1_PORT:=19099}" "${ROUTES20_PORT:=19100}" "${ROUTES1_METRICS_PORT:=19101}" "${ROUTES20_METRICS_PORT:=19102}"
: "${LOGON_PORT:=19103}" "${LOGOFF_PORT:=19104}" "${LOGON_METRICS_PORT:=19105}" "${LOGOFF_METRICS_PORT:=19106}"
: "${HEADLESS_N:=10000}" "${HEADLESS_INTERVAL:=5}" "${HEADLESS_INTERVALS:=3}" "${HEADLESS_KEY:=ec}"
: "${HEADLESS_EXPIRES_IN:=900}" "${HEADLESS_IDP_CPUS:=$WRK_CPUS}" "${OP_CPUS:=$SERVER_CPUS}"
: "${DURATION:=8}" "${WARMUP:=2}" "${REPEATS:=3}" "${CONNECTIONS:=50}"
: "${LOGIN_N:=50}" "${PAR_LOGINS:=20}" "${PAR_LOGIN_N:=100}" "${PYSPY:=1}" "${PYSPY_SECONDS:=8}"
: "${ONLY:=}" "${SKIP_INSTALL:=0}" "${MAX_SECONDS:=1800}"
OP_ISSUER="http://$BIND_HOST:$OP_PORT"
export BIND_HOST UPSTREAM_PORT NGINX_PROXY_PORT APACHE_CC_PORT GATEWAY_PORT APACHE_SHM_PORT NGINX_AUTHREQ_PORT \
  OP_PORT GATEWAY_METRICS_PORT SERVER_CPUS WRK_CPUS DURATION WARMUP REPEATS CONNECTIONS LOGIN_N PAR_LOGINS \
  PAR_LOGIN_N PYSPY PYSPY_SECONDS ONLY OUT OP_ISSUER LOG_DIR="$OUT/logs" \
  HEADLESS_GW_PORT HEADLESS_IDP_PORT HEADLESS_METRICS_PORT WORKERS_GW_PORT WORKERS_METRICS_PORT WORKERS_CPUS \
  HEADLESS_N HEADLESS_INTERVAL HEADLESS_INTERVALS HEADLESS_KEY HEADLESS_EXPIRES_IN GATEWAY_DIRECT_PORT \
  ROUTES1_PORT ROUTES20_PORT

want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
PEERS=0  # the peer comparison (rows 1-4): nginx, Apache + mod_auth_openidc, the gateway, the OP
for s in proxy verify unauth pyspy logins; do want "$s" && PEERS=1; done
WORKERS=0; want workers && WORKERS=1
ROUTES=0; want routes && ROUTES=1
ACCESSLOG=0; want accesslog && ACCESSLOG=1
HEADLESS=0; want headless && HEADLESS=1
case "$HEADLESS_KEY" in ec|rsa) ;; *) echo "HEADLESS_KEY must be ec or rsa" >&2; exit 1 ;; esac

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
case "$BIND_HOST" in 127.*) ;; *) die "BIND_HOST must be loopback" ;; esac

# ------------------------------------------------------------------ install ---
if [ "$SKIP_INSTALL" != 1 ]; then
  missing=()
  for p in nginx apache2 libapache2-mod-auth-openidc wrk curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    prc=/usr/sbin/policy-rc.d guard=""
    if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; guard=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    [ -n "$guard" ] && rm -f "$prc"
  fi
  [ -d "$REPO/tests/op/node_modules/oidc-provider" ] || npm ci --prefix "$REPO/tests/op" --no-audit --no-fund >&2
  [ "$PYSPY" != 1 ] || [ -x "$REPO/.venv/bin/py-spy" ] || "$REPO/.venv/bin/pip" install -q py-spy >&2 \
    || log "py-spy did not install; continuing without profiles"
fi
need=(taskset timeout curl)
((PEERS)) && need+=(nginx apache2 wrk node)
((WORKERS)) && need+=(nginx wrk node)
((ROUTES || ACCESSLOG)) && need+=(nginx wrk node)
for c in "${need[@]}"; do command -v "$c" >/dev/null || die "missing $c"; done
[ -x "$PY" ] || die "no venv at $REPO/.venv"

# ------------------------------------------------------------ processes ---
PIDS=() NAMES=()
start() {  # name command... (pinned to SERVER_CPUS, log in out/logs/NAME.log)
  local name=$1; shift
  timeout --signal=TERM --kill-after=10 "$MAX_SECONDS" taskset -c "$SERVER_CPUS" "$@" >"$OUT/logs/$name.log" 2>&1 &
  PIDS+=("$!"); NAMES+=("$name"); echo "$!" >"$OUT/pids/$name"
}
child_of() { local i c; for i in $(seq 50); do c=$(pgrep -P "$1" | head -n1 || true); [ -n "$c" ] && { echo "$c"; return; }; sleep 0.1; done; return 1; }
wait_http() {  # name url seconds
  local i
  for i in $(seq $(($3 * 5))); do
    curl -s -o /dev/null --max-time 1 "$2" && return 0
    kill -0 "$(cat "$OUT/pids/$1")" 2>/dev/null || { tail -n 20 "$OUT/logs/$1.log" >&2; die "$1 exited"; }
    sleep 0.2
  done
  tail -n 20 "$OUT/logs/$1.log" >&2; die "$1 not answering on $2"
}
stop_one() {  # name: stop one server started by start(), by its PID
  local i pid
  for i in "${!PIDS[@]}"; do
    [ "${NAMES[$i]}" = "$1" ] || continue
    pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 ($pid) did not stop: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$i]" "NAMES[$i]"
  done
  PIDS=("${PIDS[@]}") NAMES=("${NAMES[@]}")
}
repin() {  # cpus root-pid: move a running server (all threads of its process tree) to other CPUs
  local p
  for p in "$2" $(pgrep -P "$2" || true); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}
SAMPLER=""
stop_all() {
  local i pid
  [ -z "$SAMPLER" ] || { kill -TERM "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; }
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "${NAMES[$i]} ($pid) did not stop: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS=() NAMES=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

for p in $UPSTREAM_PORT $NGINX_PROXY_PORT $APACHE_CC_PORT $GATEWAY_PORT $APACHE_SHM_PORT $NGINX_AUTHREQ_PORT $OP_PORT \
  $GATEWAY_METRICS_PORT $HEADLESS_GW_PORT $HEADLESS_IDP_PORT $HEADLESS_METRICS_PORT $WORKERS_GW_PORT $WORKERS_METRICS_PORT \
  $GATEWAY_DIRECT_PORT $GATEWAY_DIRECT_METRICS_PORT $ROUTES1_PORT $ROUTES20_PORT $ROUTES1_METRICS_PORT \
  $ROUTES20_METRICS_PORT $LOGON_PORT $LOGOFF_PORT $LOGON_METRICS_PORT $LOGOFF_METRICS_PORT; do
  ! curl -s -o /dev/null --max-time 1 "http://$BIND_HOST:$p/" || die "port $p is in use"
done

# ------------------------------------------------------------------ configs ---
rm -rf "$OUT"; mkdir -p "$OUT"/{logs,pids,upstream/tmp,nginx-proxy/tmp,apache}
chmod 755 "$OUT" "$OUT/upstream"
head -c 1048576 /dev/urandom >"$OUT/upstream/1m.bin"; chmod 644 "$OUT/upstream/1m.bin"
CLIENT_SECRET=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
CLIENT_SECRET_POST=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
SESSION_SECRET=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
CRYPTO_PASSPHRASE=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
export CLIENT_SECRET SESSION_SECRET CRYPTO_PASSPHRASE
R="$PY $BENCH/tools/render.py"
$R "$BENCH/conf/upstream-nginx.conf.in" "$OUT/upstream/nginx.conf"
check_config() {  # file
  chmod 600 "$1"
  "$REPO/.venv/bin/eid-gateway" check-config --config "$1" >"$OUT/logs/check-config-$(basename "$1").log" 2>&1 \
    || { cat "$OUT/logs/check-config-$(basename "$1").log" >&2; die "gateway config $1 invalid"; }
}
if ((PEERS)); then
  $R "$REPO/deploy/nginx/auth_request.conf" "$OUT/nginx-proxy/auth_request.conf" \
    LISTEN="$BIND_HOST:$NGINX_AUTHREQ_PORT" SERVER_NAME="$BIND_HOST" GATEWAY="$BIND_HOST:$GATEWAY_PORT" \
    UPSTREAM="$BIND_HOST:$UPSTREAM_PORT"
  $R "$BENCH/conf/proxy-nginx.conf.in" "$OUT/nginx-proxy/nginx.conf"
  MODDIR=$(dirname "$(dpkg -L apache2-bin | grep '/mod_proxy\.so$' | head -n1)")
  ln -sfn "$MODDIR" "$OUT/apache/modules"
  $R "$BENCH/conf/apache-oidc.conf.in" "$OUT/apache/httpd.conf" \
    APACHE_USER="$(id -un www-data 2>/dev/null || id -un)" APACHE_GROUP="$(id -gn www-data 2>/dev/null || id -gn)"
  $R "$BENCH/conf/gateway.yaml.in" "$OUT/gateway.yaml" DIRECT_LOGIN_REDIRECT=false
  check_config "$OUT/gateway.yaml"
  $R "$BENCH/conf/gateway.yaml.in" "$OUT/gateway-direct.yaml" GATEWAY_PORT="$GATEWAY_DIRECT_PORT" \
    GATEWAY_METRICS_PORT="$GATEWAY_DIRECT_METRICS_PORT" DIRECT_LOGIN_REDIRECT=true
  check_config "$OUT/gateway-direct.yaml"
fi
if ((WORKERS)); then
  $R "$BENCH/conf/gateway.yaml.in" "$OUT/gateway-workers.yaml" GATEWAY_PORT="$WORKERS_GW_PORT" \
    GATEWAY_METRICS_PORT="$WORKERS_METRICS_PORT" DIRECT_LOGIN_REDIRECT=false
  check_config "$OUT/gateway-workers.yaml"
fi
if ((ROUTES)); then
  $R "$BENCH/conf/gateway.yaml.in" "$OUT/gateway-routes-base.yaml" DIRECT_LOGIN_REDIRECT=false
  for n in 1 20; do
    [ "$n" = 1 ] && port=$ROUTES1_PORT mport=$ROUTES1_METRICS_PORT || port=$ROUTES20_PORT mport=$ROUTES20_METRICS_PORT
    "$PY" "$BENCH/tools/routes_config.py" "$OUT/gateway-routes-base.yaml" "$OUT/gateway-routes$n.yaml" "$n" "$port" "$mport"
    check_config "$OUT/gateway-routes$n.yaml"
  done
fi
if ((ACCESSLOG)); then
  $R "$BENCH/conf/gateway.yaml.in" "$OUT/gateway-log-base.yaml" DIRECT_LOGIN_REDIRECT=false
  "$PY" - "$OUT" "$LOGON_PORT" "$LOGON_METRICS_PORT" "$LOGOFF_PORT" "$LOGOFF_METRICS_PORT" <<'PYEOF'
import sys, yaml
out, on_port, on_metrics, off_port, off_metrics = sys.argv[1:6]
base = yaml.safe_load(open(f"{out}/gateway-log-base.yaml"))
base.pop("log_level", None)  # the default, info: what a new user runs
host = base["listen"].rpartition(":")[0]
for name, port, metrics, access_log in (("on", on_port, on_metrics, "on"), ("off", off_port, off_metrics, "off")):
    config = dict(base, listen=f"{host}:{port}", public_url=f"http://{host}:{port}",
                  metrics={"listen": f"{host}:{metrics}"}, access_log=access_log)
    yaml.safe_dump(config, open(f"{out}/gateway-log-{name}.yaml", "w"), sort_keys=False)
PYEOF
  check_config "$OUT/gateway-log-on.yaml"
  check_config "$OUT/gateway-log-off.yaml"
fi
if ((HEADLESS)); then
  mkdir -p "$OUT/headless"
  "$PY" -c "import sys; from gateway import keys; open(sys.argv[1], 'wb').write(keys.generate_${HEADLESS_KEY}_pem())" \
    "$OUT/headless/client.pem"
  chmod 600 "$OUT/headless/client.pem"
  $R "$BENCH/conf/gateway-headless.yaml.in" "$OUT/gateway-headless.yaml" HEADLESS_KEY_FILE="$OUT/headless/client.pem"
  check_config "$OUT/gateway-headless.yaml"
fi
v() { command -v "$1" >/dev/null && { "$@" 2>&1 | head -n1; } || echo -; }
{
  echo "nginx: $(v nginx -v)"; echo "apache2: $(v apache2 -v)"
  echo "mod_auth_openidc: $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo -)"
  echo "wrk: $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo -)"; echo "node: $(v node --version)"
  echo "oidc-provider: $(v node -p "require('$REPO/tests/op/node_modules/oidc-provider/package.json').version")"
  echo "python: $("$PY" --version)"; echo "eid-gateway: $("$REPO/.venv/bin/eid-gateway" --version 2>&1)"
  echo "git: $(git -C "$REPO" rev-parse --short HEAD) $(git -C "$REPO" status --porcelain | grep -vc '^?? bench/' || true) modified"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
} >"$OUT/versions.txt"

# -------------------------------------------------------------------- start ---
T0=$(date +%s)
rc=0
if ((PEERS || WORKERS || ROUTES || ACCESSLOG)); then
  log "upstream nginx :$UPSTREAM_PORT"
  start upstream nginx -p "$OUT/upstream/" -c nginx.conf -e stderr
  wait_http upstream "http://$BIND_HOST:$UPSTREAM_PORT/" 10
  log "OP (tests/op/server.js) :$OP_PORT"
  OP_HOST="$BIND_HOST" OP_PORT="$OP_PORT" OP_ISSUER="$OP_ISSUER" OP_MAX_SECONDS="$MAX_SECONDS" \
    REDIRECT_URIS="http://$BIND_HOST:$GATEWAY_PORT/_auth/callback/op,http://$BIND_HOST:$APACHE_CC_PORT/oidc/callback,http://$BIND_HOST:$APACHE_SHM_PORT/oidc/callback,http://$BIND_HOST:$WORKERS_GW_PORT/_auth/callback/op,http://$BIND_HOST:$GATEWAY_DIRECT_PORT/_auth/callback/op,http://$BIND_HOST:$ROUTES1_PORT/_auth/callback/op,http://$BIND_HOST:$ROUTES20_PORT/_auth/callback/op,http://$BIND_HOST:$LOGON_PORT/_auth/callback/op,http://$BIND_HOST:$LOGOFF_PORT/_auth/callback/op" \
    OP_CLIENT_SECRET_BASIC="$CLIENT_SECRET" OP_CLIENT_SECRET_POST="$CLIENT_SECRET_POST" SERVER_CPUS="$OP_CPUS" \
    start op node "$REPO/tests/op/server.js"
  wait_http op "$OP_ISSUER/.well-known/openid-configuration" 30
  echo "$(child_of "$(cat "$OUT/pids/upstream")")" >"$OUT/pids/upstream.server"
fi
if ((PEERS)); then
  log "gateway :$GATEWAY_PORT (1 worker)"
  start gateway "$REPO/.venv/bin/eid-gateway" run --config "$OUT/gateway.yaml" --workers 1
  wait_http gateway "http://$BIND_HOST:$GATEWAY_PORT/healthz" 30
  log "gateway with direct_login_redirect :$GATEWAY_DIRECT_PORT (1 worker)"
  start gateway-direct "$REPO/.venv/bin/eid-gateway" run --config "$OUT/gateway-direct.yaml" --workers 1
  wait_http gateway-direct "http://$BIND_HOST:$GATEWAY_DIRECT_PORT/healthz" 30
  log "nginx proxy :$NGINX_PROXY_PORT, auth_request front :$NGINX_AUTHREQ_PORT"
  start nginx-proxy nginx -p "$OUT/nginx-proxy/" -c nginx.conf -e stderr
  wait_http nginx-proxy "http://$BIND_HOST:$NGINX_PROXY_PORT/" 10
  log "Apache + mod_auth_openidc :$APACHE_CC_PORT (client-cookie) :$APACHE_SHM_PORT (shm)"
  start apache apache2 -d "$OUT/apache" -f "$OUT/apache/httpd.conf" -D FOREGROUND
  wait_http apache "http://$BIND_HOST:$APACHE_CC_PORT/" 15

  targets=()
  for n in upstream op gateway gateway-direct nginx-proxy apache; do
    pid=$(cat "$OUT/pids/$n"); tp=$(child_of "$pid") || die "no process under $n"
    # taskset execs the server, so the child of `timeout` is the server itself
    targets+=("$n=$tp"); echo "$tp" >"$OUT/pids/$n.server"
  done
  GATEWAY_PID=$(cat "$OUT/pids/gateway.server"); export GATEWAY_PID
  taskset -c "$WRK_CPUS" "$PY" "$BENCH/tools/rss.py" --out "$OUT/rss.txt" "${targets[@]}" &
  SAMPLER=$!
  log "servers up in $(( $(date +%s) - T0 ))s; measuring"
  taskset -c "$WRK_CPUS" "$PY" "$BENCH/tools/bench.py" || rc=$?
fi

# --------------------------------------------------- row 6: --workers 2 vs 1 ---
if ((WORKERS)); then
  up=$(cat "$OUT/pids/upstream.server")
  repin "$WORKERS_CPUS" "$up"
  for w in 1 2; do
    log "gateway :$WORKERS_GW_PORT --workers $w, gateway + upstream + wrk all on CPUs $WORKERS_CPUS"
    SERVER_CPUS="$WORKERS_CPUS" start "gateway-w$w" "$REPO/.venv/bin/eid-gateway" run \
      --config "$OUT/gateway-workers.yaml" --workers "$w"
    wait_http "gateway-w$w" "http://$BIND_HOST:$WORKERS_GW_PORT/healthz" 30
    gp=$(child_of "$(cat "$OUT/pids/gateway-w$w")") || die "no process under gateway-w$w"
    GATEWAY_TREE_PID="$gp" UPSTREAM_TREE_PID="$up" taskset -c "$WORKERS_CPUS" "$PY" "$BENCH/tools/workers.py" "$w" || rc=$?
    stop_one "gateway-w$w"
  done
  repin "$SERVER_CPUS" "$up"
fi

# ------------------------------------------------ row 7: 20 routes vs 1 route ---
if ((ROUTES)); then
  for n in 1 20; do
    [ "$n" = 1 ] && port=$ROUTES1_PORT || port=$ROUTES20_PORT
    log "gateway with $n route(s) :$port (1 worker)"
    start "gateway-routes$n" "$REPO/.venv/bin/eid-gateway" run --config "$OUT/gateway-routes$n.yaml" --workers 1
    wait_http "gateway-routes$n" "http://$BIND_HOST:$port/healthz" 30
  done
  taskset -c "$WRK_CPUS" "$PY" "$BENCH/tools/pair.py" routes 1 "$ROUTES1_PORT" 20 "$ROUTES20_PORT" || rc=$?
  stop_one gateway-routes1
  stop_one gateway-routes20
fi

# ------------------------------------------------- row 8: access log on vs off ---
if ((ACCESSLOG)); then
  for n in on off; do
    [ "$n" = on ] && port=$LOGON_PORT || port=$LOGOFF_PORT
    log "gateway at defaults, access_log: $n :$port (1 worker)"
    start "gateway-log-$n" "$REPO/.venv/bin/eid-gateway" run --config "$OUT/gateway-log-$n.yaml" --workers 1
    wait_http "gateway-log-$n" "http://$BIND_HOST:$port/healthz" 30
  done
  taskset -c "$WRK_CPUS" "$PY" "$BENCH/tools/pair.py" accesslog on "$LOGON_PORT" off "$LOGOFF_PORT" || rc=$?
  stop_one gateway-log-on
  stop_one gateway-log-off
fi

# ------------------------------------------- row 5: 10,000 headless transactions ---
if ((HEADLESS)); then
  stop_all  # nothing else runs during this step
  log "dev IdP (headless, interval ${HEADLESS_INTERVAL}s, expires_in ${HEADLESS_EXPIRES_IN}s) :$HEADLESS_IDP_PORT"
  # The IdP is a remote service in production (Idura's): it runs beside the driver, not on the gateway's core.
  SERVER_CPUS="$HEADLESS_IDP_CPUS" start headless-idp "$PY" "$BENCH/tools/headless_idp.py" --host "$BIND_HOST" --port "$HEADLESS_IDP_PORT" \
    --client-id gw-headless --client-key "$OUT/headless/client.pem" \
    --redirect-uri "http://$BIND_HOST:$HEADLESS_GW_PORT/_auth/callback/se-bankid" \
    --interval "$HEADLESS_INTERVAL" --expires-in "$HEADLESS_EXPIRES_IN" --max-orders $((HEADLESS_N + 1000))
  wait_http headless-idp "http://$BIND_HOST:$HEADLESS_IDP_PORT/.well-known/openid-configuration" 30
  log "gateway (headless provider, $HEADLESS_KEY private_key_jwt, 1 worker) :$HEADLESS_GW_PORT"
  start headless-gateway "$REPO/.venv/bin/eid-gateway" run --config "$OUT/gateway-headless.yaml" --workers 1
  wait_http headless-gateway "http://$BIND_HOST:$HEADLESS_GW_PORT/healthz" 30
  gp=$(child_of "$(cat "$OUT/pids/headless-gateway")") || die "no process under headless-gateway"
  taskset -c "$WRK_CPUS" "$PY" "$BENCH/tools/headless_load.py" --gateway "http://$BIND_HOST:$HEADLESS_GW_PORT" \
    --idp "http://$BIND_HOST:$HEADLESS_IDP_PORT" --metrics "http://$BIND_HOST:$HEADLESS_METRICS_PORT" \
    --gateway-pid "$gp" --idp-pid "$(child_of "$(cat "$OUT/pids/headless-idp")")" --out "$OUT/headless.json" --n "$HEADLESS_N" --interval "$HEADLESS_INTERVAL" \
    --intervals "$HEADLESS_INTERVALS" || rc=$?
fi

log "stopping everything"
stop_all
trap - EXIT
# one results.json: bench.py's (rows 1-4, when it ran) plus workers.json and headless.json
"$PY" - "$OUT" "$HEADLESS_KEY" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
p = os.path.join(out, "results.json")
r = json.load(open(p)) if os.path.exists(p) else {"checks": {}, "wrk": [], "logins": [], "pyspy": {}}
for key in ("workers", "headless", "routes", "accesslog"):
    f = os.path.join(out, key + ".json")
    if os.path.exists(f):
        r[key] = json.load(open(f))
if "headless" in r:
    r["headless"]["key"] = sys.argv[2]
json.dump(r, open(p, "w"), indent=1)
PYEOF
"$PY" "$BENCH/tools/report.py" "$OUT" | tee "$OUT/results.md"
log "done in $(( $(date +%s) - T0 ))s (bench.py rc=$rc); logs: $OUT/logs"
exit "$rc"
