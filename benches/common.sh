# Shared by load.sh and soak.sh (sourced): build the two bins, start/stop them pinned to cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --bins --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SERVER="$target_dir/release/hello-server"
SINK="$target_dir/release/otlp-sink"
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT=${PORT:-18080}
SINK_PORT=${SINK_PORT:-14318}
ENDPOINT="http://127.0.0.1:$SINK_PORT"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { # port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2; exit 1
}

# start_server <mode> <stderr-file>: sets SERVER_PID
start_server() {
    taskset -c "$SERVER_CORE" "$SERVER" "$1" "$PORT" "$ENDPOINT" 2>"$2" &
    SERVER_PID=$!; PIDS+=("$SERVER_PID")
    wait_port "$PORT"
}

stop() { # pid: SIGINT (graceful), SIGKILL after 10 s
    kill -INT "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# start_sink <ok|hang>: sets SINK_PID
start_sink() {
    taskset -c "$LOAD_CORE" "$SINK" "$1" "$SINK_PORT" 2>/dev/null &
    SINK_PID=$!; PIDS+=("$SINK_PID")
    wait_port "$SINK_PORT"
}

# drive <seconds>: requests per second of wrk (1 thread, 16 connections) on the load core
drive() {
    timeout $(( $1 + 30 )) taskset -c "$LOAD_CORE" wrk -t1 -c16 -d"$1"s "http://127.0.0.1:$PORT/users/42" \
        | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'
}
