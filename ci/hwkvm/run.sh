#!/usr/bin/env bash
# The hardware-KVM job (issue 15): km's hardware backend (CPL0 landing pad with
# sysretq, KVM guest debugging, debug registers, the guest TLB) run inside a QEMU
# guest whose CPU QEMU emulates with AMD SVM and nested paging (TCG, no host
# virtualisation needed), under Debian's own kernel with kvm-amd loaded.
#
#   ci/hwkvm/run.sh           the full set (README: the hardware-KVM job)
#   ci/hwkvm/run.sh --short   the subset .ci/run runs
#
# Needs (installed by .ci/run, not here): qemu-system-x86, linux-image-amd64,
# busybox-static, gdb, gdbserver, gcc, musl-tools, make.
#
# Each payload case runs natively here and under km in the guest (stdout and exit
# status compared); each gdb case runs its gdb-tests script against Debian's
# gdbserver here and against the guest's km (through QEMU's port forwarding), with
# the lines of ci/hwkvm/expect/CASE checked in order in both (a line starting with
# "=" must also read the same in both); a crash's kmcore is fetched and opened with
# gdb. Ends with "N passed, M failed" and each failure's output. A guest that prints
# nothing for STALL seconds is killed and booted once more; the whole job is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/ci/hwkvm

SHORT=0
[ "${1:-}" = --short ] && SHORT=1
STALL=${HWKVM_STALL:-180}
LIMIT=${HWKVM_LIMIT:-1500}

TARGET=$ROOT/target/x86_64-unknown-linux-gnu
PAYLOADS=$TARGET/tmp/payloads
KM=$TARGET/release/km
WORK=$TARGET/tmp/hwkvm
SCRATCH=/tmp/hwkvm-scratch

# Payload cases: "NAME SHORT PAYLOAD ARGS..." (SHORT 1: also in --short; SCRATCH is
# the case's own directory). They cover what differs on hardware: the pad's sysretq
# and flags (every syscall), exceptions and signal frames, threads on several vCPUs,
# fork and exec, the TLB flush after mprotect/munmap, and the syscalls the pad
# answers in the guest (returning with sysretq from CPL0 without an exit).
RUN_CASES=(
  "threads-glibc 1 threads.glibc"
  "threads-musl 0 threads.musl"
  "signals-glibc 1 signals.glibc"
  "signals-musl 0 signals.musl"
  "fault-null 1 fault.glibc null"
  "fault-div0 1 fault.glibc div0"
  "fault-ud2 0 fault.glibc ud2"
  "fault-abort 0 fault.glibc abort"
  "fault-text 0 fault.glibc text"
  "protect-ro 0 protect.glibc ro"
  "protect-none 0 protect.glibc none"
  "protect-other 1 protect.glibc other"
  "protect-rw 0 protect.glibc rw"
  "tlbflush-glibc 1 tlbflush.glibc"
  "tlbflush-musl 0 tlbflush.musl"
  "mmap-glibc 1 mmap.glibc SCRATCH"
  "brk-glibc 0 brk.glibc"
  "efault-glibc 1 efault.glibc"
  "exitcode-42 0 exitcode.glibc 42"
  "fork-glibc 1 forkexec.glibc fork"
  "exec-glibc 1 forkexec.glibc exec"
  "forkfds-glibc 0 forkfds.glibc"
  "execfds-glibc 0 execfds.glibc SCRATCH"
  "shared-glibc 0 shared.glibc"
  "earlykill-glibc 1 sigcompat.glibc earlykill"
  "idcalls-glibc 1 idcalls.glibc"
  "sigmask-glibc 1 sigmask.glibc"
  "sigactions-glibc 1 sigactions.glibc"
)
# gdb cases: "NAME SHORT MODE SCRIPT PAYLOAD ARGS..." (MODE run: km -g; listen: km
# --gdb-listen, gdb attaches, km then gets SIGTERM and the payload exits 3).
GDB_CASES=(
  "session 1 run session.gdb gdbdemo.glibc"
  "stepi 1 run stepi.gdb gdbdemo.glibc"
  "hbreak 1 run hbreak.gdb gdbdemo.glibc"
  "watch 1 run watch.gdb debuggee.glibc watch"
  "watchthreads 1 run watch-threads.gdb debuggee.glibc watchthreads"
  "attach 1 listen attach-detach.gdb waiter.glibc handler"
)

passed=0
failed=0
failures=""

say() { printf '%s\n' "$*"; }
pass() {
  passed=$((passed + 1))
  say "ok   $1"
}
fail() {
  failed=$((failed + 1))
  failures+="--- $1"$'\n'"$2"$'\n'
  say "FAIL $1"
}
selected() { [ "$SHORT" = 0 ] || [ "$1" = 1 ]; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check_tools() {
  local missing=()
  for tool in qemu-system-x86_64 gdb gdbserver make gcc musl-gcc python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ -x /bin/busybox ] || missing+=(busybox-static)
  compgen -G "/boot/vmlinuz-*" >/dev/null || missing+=(linux-image-amd64)
  if [ ${#missing[@]} -gt 0 ]; then
    say "hwkvm: missing ${missing[*]} (.ci/run installs them)" >&2
    exit 2
  fi
}

build() {
  cargo build --release --quiet
  make -s -C examples "O=$PAYLOADS" >/dev/null
}

# The newest installed Debian kernel and its module directory.
kernel() {
  VMLINUZ=$(ls -v /boot/vmlinuz-* | tail -n 1)
  MODULES=/lib/modules/${VMLINUZ#/boot/vmlinuz-}
  [ -d "$MODULES" ] || { say "hwkvm: no $MODULES" >&2; exit 2; }
}

# Prints the module files to load, dependencies first, for the modules named.
module_order() {
  local m path deps
  for m in "$@"; do
    path=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$MODULES/modules.dep" | cut -d: -f1)
    [ -n "$path" ] || { say "hwkvm: module $m not in $MODULES" >&2; exit 2; }
    deps=$(grep -E "^$path:" "$MODULES/modules.dep" | cut -d: -f2)
    printf '%s\n' $deps | tac
    printf '%s\n' "$path"
  done | awk 'NF && !seen[$0]++'
}

# The native run of each payload case: WORK/root/expected/NAME.{out,rc}.
native_runs() {
  local line name short exe args rc a
  mkdir -p "$WORK/root/expected" "$WORK/root/cases"
  : >"$WORK/root/cases/run"
  for line in "${RUN_CASES[@]}"; do
    read -r name short exe args <<<"$line"
    selected "$short" || continue
    rm -rf "${SCRATCH:?}/$name"
    mkdir -p "$SCRATCH/$name"
    local argv=()
    for a in $args; do
      [ "$a" = SCRATCH ] && a=$SCRATCH/$name
      argv+=("$a")
    done
    rc=0
    # The group's stderr also takes bash's report of a payload's fatal signal.
    { (cd "$SCRATCH/$name" && timeout 120 "$PAYLOADS/$exe" "${argv[@]}") \
      </dev/null >"$WORK/root/expected/$name.out"; } 2>/dev/null || rc=$?
    echo "$rc" >"$WORK/root/expected/$name.rc"
    echo "$name $exe $args" >>"$WORK/root/cases/run"
  done
}

# The payloads the cases run (and exitcode.glibc, which tells the backend).
used_payloads() {
  {
    cut -d' ' -f2 "$WORK/root/cases/run"
    for line in "${GDB_CASES[@]}"; do cut -d' ' -f5 <<<"$line"; done
    echo exitcode.glibc
    echo fault.glibc
  } | sort -u
}

initramfs() {
  local root=$WORK/root f
  mkdir -p "$root/bin" "$root/modules" "$root/p" "$root"/{proc,sys,dev,tmp,etc}
  cp /bin/busybox "$root/bin/busybox"
  cp "$HERE/init" "$root/init"
  chmod +x "$root/init"
  cp "$KM" "$root/bin/km"
  for f in $(used_payloads); do
    cp "$PAYLOADS/$f" "$root/p/"
  done
  : >"$root/modules/order"
  for f in $(module_order irqbypass kvm ccp kvm-amd e1000); do
    cp "$MODULES/$f" "$root/modules/"
    basename "$f" >>"$root/modules/order"
  done
  : >"$root/cases/gdb"
  local line name short mode script exe args
  for line in "${GDB_CASES[@]}"; do
    read -r name short mode script exe args <<<"$line"
    selected "$short" || continue
    echo "$name $mode $exe $args" >>"$root/cases/gdb"
  done
  if [ "$SHORT" = 0 ]; then echo fault.glibc >"$root/cases/kmcore"; else : >"$root/cases/kmcore"; fi
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$WORK/initramfs.gz"
}

# Whether `shown` (a file) has the expected lines of case $1 in order; for "="
# lines, also whether the line found reads as in `other` (a file, when given).
# Prints what is missing.
expect_lines() {
  python3 - "$HERE/expect/$1" "$2" "${3:-}" <<'EOF'
import sys
want = open(sys.argv[1]).read().splitlines()
def found(path):
    lines = open(path, errors="replace").read().splitlines()
    at, hits = 0, []
    for w in want:
        key = w[1:] if w.startswith("=") else w
        i = next((i for i in range(at, len(lines)) if key in lines[i]), None)
        if i is None:
            print(f"no line with {key!r} after line {at}")
            sys.exit(1)
        hits.append((w.startswith("="), lines[i]))
        at = i + 1
    return hits
mine = found(sys.argv[2])
if sys.argv[3]:
    for (same, a), (_, b) in zip(mine, found(sys.argv[3])):
        if same and a != b:
            print(f"reads {a!r}, under gdbserver {b!r}")
            sys.exit(1)
EOF
}

gdb_batch() {
  local port=$1 script=$2 exe=$3 out=$4
  timeout 300 gdb -batch -nx -ex "target remote 127.0.0.1:$port" \
    -x "$ROOT/gdb-tests/$script" "$exe" </dev/null >"$out" 2>&1 || true
}

# Each gdb case of mode run against gdbserver and the native payload, now.
gdbserver_runs() {
  local line name short mode script exe args port pid
  mkdir -p "$WORK/gdb"
  for line in "${GDB_CASES[@]}"; do
    read -r name short mode script exe args <<<"$line"
    selected "$short" && [ "$mode" = run ] || continue
    mkdir -p "$SCRATCH/gdbserver-$name"
    port=$(free_port)
    # shellcheck disable=SC2086 # args are single words
    (cd "$SCRATCH/gdbserver-$name" && exec gdbserver ":$port" "$PAYLOADS/$exe" $args) \
      </dev/null >/dev/null 2>"$WORK/gdb/$name.gdbserver.err" &
    pid=$!
    for _ in $(seq 100); do
      grep -q "Listening on port" "$WORK/gdb/$name.gdbserver.err" && break
      sleep 0.1
    done
    gdb_batch "$port" "$script" "$PAYLOADS/$exe" "$WORK/gdb/$name.gdbserver"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if why=$(expect_lines "$name" "$WORK/gdb/$name.gdbserver"); then
      pass "gdbserver $name"
    else
      fail "gdbserver $name" "$why"$'\n'"$(cat "$WORK/gdb/$name.gdbserver")"
    fi
  done
}

gdb_case_field() {
  local line name rest
  for line in "${GDB_CASES[@]}"; do
    read -r name rest <<<"$line"
    [ "$name" = "$1" ] && { read -r _ _ mode script exe args <<<"$line"; return 0; }
  done
  return 1
}

# The host's side of a gdb case the guest made ready.
gdb_session() {
  local name=$1 out=$WORK/gdb/$1.km why
  gdb_case_field "$name"
  gdb_batch "$GDB_PORT" "$script" "$PAYLOADS/$exe" "$out"
  other=$WORK/gdb/$name.gdbserver
  [ "$mode" = run ] || other=""
  if why=$(expect_lines "$name" "$out" "$other"); then
    pass "km $name"
  else
    fail "km $name" "$why"$'\n'"$(cat "$out")"
  fi
  # Tells the guest the session is over.
  (exec 5<>"/dev/tcp/127.0.0.1/$TURN_PORT") 2>/dev/null || true
}

# How the guest's km of a gdb case ended: $2 is "rc=N", $3 what it printed.
gdb_end() {
  local name=$1 rc=${2#rc=} shown=$3 want=0
  gdb_case_field "$name"
  [ "$mode" = listen ] && want=3
  if [ "$rc" = "$want" ] && { [ "$mode" != listen ] || grep -q "handled SIGTERM" <<<"$shown"; }; then
    pass "km $name ends"
  else
    fail "km $name ends" "status $rc, expected $want"$'\n'"$shown"
  fi
}

# The guest's kmcore of fault.glibc's threads case (sent gzipped): gdb shows the
# crash's stack and its three threads.
kmcore_check() {
  local rc=${1#rc=} size=${2#size=} raw=${3#raw=} core=$WORK/kmcore bt
  rm -f "$core" "$core.gz"
  if [ "$size" != 0 ]; then
    timeout 120 head -c "$size" <"/dev/tcp/127.0.0.1/$TURN_PORT" >"$core.gz" 2>/dev/null || true
    gunzip -f "$core.gz" 2>/dev/null || true
  fi
  bt=$(gdb -batch -nx "$PAYLOADS/fault.glibc" "$core" -ex bt -ex "info threads" </dev/null 2>&1 || true)
  if [ "$rc" = 139 ] && [ "$(stat -c %s "$core" 2>/dev/null || echo 0)" = "$raw" ] &&
    grep -q "level2" <<<"$bt" && grep -q "level1" <<<"$bt" && grep -q "in main" <<<"$bt" &&
    [ "$(grep -c "Thread " <<<"$bt")" -ge 3 ]; then
    pass "kmcore"
  else
    fail "kmcore" "status $rc (expected 139), $raw bytes ($size gzipped)"$'\n'"$4"$'\n'"$bt"
  fi
}

# Boots the guest and follows its results; returns 1 on a stall or past the bound.
boot_and_follow() {
  local results=$WORK/results.log line detail="" pending="" qemu status=0
  GDB_PORT=$(free_port)
  TURN_PORT=$(free_port)
  : >"$results"
  : >"$WORK/console.log"
  qemu-system-x86_64 -accel tcg -cpu EPYC,+svm,+npt -smp 1 -m 2048 \
    -kernel "$VMLINUZ" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -display none -monitor none -no-reboot \
    -serial "file:$WORK/console.log" -serial "file:$results" \
    -nic "user,model=e1000,hostfwd=tcp:127.0.0.1:$GDB_PORT-:2159,hostfwd=tcp:127.0.0.1:$TURN_PORT-:2160" \
    2>"$WORK/qemu.err" &
  qemu=$!
  BOOTED_AT=$SECONDS
  exec 4< <(tail -n +1 -F "$results" 2>/dev/null)
  local follower=$!
  while :; do
    local left=$((DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || { say "hwkvm: past the bound of ${LIMIT}s"; status=1; break; }
    [ "$left" -lt "$STALL" ] || left=$STALL
    if ! IFS= read -r -t "$left" -u 4 line; then
      say "hwkvm: no output from the guest for ${left}s"
      status=1
      break
    fi
    line=${line%$'\r'}
    if [[ $line == "  "* ]]; then
      detail+="$line"$'\n'
      continue
    fi
    flush_pending
    case $line in
      "BOOT "*) say "guest: ${line#BOOT } (after $((SECONDS - BOOTED_AT))s)" ;;
      # The next line settled the one before (flush_pending above).
      "RUN "* | "SEND "*) ;;
      "PASS "*) pass "${line#PASS }" ;;
      "FAIL "* | "GDB-END "* | "KMCORE "*) pending=$line ;;
      "GDB-READY "*) gdb_session "${line#GDB-READY }" ;;
      "ALL-DONE") break ;;
      *) say "guest: $line" ;;
    esac
  done
  flush_pending
  kill "$qemu" 2>/dev/null || true
  wait "$qemu" 2>/dev/null || true
  exec 4<&-
  kill "$follower" 2>/dev/null || true
  return $status
}

# Settles the last result line that takes detail lines ($pending, $detail).
flush_pending() {
  [ -n "$pending" ] || return 0
  local words
  read -r -a words <<<"$pending"
  case $pending in
    "FAIL "*) fail "${words[1]%:}" "${pending#FAIL }"$'\n'"$detail" ;;
    "GDB-END "*) gdb_end "${words[1]}" "${words[2]}" "$detail" ;;
    "KMCORE "*) kmcore_check "${words[1]}" "${words[2]}" "${words[3]}" "$detail" ;;
  esac
  pending=""
  detail=""
}

main() {
  check_tools
  local started=$SECONDS
  DEADLINE=$((SECONDS + LIMIT))
  build
  kernel
  rm -rf "$WORK"
  mkdir -p "$WORK"
  native_runs
  initramfs
  say "hwkvm: $(wc -l <"$WORK/root/cases/run") payload cases, $(wc -l <"$WORK/root/cases/gdb") gdb cases; QEMU TCG, CPU EPYC,+svm,+npt, 1 vCPU, kernel $VMLINUZ"
  gdbserver_runs
  local native_passed=$passed native_failed=$failed native_failures=$failures
  local attempt
  for attempt in 1 2; do
    if boot_and_follow; then
      break
    fi
    if [ "$attempt" = 1 ] && [ $((DEADLINE - SECONDS)) -gt "$STALL" ]; then
      say "hwkvm: the guest stalled; booting it once more (console: $WORK/console.log)"
      tail -n 20 "$WORK/console.log" || true
      passed=$native_passed failed=$native_failed failures=$native_failures
    else
      fail "guest run" "the guest stalled or ran past the bound; console:"$'\n'"$(tail -n 40 "$WORK/console.log")"
      break
    fi
  done
  say "hwkvm: job took $((SECONDS - started))s"
  [ -z "$failures" ] || printf '\n%s' "$failures"
  say "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

main
