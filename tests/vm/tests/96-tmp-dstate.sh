#!/bin/bash
# timeout: 5
modprobe dm-mod
dmsetup create bvmhang --noudevsync --table "0 2048 zero"
dmsetup suspend --noudevsync bvmhang
dd if=/dev/zero of=/dev/dm-0 bs=4k count=1
echo syncing; sync
