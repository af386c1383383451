#!/usr/bin/env bash
# test_main_flags.sh - runs the built spy_server binary: --help, bad flags
# (exit 2, one line on stderr, data dir untouched), a store that cannot open
# (exit 1, one line), serving on ::1 (a raw PING frame), SIGTERM (exit 0),
# --ip=:: without --advertise_ip, and --daemonize=1 with --pid_file.
# Usage: test_main_flags.sh path/to/spy_server
set -u
bin=$(realpath "${1:?usage: test_main_flags.sh path/to/spy_server}")
tmp=$(mktemp -d /tmp/spy_flags.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# A PING request (req_id 1) and the bytes of its OK response, from proto.h.
ping_req='\x53\x59\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x0a\x5d\xe8\x50'
ping_ok=5359010101000000000000000000000100000000f851e5ae

required=(--master_ip=127.0.0.1 --master_port=1 --group_id=3)

# expect_usage_error NAME_IN_MESSAGE ARGS...: exit 2, exactly one stderr line
# naming the problem, nothing on stdout, the data dir left empty.
expect_usage_error() {
    local needle=$1
    shift
    local dir=$tmp/untouched
    mkdir -p "$dir"
    "$bin" --data_dir="$dir" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq 2 ] || fail "$*: exit $rc, want 2"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$*: stderr is not one line: $(cat "$tmp/err")"
    grep -q "^spy_server: .*$needle" "$tmp/err" || fail "$*: '$(cat "$tmp/err")' lacks '$needle'"
    [ ! -s "$tmp/out" ] || fail "$*: wrote to stdout"
    [ -z "$(ls -A "$dir")" ] || fail "$*: touched the data dir"
}

# ping HOST PORT: sends one PING frame, checks the 24-byte OK response.
ping_server() {
    local got
    got=$(
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "$ping_req" >&3
        timeout 5 head -c 24 <&3 | xxd -p | tr -d '\n'
    ) || return 1
    [ "$got" = "$ping_ok" ]
}

# start_server LOGFILE ARGS...: starts spy_server on a free-looking port and
# waits until it answers PING on HOST (set $host first). Sets $pid and $port.
start_server() {
    local log=$1
    shift
    for attempt in 1 2 3 4 5; do
        port=$((10000 + RANDOM % 22000))
        "$bin" --port=$port "$@" >"$log" 2>&1 &
        pid=$!
        pids+=("$pid")
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if ping_server "$host" "$port" 2>/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && fail "server on port $port never answered: $(cat "$log")"
        grep -q "cannot listen" "$log" || return 1 # failed for another reason
    done
    fail "no free port found"
}

# running PID: alive and not a zombie (a daemon's parent may not reap it).
running() {
    [ -e "/proc/$1" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# stop_server: SIGTERM, then the exit status must be 0 within 15 s.
stop_server() {
    kill -TERM "$pid"
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "still running 15 s after SIGTERM"
    wait "$pid"
    local rc=$?
    [ $rc -eq 0 ] || fail "exit status $rc after SIGTERM, want 0"
}

# --help: exit 0, every flag of the original plus ours.
"$bin" --help >"$tmp/help" 2>&1 || fail "--help exited $?"
for f in port ip data_dir error_log mem_blocks chunks sync daemonize master_ip master_port \
    group_id chunk_size advertise_ip report_interval idle_timeout max_conns pid_file D debug; do
    grep -q -- "--$f=" "$tmp/help" || fail "--help does not list --$f"
done

expect_usage_error "master_ip" --master_port=1 --group_id=3
expect_usage_error "master_port" --master_ip=127.0.0.1 --group_id=3
expect_usage_error "group_id" --master_ip=127.0.0.1 --master_port=1
expect_usage_error "--sync" "${required[@]}" --sync=2
expect_usage_error "--daemonize" "${required[@]}" --daemonize=yes
expect_usage_error "--port" "${required[@]}" --port=abc
expect_usage_error "--port" "${required[@]}" --port=70000
expect_usage_error "--group_id" --master_ip=127.0.0.1 --master_port=1 --group_id=0
expect_usage_error "--group_id" --master_ip=127.0.0.1 --master_port=1 --group_id=65536
expect_usage_error "bogus" "${required[@]}" --bogus=1
expect_usage_error "--chunk_size" "${required[@]}" --chunk_size=1000
expect_usage_error "--ip" "${required[@]}" --ip=not-an-address
expect_usage_error "--advertise_ip" "${required[@]}" --advertise_ip=0.0.0.0
expect_usage_error "--master_ip" --master_ip= --master_port=1 --group_id=3
# The original's spelling: -name value.
expect_usage_error "--mem_blocks" -master_ip 127.0.0.1 -master_port 1 -group_id 3 -mem_blocks 0

# A store that cannot open: exit 1, one line.
: >"$tmp/not_a_dir"
"$bin" "${required[@]}" --data_dir="$tmp/not_a_dir" --port=1 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "store open failure: exit $rc, want 1"
grep -q "^spy_server: cannot open the store" "$tmp/err" || fail "store failure: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "store failure: not one line: $(cat "$tmp/err")"

# A log file that cannot be opened: exit 1, one line.
mkdir -p "$tmp/logtest"
"$bin" "${required[@]}" --data_dir="$tmp/logtest" --error_log="$tmp/no/such/dir/log" \
    >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "bad --error_log: exit $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "bad --error_log: not one line: $(cat "$tmp/err")"
grep -q "^spy_server: cannot open --error_log" "$tmp/err" || fail "bad --error_log: $(cat "$tmp/err")"

common=(--master_ip=::1 --master_port=1 --group_id=3 --chunks=2 --chunk_size=4M
    --mem_blocks=4 --report_interval=1)

# IPv6: --ip=::1 serves, SIGTERM ends it with status 0.
host=::1
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    mkdir -p "$tmp/v6"
    start_server "$tmp/v6.log" --ip=::1 --data_dir="$tmp/v6" "${common[@]}" ||
        fail "--ip=::1 did not start: $(cat "$tmp/v6.log")"
    ls "$tmp/v6" | grep -q . || fail "no chunk files created"
    stop_server
    grep -q "shutting down" "$tmp/v6.log" || fail "no shutdown line: $(cat "$tmp/v6.log")"
else
    echo "note: no IPv6 loopback here, skipping the ::1 server check"
fi

# --ip=:: without --advertise_ip: serves (advertising a host address) if the
# host name resolves to a non-loopback address, else exit 2 naming the flag.
mkdir -p "$tmp/wild"
host=127.0.0.1
if start_server "$tmp/wild.log" --ip=:: --data_dir="$tmp/wild" "${common[@]}"; then
    adv=$(sed -n 's/.*(advertised as \([^)]*\)).*/\1/p' "$tmp/wild.log")
    case "$adv" in
    "" | 127.* | ::1 | 0.0.0.0 | ::) fail "--ip=:: advertised '$adv': $(cat "$tmp/wild.log")" ;;
    esac
    stop_server
else
    wait "$pid"
    rc=$?
    [ $rc -eq 2 ] || fail "--ip=:: failed with exit $rc: $(cat "$tmp/wild.log")"
    grep -q "advertise_ip" "$tmp/wild.log" || fail "--ip=:: error lacks advertise_ip"
fi

# --daemonize=1: the parent returns 0 once the daemon serves; pid file;
# relative paths resolved before the daemon changes to /.
mkdir -p "$tmp/daemon"
port=$((10000 + RANDOM % 22000))
(cd "$tmp" && "$bin" --daemonize=1 --port=$port --ip=127.0.0.1 --data_dir=daemon \
    --error_log=daemon.log --pid_file=daemon.pid "${common[@]}") ||
    fail "--daemonize=1 exited $?: $(cat "$tmp/daemon.log" 2>/dev/null)"
[ -s "$tmp/daemon.pid" ] || fail "no pid file"
pid=$(cat "$tmp/daemon.pid")
pids+=("$pid")
ping_server 127.0.0.1 $port || fail "daemon does not answer PING"
grep -q "serving group 3" "$tmp/daemon.log" || fail "daemon log: $(cat "$tmp/daemon.log")"
kill -TERM "$pid"
for _ in $(seq 150); do
    running "$pid" || break
    sleep 0.1
done
running "$pid" && fail "daemon still running after SIGTERM"
[ ! -e "$tmp/daemon.pid" ] || fail "pid file left behind"
grep -q "stopped" "$tmp/daemon.log" || fail "daemon did not stop cleanly: $(cat "$tmp/daemon.log")"

echo "ok: spy_server flags, errors, IPv6, SIGTERM, daemonize"
