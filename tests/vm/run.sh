#!/bin/bash
# Several variables are only read through write_vm_env (by name).
# shellcheck disable=SC2034
# SPDX-License-Identifier: GPL-2.0
#
# Run the VM tests on one or all supported kernels.
#
#   tests/vm/run.sh [--build DIR] [--filter GLOB] [--jobs N] [--shards N]
#                   RELEASE...|all
#
# RELEASE: bookworm (6.1), trixie (6.12), sid (newest). For each kernel:
# prepare.sh (cached), build blksnap.ko into BUILD/vm/RELEASE/ with
# kernel/build.sh, boot QEMU guests (TCG) that run tests/vm/tests/*.sh
# (those matching GLOB), collect the results. Each kernel's tests are dealt
# out to N shards (default: as many as jobs), one guest each; up to N
# guests run at once (default: one per host CPU; each guest keeps about
# one CPU busy). Shards keep a CPU busy while the last kernel runs.
#
# Output (stdout): the TAP lines of all kernels, numbered across kernels,
# the time each kernel took, and as the very last line
#   N passed, N failed
# Progress and the guests' serial consoles go to stderr. Exit status 0 only
# if every test passed.
#
# Results: BUILD/vm-results/RELEASE/{console.log,results.tap,NAME.log,...},
# with one numbered folder per shard when there are several
# (RELEASE/1/console.log, ...); prepare.log and build.log stay in RELEASE/.
#
# Environment:
#   BLKSNAP_VM_JOBS          default for --jobs
#   BLKSNAP_VM_SHARDS        default for --shards
#   BLKSNAP_VM_TIMEOUT       seconds per kernel for boot + all tests (2400)
#   BLKSNAP_VM_TEST_TIMEOUT  default per-test timeout in seconds (300)
#   BLKSNAP_VM_DISK_SIZE     size of /dev/vdb and /dev/vdc (2G)
#   BLKSNAP_VM_MEM, BLKSNAP_VM_SMP  guest RAM in MiB (4096), CPUs (2)
#   BLKSNAP_VM_TCG_THREAD    QEMU TCG threading, single or multi (single;
#                            see qemu_cmd in host-lib.sh for why)
#   BLKSNAP_VM_SCRATCH       where the disk images live (/var/tmp)
#   BLKSNAP_VM_CACHE         prepared kernels (/var/cache/blksnap-vm)
#   BLKSNAP_VM_QUIET=1       do not stream the consoles to stderr
#   BLKSNAP_VM_APPEND        extra guest kernel command line
#   BLKSNAP_KERNEL_DIR       module sources with build.sh (SRC/kernel)
#   BLKSNAP_VM_TESTS_DIR     where the test scripts are (tests/vm/tests);
#                            bench/run.sh points it at bench/guest
#   BLKSNAP_VM_RESULTS_NAME  results folder under BUILD (vm-results)
set -uo pipefail

# shellcheck source=host-lib.sh
. "$(dirname "$0")/host-lib.sh"

build=$(default_build_dir)
filter='*'
jobs=${BLKSNAP_VM_JOBS:-$(nproc)}
shards=${BLKSNAP_VM_SHARDS:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--filter) filter=$2; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	--shards) shards=$2; shift 2 ;;
	-h|--help) sed -n '3,30p' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || die "usage: run.sh [--build DIR] [--filter GLOB] [--jobs N] [--shards N] RELEASE...|all"
case "$jobs" in ''|*[!0-9]*|0) die "--jobs wants a positive number, not '$jobs'" ;; esac
shards=${shards:-$jobs}
case "$shards" in ''|*[!0-9]*|0) die "--shards wants a positive number, not '$shards'" ;; esac
[ "$(id -u)" = 0 ] || die "run.sh must run as root"
releases=()
for r in "$@"; do
	if [ "$r" = all ]; then
		read -ra releases <<<"$RELEASES"
	else
		valid_release "$r" || die "unknown release '$r' (one of: $RELEASES all)"
		releases+=("$r")
	fi
done

mkdir -p "$build"
build=$(cd "$build" && pwd)
results_root=$build/${BLKSNAP_VM_RESULTS_NAME:-vm-results}
global_timeout=${BLKSNAP_VM_TIMEOUT:-2400}
disk_size=${BLKSNAP_VM_DISK_SIZE:-2G}
VM_DISK_BYTES=$(size_bytes "$disk_size")
VM_DISKS="/dev/vdb /dev/vdc"
BLKSNAP_VM_TEST_TIMEOUT=${BLKSNAP_VM_TEST_TIMEOUT:-300}

export BLKSNAP_VM_TESTS_DIR=${BLKSNAP_VM_TESTS_DIR:-$VM_DIR/tests}
# Benchmark knobs (every BENCH_* in the environment) travel to the guest.
mapfile -t bench_knobs < <(compgen -e | grep '^BENCH_' || true)
VM_BENCH_KNOBS="${bench_knobs[*]}"
# The tests and their time limits, as guest-run.sh will see them.
names=()
test_timeouts=()
while read -r name tmo; do
	names+=("$name")
	test_timeouts+=("$tmo")
done < <(BLKSNAP_VM_TEST_TIMEOUT=$BLKSNAP_VM_TEST_TIMEOUT "$VM_DIR/guest-run.sh" --list --filter "$filter")
[ ${#names[@]} -gt 0 ] || die "no test in $VM_DIR/tests matches '$filter'"
[ "$shards" -le ${#names[@]} ] || shards=${#names[@]}

# Cleanup for Ctrl-C / kill: stop QEMU (timeout(1) runs it in its own
# process group, out of reach of the terminal's SIGINT) and drop the disks.
# Each kernel runs in a subshell of its own (see run_in_subshell), with its
# own copy of these; the main shell stops the subshells.
qemu_pid=
tail_pid=
scratch=
cleanup() {
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
	[ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null
	[ -n "$scratch" ] && rm -rf "$scratch"
	qemu_pid="" tail_pid="" scratch=""
}
release_pids=()
stop_releases() {
	local p
	for p in "${release_pids[@]}"; do kill "$p" 2>/dev/null; done
	wait
}
trap stop_releases EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tap_lines=()   # "STATUS - RELEASE: NAME# DIRECTIVE" without numbers
timings=()

# record RELEASE DEFAULT_REASON: turn RESULTS/results.tap into tap_lines,
# in the planned order; planned tests without a line get "not ok" with the
# reason (the first one gets FIRST_REASON when given: the test that was
# running when the guest died or the clock ran out).
record() {
	local rel=$1 results=$2 rest_reason=$3 first_reason=${4:-} name line
	declare -A got=()
	if [ -f "$results/results.tap" ]; then
		while IFS= read -r line; do
			if [[ $line =~ ^(ok|not\ ok)\ [0-9]+\ -\ [^:]+:\ ([^ #]+)(.*)$ ]]; then
				got[${BASH_REMATCH[2]}]="${BASH_REMATCH[1]}|${BASH_REMATCH[3]}"
			fi
		done <"$results/results.tap"
	fi
	for name in "${names[@]}"; do
		if [ -n "${got[$name]:-}" ]; then
			line=${got[$name]}
			tap_lines+=("${line%%|*}|$rel: $name${line#*|}")
		elif [ -n "$first_reason" ]; then
			tap_lines+=("not ok|$rel: $name # $first_reason")
			first_reason=
		else
			tap_lines+=("not ok|$rel: $name # $rest_reason")
		fi
	done
}

console_tail() {
	say "----- last lines of $1 -----"
	tail -n "${2:-60}" "$1" >&2
	say "-----"
}

# watch_progress RESULTS QEMU_PID: wait for QEMU to end, watching the
# guest's results.tap. A guest that wedges (a livelocked CPU stalls RCU, and
# then guest-run.sh itself) gives no result for the test it was running:
# once that test is well past its own timeout, plus the margin guest-run.sh
# needs to find and report stuck processes, QEMU is killed (return 1,
# WEDGED_REASON says which test), rather than waiting out the global
# timeout while the other kernels wait their turn.
watch_progress() {
	local results=$1 pid=$2 done_n=-1 n since limit
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		[ -f "$results/booted" ] || continue
		n=$(grep -cE '^(ok|not ok) ' "$results/results.tap" 2>/dev/null)
		if [ "${n:-0}" != "$done_n" ]; then
			done_n=${n:-0}
			since=$(now)
		fi
		[ "$done_n" -lt ${#names[@]} ] || continue
		limit=$(( ${test_timeouts[$done_n]} + 180 ))
		if [ $(( $(now) - since )) -gt "$limit" ]; then
			WEDGED_REASON="guest stopped responding: no result ${limit} s after this test began"
			kill "$pid" 2>/dev/null
			return 1
		fi
	done
	return 0
}

# prepare_release RELEASE: prepare.sh (cached) and the module build, once
# per kernel before its guests start (they load the same blksnap.ko).
# Sets RELEASE_DIR and, through load_env, the kernel's variables. On
# failure, records its tests as not run and returns 1.
prepare_release() {
	local rel=$1 t0 t1 p_s b_s
	RELEASE_DIR=$results_root/$rel
	rm -rf "$RELEASE_DIR"
	mkdir -p "$RELEASE_DIR"
	say "=== $rel ==="
	t0=$(now)
	if ! "$VM_DIR/prepare.sh" "$rel" 2> >(tee "$RELEASE_DIR/prepare.log" >&2); then
		record "$rel" "$RELEASE_DIR" "did not run (prepare.sh failed)"
		timings+=("# $rel: prepare failed after $(( $(now) - t0 )) s")
		return 1
	fi
	load_env "$rel"
	p_s=$(( $(now) - t0 ))

	t1=$(now)
	BLKSNAP_KO=$build/vm/$rel/blksnap.ko
	if ! build_module "$build/vm/$rel" >"$RELEASE_DIR/build.log" 2>&1; then
		say "module build for $rel ($KVER) failed:"
		tail -n 40 "$RELEASE_DIR/build.log" >&2
		record "$rel" "$RELEASE_DIR" "did not run (module build failed, see build.log)"
		timings+=("# $rel ($KVER): prepare $p_s s, module build failed")
		return 1
	fi
	b_s=$(( $(now) - t1 ))
	timings+=("# $rel ($KVER): prepare $p_s s, build $b_s s")
}

# run_guest RELEASE SHARD: boot a guest of the prepared RELEASE that runs
# the tests in names[] (the shard's), and record their results.
run_guest() {
	local rel=$1 shard=$2 results=$RELEASE_DIR unit=$1 t_boot t_end rc
	local boot_s test_s
	if [ "$shards" -gt 1 ]; then
		results=$RELEASE_DIR/$shard
		unit="$rel/$shard"
		mkdir -p "$results"
	fi

	scratch=$(mktemp -d "${BLKSNAP_VM_SCRATCH:-/var/tmp}/blksnap-vm.XXXXXX")
	make_disks "$scratch" "$disk_size"
	VM_TESTS="${names[*]}"
	VM_RESULTS_HOST=$results
	BLKSNAP_SRC=$SRC_DIR BLKSNAP_BUILD=$build \
		write_vm_env "$results/vm.env" RELEASE KVER MODDIR BLKSNAP_SRC \
		BLKSNAP_BUILD BLKSNAP_KO VM_DISKS VM_DISK_BYTES \
		BLKSNAP_VM_TEST_TIMEOUT VM_TESTS VM_RESULTS_HOST \
		BLKSNAP_VM_TESTS_DIR VM_BENCH_KNOBS "${bench_knobs[@]}"

	qemu_cmd test "$results" "$scratch"
	printf '%q ' "${QEMU[@]}" >"$results/qemu.cmd"
	: >"$results/console.log"
	if [ "${BLKSNAP_VM_QUIET:-0}" != 1 ]; then
		# Several guests at once: say whose console a line is from.
		local prefix=
		[ "$jobs" -gt 1 ] && prefix="[$unit] "
		tail -n +1 -F "$results/console.log" \
			> >(sed -u "s|^|$prefix|" >&2) 2>/dev/null &
		tail_pid=$!
	fi
	t_boot=$(now)
	timeout -k 10 "$global_timeout" "${QEMU[@]}" -serial "file:$results/console.log" \
		</dev/null >"$results/qemu.log" 2>&1 &
	qemu_pid=$!
	wedged=
	watch_progress "$results" "$qemu_pid" || wedged=$WEDGED_REASON
	wait "$qemu_pid"
	rc=$?
	qemu_pid=
	t_end=$(now)
	sleep 0.3 # let tail print the last console lines
	cleanup

	# Boot time: until stage 2 wrote "booted" on the results share.
	if [ -f "$results/booted" ]; then
		boot_s=$(( $(stat -c %Y "$results/booted") - t_boot ))
		test_s=$(( t_end - t_boot - boot_s ))
	else
		boot_s='?' test_s='?'
	fi

	if grep -q '^# BLKSNAP-VM-DONE' "$results/results.tap" 2>/dev/null; then
		record "$rel" "$results" "did not report"
	elif [ -n "$wedged" ]; then
		say "$unit: $wedged; QEMU killed"
		record "$rel" "$results" "did not run (guest stopped responding)" "$wedged"
		console_tail "$results/console.log"
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		say "$unit: global timeout (${global_timeout} s) hit, QEMU killed"
		record "$rel" "$results" "did not run (global timeout)" \
			"timeout (global, ${global_timeout} s)"
		console_tail "$results/console.log"
	else
		say "$unit: the guest stopped before finishing (QEMU exit status $rc)"
		record "$rel" "$results" "did not run (guest died)" \
			"guest died or stopped during this test, see console.log"
		[ -s "$results/qemu.log" ] && cat "$results/qemu.log" >&2
		console_tail "$results/console.log"
	fi
	if grep -q '^# BLKSNAP-VM-DONE' "$results/results.tap" 2>/dev/null &&
		grep -q '^not ok' "$results/results.tap"; then
		console_tail "$results/console.log" 30
	fi
	timings+=("# $unit: boot $boot_s s, tests $test_s s (${#names[@]} tests)")
}

# run_in_subshell RELEASE SHARD: run_guest in the background for every
# shards-th test from the SHARD-th on; what it records goes to files in
# $collect, read back in release order below.
collect=$(mktemp -d)
# save_collected NAME: move tap_lines and timings to $collect/NAME.*.
save_collected() {
	printf '%s\n' "${tap_lines[@]}" >"$collect/$1.tap"
	printf '%s\n' "${timings[@]}" >"$collect/$1.timing"
	tap_lines=() timings=()
}
run_in_subshell() {
	(
		trap cleanup EXIT
		trap 'exit 143' TERM
		trap '' INT # the main shell handles Ctrl-C and stops us
		local i all=("${names[@]}") all_timeouts=("${test_timeouts[@]}")
		# shellcheck disable=SC2030 # this subshell's own, written to $collect
		tap_lines=() timings=() names=() test_timeouts=()
		for ((i = $2 - 1; i < ${#all[@]}; i += shards)); do
			names+=("${all[i]}")
			test_timeouts+=("${all_timeouts[i]}")
		done
		run_guest "$1" "$2"
		save_collected "$1.$2"
	) &
	release_pids+=($!)
}

# Deal out the guests; a kernel is prepared (in the foreground) while the
# guests of the one before it run.
[ "$jobs" -le $(( ${#releases[@]} * shards )) ] || jobs=$(( ${#releases[@]} * shards ))
[ "$jobs" -gt 1 ] && say "running $jobs guests at a time, $shards per kernel"
for r in "${releases[@]}"; do
	# shellcheck disable=SC2031 # the main shell's own
	if ! prepare_release "$r"; then
		save_collected "$r.1"
		continue
	fi
	save_collected "$r.0"
	for ((k = 1; k <= shards; k++)); do
		while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
		run_in_subshell "$r" "$k"
	done
done
wait
release_pids=()
# Each kernel's results in the order of the test list, whatever shard ran
# them; a shard whose runner left no file counts its tests as not run.
for r in "${releases[@]}"; do
	declare -A line_of=()
	for ((k = 1; k <= shards; k++)); do
		[ -s "$collect/$r.$k.tap" ] || continue
		while IFS= read -r l; do
			name=${l#*|"$r": }
			line_of[${name%%[ #]*}]=$l
		done <"$collect/$r.$k.tap"
	done
	# shellcheck disable=SC2031 # the main shell's own
	for name in "${names[@]}"; do
		tap_lines+=("${line_of[$name]:-"not ok|$r: $name # did not run (its runner stopped)"}")
	done
	unset line_of
	for ((k = 0; k <= shards; k++)); do
		# shellcheck disable=SC2031 # the main shell's own
		[ -s "$collect/$r.$k.timing" ] &&
			mapfile -t -O ${#timings[@]} timings <"$collect/$r.$k.timing"
	done
done
rm -rf "$collect"

# failure_excerpts: the last lines of the first failed tests' logs, here at
# the end where a CI summary that keeps only the tail of the output shows
# them (their whole logs are under vm-results/).
failure_excerpts() {
	local l rel name log shown=0
	for l in "${tap_lines[@]}"; do
		case "$l" in ok\|*) continue ;; esac
		[ "$shown" -lt 3 ] || break
		shown=$((shown + 1))
		rel=${l#*|}
		name=${rel#*: }
		name=${name%%[ #]*}
		rel=${rel%%:*}
		for log in "$results_root/$rel/$name.log" "$results_root/$rel"/*/"$name.log"; do
			[ -s "$log" ] || continue
			echo "# $rel: $name failed; the end of its log:"
			grep -v '^$' "$log" | tail -n 12 | cut -c 1-200 | sed 's/^/#   /'
			break
		done
	done
}

passed=0
failed=0
n=0
for l in "${tap_lines[@]}"; do
	n=$((n + 1))
	echo "${l%%|*} $n - ${l#*|}"
	case "$l" in
	ok\|*) passed=$((passed + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done
echo "1..$n"
printf '%s\n' "${timings[@]}"
failure_excerpts
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
