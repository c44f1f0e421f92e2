#!/bin/bash
# Benchmark (not a test): what a snapshot costs, next to dm-snapshot.
# In one guest, on /dev/vdb (original) with /dev/vdc as difference storage
# or COW device, both zero-filled first:
#  - 4 KiB random writes (QD16) and 1 MiB sequential writes (QD4), fio,
#    BENCH_SECONDS each, the median of BENCH_ROUNDS rounds, on: the tracked
#    device, a fresh blksnap snapshot (default module parameters, and
#    copy_group_eager=1), a dm-snapshot origin with 4 KiB and 256 KiB
#    chunks; printed as ratios to the plain device, run just before and
#    just after each of them. Beside them, "copyfloor": the plain device
#    while all of it is read and the storage disk written whole (no
#    module; 2 MiB direct I/O, 4 reads and 4 writes in flight, the
#    traffic of blksnap's sweep), which is what a fresh snapshot under
#    these writers must copy too: the best a copy-on-write of the whole
#    device could do on these disks, whatever its design. The snapshot
#    figure is also printed against it. Each write figure also
#    comes for the first 3 s of the runs alone: the copy phase of a fresh
#    snapshot, in which nearly every write waits for a copy, is where it
#    loses against the plain device.
#  - 1 MiB sequential reads of the image after a full overwrite of the
#    original, against reads of the original.
#  - take latency for 1 and 4 devices (null_blk), BENCH_TAKES times each:
#    the TAKE ioctl as its caller sees it (process start is not counted).
# Knobs for a run that looks closer at one figure: BENCH_PARTS, the parts
# to run (default "randwrite write read take"), and BENCH_KINDS, the
# configurations the writes run in (default "tracked snapshot eager
# copyfloor dm4k dm256k"); e.g. BENCH_PARTS=randwrite BENCH_KINDS="snapshot
# copyfloor" BENCH_ROUNDS=9 gives the random-write bar nine rounds in the
# time three rounds of everything take.
# timeout: 3000
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd fio dmsetup

seconds=${BENCH_SECONDS:-15}
rounds=${BENCH_ROUNDS:-3}
# 100 takes: the p99 is then the second slowest, not simply the slowest.
takes=${BENCH_TAKES:-100}
all_parts="randwrite write read take"
all_kinds="tracked snapshot eager copyfloor dm4k dm256k"
read -r -a parts <<<"${BENCH_PARTS:-$all_parts}"
read -r -a kinds <<<"${BENCH_KINDS:-$all_kinds}"
# Misspelt knobs fail now, not after an hour of the other parts.
for p in "${parts[@]}"; do
	[[ " $all_parts " == *" $p "* ]] || fail "BENCH_PARTS: no part '$p'"
done
for k in "${kinds[@]}"; do
	[[ " $all_kinds " == *" $k "* ]] || fail "BENCH_KINDS: no configuration '$k'"
done
read -r orig store <<<"$VM_DISKS"
sectors=$(blockdev --getsz "$orig")

log "zero-filling $orig and $store"
for d in "$orig" "$store"; do
	dd if=/dev/zero of="$d" bs=4M oflag=direct status=none 2>/dev/null || true
done
modprobe dm-snapshot

# fio_run NAME DEV RW BS DEPTH: prints KiB/s (written or read); leaves
# the KiB moved in the first 3 s in $TEST_TMP/first.
fio_run() {
	local out field log=$TEST_TMP/bw
	# fio splits file names at ':', as in blksnap-image_8:16.
	out=$(fio --name="$1" --filename="${2//:/\\:}" --rw="$3" --bs="$4" --iodepth="$5" \
		--direct=1 --ioengine=libaio --runtime="$seconds" --time_based \
		--write_bw_log="$log" --log_avg_msec=500 \
		--randrepeat=0 --output-format=terse --terse-version=3)
	# Lines "msec, KiB/s, ...", one per half second.
	awk -F', *' '$1 <= 3000 { kib += $2 / 2 } END { printf "%d\n", kib }' \
		"${log}_bw.1.log" >"$TEST_TMP/first"
	rm -f "${log}"_bw.*.log
	case $3 in
	*read) field=7 ;;   # read bandwidth, KiB/s
	*) field=48 ;;      # write bandwidth, KiB/s
	esac
	echo "$out" | awk -F';' -v f="$field" '{ print $f }'
}

snap_fresh() {
	bsio attach "$1" 2>/dev/null || true
	snap=$(bsio snapshot-create)
	bsio snapshot-add "$snap" "$1"
	bsio snapshot-append "$snap" "$store" 0 "$(blockdev --getsz "$store")"
	bsio snapshot-take "$snap"
}
snap_gone() { bsio snapshot-destroy "$snap"; bsio detach "$orig"; }

dm_fresh() {
	echo "0 $sectors snapshot-origin $orig" | dmsetup create bench-origin --noudevsync
	echo "0 $sectors snapshot $orig $store N $1" | dmsetup create bench-snap --noudevsync
	dmsetup mknodes bench-origin
}
dm_gone() { dmsetup remove --noudevsync bench-snap; dmsetup remove --noudevsync bench-origin; }

# copy_whole: the bare copy traffic of a snapshot of the original, reads
# of all of it beside writes of as much to the storage disk, at once (a
# dd reads and writes in turn, one request in flight: in 3.4-4.6 s where
# the sweep takes about one); adds its milliseconds to $TEST_TMP/copy.ms.
copy_whole() {
	local t0
	t0=$(date +%s%N)
	fio --direct=1 --ioengine=libaio --bs=2m --iodepth=4 --size=100% \
		--name=copy-read --filename="$orig" --rw=read \
		--name=copy-write --filename="$store" --rw=write >/dev/null
	echo $((($(date +%s%N) - t0) / 1000000)) >>"$TEST_TMP/copy.ms"
}

# measure KIND RW BS DEPTH: one run in configuration KIND.
measure() {
	local kind=$1 v
	case $kind in
	plain) module_unload; v=$(fio_run plain "$orig" "$2" "$3" "$4") ;;
	tracked) module_load; bsio attach "$orig"
		v=$(fio_run tracked "$orig" "$2" "$3" "$4"); bsio detach "$orig" ;;
	snapshot) module_load; snap_fresh "$orig"
		v=$(fio_run snapshot "$orig" "$2" "$3" "$4"); snap_gone ;;
	eager) module_unload; module_load copy_group_eager=1; snap_fresh "$orig"
		v=$(fio_run eager "$orig" "$2" "$3" "$4"); snap_gone; module_unload ;;
	copyfloor) module_unload; copy_whole & v=$(fio_run copyfloor "$orig" "$2" "$3" "$4"); wait ;;
	dm4k) module_unload; dm_fresh 8
		v=$(fio_run dm4k /dev/mapper/bench-origin "$2" "$3" "$4"); dm_gone ;;
	dm256k) module_unload; dm_fresh 512
		v=$(fio_run dm256k /dev/mapper/bench-origin "$2" "$3" "$4"); dm_gone ;;
	esac
	echo "$v"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }'; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# middle_half: the first and third quartiles, "Q1-Q3": how far the rounds
# spread around their median on a host whose speed drifts (see below).
middle_half() {
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 3) / 4)] "-" v[int((3 * NR + 3) / 4)] }'
}

# The host's speed drifts by a factor of two within a minute (other
# tenants of the machine under it; steal alone does not account for it).
# So every configuration's run sits between two plain runs and its ratio
# is to their mean, the order of the configurations rotates from round to
# round, and the figure is the median over the rounds.
# write_part RW BS DEPTH: every configuration of $kinds under fio RW.
write_part() {
	local rw=$1 bs=$2 depth=$3 r k kind v first before after first_before first_after target spread
	rm -f "$TEST_TMP/copy.ms"
	for ((r = 0; r < rounds; r++)); do
		before=$(measure plain "$rw" "$bs" "$depth")
		first_before=$(cat "$TEST_TMP/first")
		echo "$before" >>"$TEST_TMP/$rw.plain"
		for ((k = 0; k < ${#kinds[@]}; k++)); do
			kind=${kinds[(k + r) % ${#kinds[@]}]}
			v=$(measure "$kind" "$rw" "$bs" "$depth")
			first=$(cat "$TEST_TMP/first")
			after=$(measure plain "$rw" "$bs" "$depth")
			first_after=$(cat "$TEST_TMP/first")
			echo "$after" >>"$TEST_TMP/$rw.plain"
			echo "$v" >>"$TEST_TMP/$rw.$kind"
			ratio "$v" "$(((before + after) / 2))" >>"$TEST_TMP/$rw.$kind.ratio"
			ratio "$first" "$(((first_before + first_after) / 2))" >>"$TEST_TMP/$rw.$kind.first"
			before=$after
			first_before=$first_after
		done
	done
	echo "result $rw-$bs plain: median $(median <"$TEST_TMP/$rw.plain") KiB/s, runs $(tr '\n' ' ' <"$TEST_TMP/$rw.plain")"
	for kind in "${kinds[@]}"; do
		r=$(median <"$TEST_TMP/$rw.$kind.ratio")
		spread=$(middle_half <"$TEST_TMP/$rw.$kind.ratio")
		echo "ratio $rw-$bs $kind/plain: $r (median; middle half $spread; runs $(tr '\n' ' ' <"$TEST_TMP/$rw.$kind.ratio"); median $(median <"$TEST_TMP/$rw.$kind") KiB/s)"
		echo "ratio $rw-$bs $kind/plain, first 3 s: $(median <"$TEST_TMP/$rw.$kind.first") (median; runs $(tr '\n' ' ' <"$TEST_TMP/$rw.$kind.first"))"
		[ "$kind" = copyfloor ] &&
			echo "result $rw-$bs copyfloor: the whole device copied in $(median <"$TEST_TMP/copy.ms") ms (median), beside the writer"
		[ "$kind" = snapshot ] || continue
		if [ -f "$TEST_TMP/$rw.copyfloor.ratio" ]; then
			echo "ratio $rw-$bs snapshot/copyfloor: $(ratio "$r" \
				"$(median <"$TEST_TMP/$rw.copyfloor.ratio")") (medians)"
			echo "ratio $rw-$bs snapshot/copyfloor, first 3 s: $(ratio \
				"$(median <"$TEST_TMP/$rw.snapshot.first")" \
				"$(median <"$TEST_TMP/$rw.copyfloor.first")") (medians)"
			# Both ran in the same round: their ratio leaves out what the
			# host's speed drifts between rounds.
			paste -d' ' "$TEST_TMP/$rw.snapshot.ratio" "$TEST_TMP/$rw.copyfloor.ratio" |
				awk '{ printf "%.3f\n", ($2 > 0 ? $1 / $2 : 0) }' >"$TEST_TMP/$rw.paired"
			echo "ratio $rw-$bs snapshot/copyfloor, same round: $(median <"$TEST_TMP/$rw.paired") (median; runs $(tr '\n' ' ' <"$TEST_TMP/$rw.paired"))"
		fi
		target=0.92
		[ "$rw" = write ] && target=0.70
		awk -v r="$r" -v t="$target" 'BEGIN { exit !(r >= t) }' &&
			echo "bench-check: PASS $rw-$bs on a fresh snapshot $r (target >= $target; middle half $spread)" ||
			echo "bench-check: FAIL $rw-$bs on a fresh snapshot $r (target >= $target; middle half $spread)"
	done
}

# read_part: 1 MiB sequential reads of the image after a full overwrite
# (every chunk is in storage) against reads of the original.
read_part() {
	local i image image_read orig_read r
	module_load
	snap_fresh "$orig"
	dd if=/dev/urandom of="$orig" bs=1M oflag=direct status=none 2>/dev/null || true
	image=/dev/$(bsio image-info "$orig" | awk '$1 == "name" { print $2 }')
	bsio snapshot-info "$snap" | grep -E 'state|storage_used'
	# The order alternates between rounds, so that a drift of the host's disk
	# speed within a round does not always favour the same device.
	for ((i = 0; i < rounds; i++)); do
		if ((i % 2)); then
			image_read=$(fio_run read-image "$image" read 1m 4)
			orig_read=$(fio_run read-orig "$orig" read 1m 4)
		else
			orig_read=$(fio_run read-orig "$orig" read 1m 4)
			image_read=$(fio_run read-image "$image" read 1m 4)
		fi
		ratio "$image_read" "$orig_read" >>"$TEST_TMP/read.ratio"
		echo "result read-1m round $i: image $image_read, original $orig_read KiB/s"
	done
	r=$(median <"$TEST_TMP/read.ratio")
	echo "ratio read-1m image-after-overwrite/original: $r (median; runs $(tr '\n' ' ' <"$TEST_TMP/read.ratio"))"
	awk -v r="$r" 'BEGIN { exit !(r >= 0.85) }' &&
		echo "bench-check: PASS image read after overwrite $r (target >= 0.85)" ||
		echo "bench-check: FAIL image read after overwrite $r (target >= 0.85)"
	snap_gone
}

# take_part: take latency for 1 and 4 devices on null_blk.
take_part() {
	local n i d kmsg
	module_load
	modprobe null_blk nr_devices=4 gb=1 memory_backed=1
	for n in 1 4; do
		: >"$TEST_TMP/take-$n"
		kmsg=$(kmsg_pos)
		for ((i = 0; i < takes; i++)); do
			snap=$(bsio snapshot-create)
			for ((d = 0; d < n; d++)); do
				bsio attach /dev/nullb$d 2>/dev/null || true
				bsio snapshot-add "$snap" /dev/nullb$d
			done
			bsio snapshot-append "$snap" "$store" 0 1048576
			bsio snapshot-take-timed "$snap" >>"$TEST_TMP/take-$n"
			bsio snapshot-destroy "$snap"
		done
		sort -n "$TEST_TMP/take-$n" | awk -v n="$n" '{ v[NR] = $1 }
			END {
				p = int(NR * 0.99 + 0.5); if (p > NR) p = NR; if (p < 1) p = 1
				printf "take %d device(s): median %.1f ms, p99 %.1f ms (%d takes, the ioctl)\n",
					n, v[int((NR + 1) / 2)] / 1000, v[p] / 1000, NR
				if (n == 4)
					printf "bench-check: %s take of 4 devices p99 %.1f ms (target <= 50)\n",
						(v[p] <= 50000 ? "PASS" : "FAIL"), v[p] / 1000
			}'
		# Where the slowest takes spent their time, from the module's log line
		# "... taken, N device(s), in T us (file systems frozen in F, devices
		# switched in S, images made in I)".
		kmsg_since "$kmsg" | awk -v n="$n" '/ taken, [0-9]+ device/ {
				gsub(/[(),]/, " "); t = f = s = m = ""
				for (i = 1; i < NF; i++) {
					if ($i == "in" && t == "") t = $(i + 1)
					else if ($i == "frozen") f = $(i + 2)
					else if ($i == "switched") s = $(i + 2)
					else if ($i == "made") m = $(i + 2)
				}
				print t, f, s, m
			}' | sort -n | tail -3 | awk -v n="$n" '{
				printf "take %d device(s), one of the slowest: %.1f ms in the module: freeze %.1f, switch %.1f, images %.1f ms\n",
					n, $1 / 1000, $2 / 1000, $3 / 1000, $4 / 1000 }'
	done
	for ((d = 0; d < 4; d++)); do bsio detach /dev/nullb$d; done
	rmmod null_blk
}

for part in "${parts[@]}"; do
	case $part in
	randwrite) write_part randwrite 4k 16 ;;
	write) write_part write 1m 4 ;;
	read) read_part ;;
	take) take_part ;;
	esac
done
module_unload
