#!/bin/bash
t() { local s e i; s=$(date +%s%N); for i in 1 2 3 4 5 6 7 8 9 10; do "$@" >/dev/null 2>&1; done; e=$(date +%s%N); echo "$(( (e - s) / 10000000 )) ms/run : $*"; }
cp /bin/busybox /tmp/bb
cp /bin/true /tmp/true
t /tmp/bb true
t /bin/busybox true
t /tmp/true
t /bin/true
t /usr/bin/env true
t uname -r
t bash -c exit
t mkfs.ext4 -V
grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -cE '^avx'
