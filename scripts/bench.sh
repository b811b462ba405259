#!/usr/bin/env bash
# Reproduces the comparison of docs/BENCHMARKS.md on this machine, in one run:
#
#   (a) Vault Transit HMAC (sha2-256), each device's own imported key, vault/api
#   (b) a raw Vault KV v2 read of a device secret, vault/api
#       (both with least-privilege tokens; and again with the root token)
#   (c) signerd warm (cached): gRPC and REST with an mTLS backend identity,
#       and REST with a TLS-only connection and an RS256 bearer JWT
#   (d) signerd cold: every device asked once, so every sign reads Vault
#       (and, with one client, against a raw KV read with one client)
#   (e) a bare HMAC-SHA256 in Go (signerload hmac at the same concurrency)
#
# all at the same concurrency (CONCURRENCY, default 16) against one real
# Vault dev server and one signerd (outside -dev: TLS, client certificates,
# policy, audit to a file, -backend-rate-limit 0), everything on 127.0.0.1;
# then the RSS of signerd with RSS_DEVICES (default 100,000) devices cached;
# then the in-process Go benchmarks (go test -bench: signing, secrets,
# service, server).
#
# Every signerd and Vault run also reports the server's CPU per sign over the
# measured run (signerload -server-pid) and its ratio to one bare HMAC-SHA256
# measured in the same run: issue 15's targets are those ratios, and the
# throughput of signerd against Transit (root and least-privilege tokens).
#
# Usage: scripts/bench.sh            (about 10 minutes on 2 cores)
# Knobs (environment): DURATION=20s WARMUP=3s CONCURRENCY=16 WARM_DEVICES=1000
#   COLD_DEVICES=20000 COLD1_DEVICES=5000 RSS_DEVICES=100000 GO_BENCHTIME=2s
#   BENCH_OUT=dir (default: a new directory under ${TMPDIR:-/tmp}, kept);
#   UPDATE_DOC=1 also writes the report into docs/BENCHMARKS.md.
# Results: $BENCH_OUT/report.md (and results/*.json, the logs, the binaries).
#
# Needs Go, openssl, curl (for signerd's metrics), and the Vault binary that
# scripts/vault-build.sh builds
# (cached after the first time). Every process it starts is stopped on exit;
# every step is bounded in time, and the whole run by BENCH_TIMEOUT (45m).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONCURRENCY=${CONCURRENCY:-16}
WARM_DEVICES=${WARM_DEVICES:-1000}
COLD_DEVICES=${COLD_DEVICES:-20000}
RSS_DEVICES=${RSS_DEVICES:-100000}
GO_BENCHTIME=${GO_BENCHTIME:-2s}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-2700}
out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/signerd-bench.XXXXXX")}
mkdir -p "$out"/bin "$out"/results "$out"/pki
out=$(cd "$out" && pwd)
# Devices: [0, WARM) warm; then COLD for the cold run at CONCURRENCY; then
# COLD1 for the cold run with one client; all of them, up to RSS_DEVICES,
# for the memory measurement.
COLD1_DEVICES=${COLD1_DEVICES:-5000}
total=$(( WARM_DEVICES + COLD_DEVICES + COLD1_DEVICES ))
(( RSS_DEVICES < total )) && RSS_DEVICES=$total

log() { printf '\n== %s (%ss)\n' "$*" "$SECONDS" >&2; }

vault_pid="" signerd_pid="" watchdog_pid=""
cleanup() {
  local rc=$?
  for p in $signerd_pid $vault_pid; do
    kill "$p" 2>/dev/null || true
  done
  for p in $signerd_pid $vault_pid; do
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$watchdog_pid" ]; then kill "$watchdog_pid" 2>/dev/null || true; fi
  rm -f "$out"/*.token
  echo "bench: results in $out" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The whole run is bounded: the watchdog ends it (and the trap cleans up).
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$BENCH_TIMEOUT" & s=$!
  wait "$s" && { echo "bench: over ${BENCH_TIMEOUT}s, stopping" >&2; kill -TERM $$; }
) 2>/dev/null &
watchdog_pid=$!

log "build"
SIGNERD_VAULT_BIN=$(bash scripts/vault-build.sh)
export SIGNERD_VAULT_BIN
go build -o "$out/bin/signerd" ./cmd/signerd
go build -o "$out/bin/signerload" ./cmd/signerload
load="$out/bin/signerload"

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host:    $(uname -srm)"
  echo "cpu:     $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo) × $(nproc) (nproc)"
  echo "memory:  $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "go:      $(go version)"
  echo "vault:   $("$SIGNERD_VAULT_BIN" version)"
  echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git status --porcelain 2>/dev/null)" ] || echo ' (+ uncommitted changes)')"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min load average before the run: other work on the machine skews every figure)"
  echo "knobs:   CONCURRENCY=$CONCURRENCY DURATION=$DURATION WARMUP=$WARMUP WARM_DEVICES=$WARM_DEVICES COLD_DEVICES=$COLD_DEVICES COLD1_DEVICES=$COLD1_DEVICES RSS_DEVICES=$RSS_DEVICES"
} | tee "$out/machine.txt" >&2

log "vault dev server on 127.0.0.1"
root_token="root-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export VAULT_TOKEN=$root_token
vault() { HOME="$out" "$SIGNERD_VAULT_BIN" "$@"; }
for attempt in 1 2 3 4 5; do
  port=$(( 20000 + RANDOM % 40000 ))
  # A port something answers on is taken; try another.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
  export VAULT_ADDR="http://127.0.0.1:$port"
  VAULT_DISABLE_MLOCK=true HOME="$out" "$SIGNERD_VAULT_BIN" server -dev \
    -dev-root-token-id="$root_token" -dev-listen-address="127.0.0.1:$port" -dev-no-store-token \
    >"$out/vault.log" 2>&1 &
  vault_pid=$!
  for _ in $(seq 1 150); do
    kill -0 "$vault_pid" 2>/dev/null || break
    vault status >/dev/null 2>&1 && break 2
    sleep 0.2
  done
  kill "$vault_pid" 2>/dev/null || true
  wait "$vault_pid" 2>/dev/null || true
  vault_pid=""
done
[ -n "$vault_pid" ] || { echo "bench: vault did not start; see $out/vault.log" >&2; exit 1; }
echo "vault at $VAULT_ADDR (pid $vault_pid)" >&2
vault secrets enable -path=iot kv-v2 >/dev/null
vault secrets enable transit >/dev/null
vault policy write signerd deploy/vault/policy.hcl >/dev/null
# Every client uses a least-privilege, non-root token, as deployed: signerd
# and the raw KV baseline signerd's own policy, the Transit baseline one that
# may only HMAC. (Vault serves a root token faster: the *-root runs show by
# how much.)
printf 'path "transit/hmac/*" {\n  capabilities = ["update"]\n}\n' | vault policy write transit-hmac - >/dev/null
( umask 077
  vault token create -policy=signerd -period=2h -field=token >"$out/signerd.token"
  vault token create -policy=transit-hmac -period=2h -field=token >"$out/transit.token"
  echo "$root_token" >"$out/root.token" )

log "seed: $RSS_DEVICES devices in KV v2, $WARM_DEVICES of them imported into Transit"
"$load" seed -vault-addr "$VAULT_ADDR" -vault-token-file "$out/root.token" \
  -n "$RSS_DEVICES" -transit-keys "$WARM_DEVICES" -c "$CONCURRENCY" -json "$out/results/seed.json" \
  | tee "$out/seed.txt"

log "certificates (openssl, ECDSA P-256)"
(
  cd "$out/pki"
  backend_id="spiffe://signerd.bench/loadgen"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key ca.key
  openssl req -x509 -new -key ca.key -subj "/CN=signerd bench CA" -days 2 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  issue() { # name subject extensions
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "$1.pem" \
      -extfile <(printf '%b' "$3") 2>/dev/null
  }
  issue server "/CN=signerd" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"
  issue backend "/CN=loadgen" "subjectAltName=URI:$backend_id\nextendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature"
  printf 'backends:\n  - identity: %s\n    products: ["*"]\n    rpcs: ["*"]\n  - identity: %s\n    products: ["*"]\n    rpcs: ["*"]\n' \
    "$backend_id" loadgen-jwt >policy.yaml
)
pki="$out/pki"
tlsflags=(-ca "$pki/ca.pem" -cert "$pki/backend.pem" -key "$pki/backend.key")
# The JWT backend: an RS256 token (as most identity providers sign) of a
# fresh key whose JWKS signerd reads, over TLS without a client certificate.
jwt_issuer="https://issuer.signerd.bench"
"$load" token -jwks "$pki/jwks.json" -out "$out/jwt.token" -issuer "$jwt_issuer" -subject loadgen-jwt -ttl 2h >&2

log "signerd (TLS, mTLS backend, policy, audit to a file, -backend-rate-limit 0)"
signerd_args=(-grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 -metrics-addr 127.0.0.1:0
  -vault-addr "$VAULT_ADDR" -vault-token-file "$out/signerd.token"
  -tls-cert-file "$pki/server.pem" -tls-key-file "$pki/server.key" -client-ca-file "$pki/ca.pem"
  -policy-file "$pki/policy.yaml" -backend-rate-limit 0 -audit-log "$out/audit.log"
  -jwks-file "$pki/jwks.json" -jwt-issuer "$jwt_issuer")
echo "signerd ${signerd_args[*]}" >"$out/signerd.cmd"
env -u VAULT_TOKEN "$out/bin/signerd" "${signerd_args[@]}" >/dev/null 2>"$out/signerd.log" &
signerd_pid=$!
for _ in $(seq 1 100); do
  grep -q '"msg":"listening"' "$out/signerd.log" 2>/dev/null && break
  kill -0 "$signerd_pid" 2>/dev/null || { cat "$out/signerd.log" >&2; exit 1; }
  sleep 0.1
done
field() { sed -n "s/.*\"msg\":\"listening\".*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$out/signerd.log" | head -1; }
grpc_addr=$(field grpc) http_addr=$(field http) metrics_addr=$(field metrics)
[ -n "$grpc_addr" ] || { echo "bench: signerd did not start; see $out/signerd.log" >&2; exit 1; }
echo "signerd pid $signerd_pid: gRPC $grpc_addr, REST $http_addr, metrics $metrics_addr" >&2
rss() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$signerd_pid/status"; }
hwm() { awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$signerd_pid/status"; }
metric() { curl -fsS "http://$metrics_addr/metrics" 2>/dev/null | awk -v m="$1" '$1==m{printf "%.0f", $2}'; }
rss_idle=$(rss)

common=(-c "$CONCURRENCY" -d "$DURATION")
grpc=("$load" grpc -addr "$grpc_addr" "${tlsflags[@]}" -server-pid "$signerd_pid")
rest=("$load" rest -url "https://$http_addr" "${tlsflags[@]}" -server-pid "$signerd_pid")
restjwt=("$load" rest -url "https://$http_addr" -ca "$pki/ca.pem" -token-file "$out/jwt.token" -server-pid "$signerd_pid")
vaultflags=(-vault-addr "$VAULT_ADDR" -server-pid "$vault_pid")

log "sanity: every answer checked against the HMAC computed locally"
"${grpc[@]}" -n "$WARM_DEVICES" -count 2000 -d 0 -verify -label verify-grpc >/dev/null
"${rest[@]}" -n "$WARM_DEVICES" -count 2000 -d 0 -verify -label verify-rest >/dev/null
"${restjwt[@]}" -n "$WARM_DEVICES" -count 2000 -d 0 -verify -label verify-rest-jwt >/dev/null
"$load" transit "${vaultflags[@]}" -vault-token-file "$out/transit.token" -n "$WARM_DEVICES" -count 200 -d 0 -verify >/dev/null
"$load" kv "${vaultflags[@]}" -vault-token-file "$out/signerd.token" -n "$WARM_DEVICES" -count 200 -d 0 -verify >/dev/null
echo "ok: gRPC, REST (mTLS and JWT), Transit and KV answers match the local HMAC / secret" >&2

# CPU time (clock ticks) a process has used; 0 when it is not running.
ticks() { { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; } || echo 0; }
run() { # label, command...
  local label=$1; shift
  log "$label"
  local s0 v0 t0 s1 v1 t1
  s0=$(ticks "$signerd_pid") v0=$(ticks "$vault_pid") t0=$(date +%s.%N)
  "$@" -label "$label" -json "$out/results/$label.json" || echo "bench: $label reported failures" >&2
  s1=$(ticks "$signerd_pid") v1=$(ticks "$vault_pid") t1=$(date +%s.%N)
  echo "$label $(( s1 - s0 )) $(( v1 - v0 )) $t0 $t1" >>"$out/cpu.txt"
}
# cpu_report: CPU per sign of signerd and of Vault in each run, from their
# utilisation over the run and the run's rate.
cpu_report() {
  local hz label ds dv t0 t1 rate hmac
  hz=$(getconf CLK_TCK)
  # One bare HMAC-SHA256: the hmac run's own CPU per sign.
  hmac=$(sed -n 's/.*"clientCPUMicrosPerSign": *\([0-9.e+-]*\).*/\1/p' "$out/results/hmac.json" 2>/dev/null)
  echo "| run | signerd | ÷ one HMAC | Vault | signerload (the client) | signerd alone on $(nproc) dedicated cores, at most |"
  echo "|---|--:|--:|--:|--:|--:|"
  while read -r label ds dv t0 t1; do
    rate=$(sed -n 's/.*"signsPerSecond": *\([0-9.e+-]*\).*/\1/p' "$out/results/$label.json" 2>/dev/null)
    client=$(sed -n 's/.*"clientCPUMicrosPerSign": *\([0-9.e+-]*\).*/\1/p' "$out/results/$label.json" 2>/dev/null)
    [ -n "$rate" ] || continue
    awk -v l="$label" -v ds="$ds" -v dv="$dv" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
      -v r="$rate" -v c="${client:-0}" -v hz="$hz" -v n="$(nproc)" -v h="${hmac:-0}" 'BEGIN {
      if (r <= 0 || t <= 0) exit
      s = ds / hz / t / r * 1e6; v = dv / hz / t / r * 1e6
      f = "%.0f µs"; if (c < 10) f = "%.2f µs"
      # Less than 2 µs per sign: the process was idle in this run (it
      # was not asked); show nothing rather than noise.
      printf "| %s | %s | %s | %s | %s | %s |\n", l, (s >= 2 ? sprintf("%.0f µs", s) : "–"), (s >= 2 && h > 0 ? sprintf("%.0f×", s / h) : "–"),
        (v >= 2 ? sprintf("%.0f µs", v) : "–"),
        (c > 0 ? sprintf(f, c) : "–"), (s >= 2 ? sprintf("%.0f signs/s", n * 1e6 / s) : "–")
    }'
  done <"$out/cpu.txt"
}
transit=("$load" transit "${vaultflags[@]}" -n "$WARM_DEVICES" -warmup "$WARMUP" "${common[@]}")
kv=("$load" kv "${vaultflags[@]}" -n "$WARM_DEVICES" -warmup "$WARMUP" "${common[@]}")
run transit      "${transit[@]}" -vault-token-file "$out/transit.token"
run kv           "${kv[@]}" -vault-token-file "$out/signerd.token"
# signerd's own Vault client keeps vault/api's default GOMAXPROCS+1 idle
# connections: at this concurrency most cold reads dial anew. This is the
# raw read under the same pool.
run kv-pool3     "${kv[@]}" -vault-token-file "$out/signerd.token" -vault-max-idle "$(( $(nproc) + 1 ))"
run transit-root "${transit[@]}" -vault-token-file "$out/root.token"
run kv-root      "${kv[@]}" -vault-token-file "$out/root.token"
run grpc-warm "${grpc[@]}" -n "$WARM_DEVICES" -warmup "$WARMUP" "${common[@]}"
run rest-warm "${rest[@]}" -n "$WARM_DEVICES" -warmup "$WARMUP" "${common[@]}"
run rest-jwt-warm "${restjwt[@]}" -n "$WARM_DEVICES" -warmup "$WARMUP" "${common[@]}"
# Devices never asked before: each sign is a cache miss and a Vault read.
run grpc-cold "${grpc[@]}" -unique -device-offset "$WARM_DEVICES" -n "$COLD_DEVICES" "${common[@]}"
run hmac      "$load" hmac -n "$WARM_DEVICES" "${common[@]}"
# One client: the cost signerd adds to a cold read, without queueing for the
# CPU that signerd, Vault and the load generator share here.
run kv-c1        "${kv[@]}" -vault-token-file "$out/signerd.token" -c 1
run grpc-cold-c1 "${grpc[@]}" -unique -device-offset "$(( WARM_DEVICES + COLD_DEVICES ))" -n "$COLD1_DEVICES" "${common[@]}" -c 1
run grpc-warm-c1 "${grpc[@]}" -n "$WARM_DEVICES" "${common[@]}" -c 1
rss_after_runs=$(rss)
cached_after_runs=$(metric signerd_secret_cache_entries)

log "memory: cache every one of $RSS_DEVICES devices (BatchSignMqttConnect, 1000 per call)"
fill_start=$SECONDS
"${grpc[@]}" -batch 1000 -unique -n "$RSS_DEVICES" -c 4 -d 0 -max-duration 30m -label rss-fill \
  -json "$out/results/rss-fill.json" | tee "$out/rss-fill.txt"
fill_secs=$(( SECONDS - fill_start ))
sleep 2
cached=$(metric signerd_secret_cache_entries)
rss_full=$(rss) hwm_full=$(hwm)
heap_inuse=$(metric go_memstats_heap_inuse_bytes) heap_alloc=$(metric go_memstats_heap_alloc_bytes)
run grpc-warm-all "${grpc[@]}" -n "$RSS_DEVICES" -warmup "$WARMUP" "${common[@]}"
rss_end=$(rss) hwm_end=$(hwm)

log "stop signerd and Vault"
kill "$signerd_pid" "$vault_pid" 2>/dev/null || true
wait "$signerd_pid" "$vault_pid" 2>/dev/null || true
signerd_pid="" vault_pid=""

log "go test -bench: in-process benchmarks (signing, cache, service, whole server), -benchtime $GO_BENCHTIME"
# ./secrets starts its own Vault server (SIGNERD_VAULT_BIN) for its Vault benchmarks.
go test -run '^$' -bench . -benchmem -benchtime "$GO_BENCHTIME" -count 1 ./signing/aliyun ./secrets ./service ./server 2>&1 \
  | grep -E '^(Benchmark|ok|FAIL|---)' | tee "$out/go-bench.txt"

log "report"
{
  echo "Measured $(date -u +%Y-%m-%dT%H:%M:%SZ) by \`scripts/bench.sh\` (results kept in \`$out\`):"
  echo
  echo '```'
  cat "$out/machine.txt"
  echo '```'
  echo
  echo "signerload runs (closed loop; latency of successful requests):"
  echo
  "$load" report "$out"/results/{transit,kv,grpc-warm,rest-warm,rest-jwt-warm,grpc-cold,hmac,transit-root,kv-root,kv-pool3,kv-c1,grpc-cold-c1,grpc-warm-c1,rss-fill,grpc-warm-all}.json
  echo
  echo "CPU per sign: the process's CPU use over the run (from /proc, warm-up included) divided by the run's rate:"
  echo
  cpu_report
  echo
  echo "Seeding Vault: $(tr '\n' ' ' <"$out/seed.txt")"
  echo
  echo "Memory of signerd (VmRSS):"
  echo
  echo "- started, nothing cached: ${rss_idle} MiB"
  echo "- after the runs above (${cached_after_runs:-?} cache entries): ${rss_after_runs} MiB"
  echo "- ${cached:-?} devices cached (filled in ${fill_secs}s): RSS ${rss_full} MiB, peak ${hwm_full} MiB; Go heap: $(( ${heap_inuse:-0} / 1048576 )) MiB in use, $(( ${heap_alloc:-0} / 1048576 )) MiB allocated (live and not yet collected)"
  echo "- after ${DURATION} more of warm gRPC load over all of them: RSS ${rss_end} MiB, peak ${hwm_end} MiB"
  awk -v n="${cached:-0}" -v r="$rss_full" -v p="$hwm_end" 'BEGIN {
    mb = r * 1.048576; peak = p * 1.048576
    printf "- target of issue 7, 100,000 devices cached ≤ 150 MB RSS: %.0f MB with %d cached (peak under load %.0f MB): %s\n",
      mb, n, peak, (n < 100000 ? "fewer than 100,000 cached, extrapolate" : (mb <= 150 ? "met" : "missed"))
  }'
  echo
  echo "go test -bench (in process; cpu-ns/op: CPU time of the whole process, client included, per op):"
  echo
  echo '```'
  grep '^Benchmark' "$out/go-bench.txt"
  echo '```'
} >"$out/report.md"
cat "$out/report.md"

# UPDATE_DOC=1 puts the report into docs/BENCHMARKS.md, between its markers.
if [ "${UPDATE_DOC:-0}" = 1 ]; then
  doc=docs/BENCHMARKS.md
  awk -v report="$out/report.md" '
    /<!-- BEGIN bench.sh report -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
    /<!-- END bench.sh report -->/ { skip = 0 }
    !skip { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
  echo "bench: updated $doc" >&2
fi
