# Bundles baked into the VM image, under /v2vm/bundles/NAME (sourced by run.sh).
#
#   bundle NAME ARGS_JSON [JQ_FILTER]
#
# Each bundle gets a busybox rootfs and the config.json of `berth spec`, with
# process.terminal false, process.args ARGS_JSON and then JQ_FILTER applied.
# The cases in guest-tests.sh use them by name.

bundle cgroup-info '["sh","-c","cat /proc/self/cgroup; echo --; ls /sys/fs/cgroup; echo --; grep \" /sys/fs/cgroup \" /proc/self/mountinfo"]'

bundle exit-3 '["sh","-c","exit 3"]'

# A sleeper with every kind of limit; lifecycle cases read the cgroup files.
bundle limits '["sleep","100000"]' '
  .linux.resources.memory = {limit: 67108864, reservation: 33554432}
| .linux.resources.cpu = {shares: 512, quota: 50000, period: 100000}
| .linux.resources.pids = {limit: 50}'

bundle sleeper '["sleep","100000"]'

# A child shell tries to start 20 sleeps with pids.max 8 (it dies on the first
# refused fork; the init, a sleep, keeps the container running).
bundle pids-8 '["sh","-c","sh -c \"for i in \\$(seq 20); do sleep 100000 & done; wait\" & exec sleep 100000"]' '
  .linux.resources.pids = {limit: 8}'

# Touches 64 MiB with memory.max 16 MiB and no swap: the OOM killer must stop it.
bundle oom-16m '["dd","if=/dev/zero","of=/dev/null","bs=64M","count=1"]' '
  .linux.resources.memory = {limit: 16777216, swap: 16777216}'

bundle custom-path '["sleep","100000"]' '
  .linux.cgroupsPath = "/v2vm-custom/inner"
| .linux.resources.pids = {limit: 33}'

# Forks a short sleep every 50 ms (cpu.stat usage_usec grows while it runs),
# next to a long sleep: two processes at least.
bundle ticker '["sh","-c","sleep 100000 & while :; do sleep 0.05; done"]'

# Touches 64 MiB under memory.max 16 MiB (no swap), then exits: an OOM event.
bundle oom-then-exit '["sh","-c","dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5"]' '
  .linux.resources.memory = {limit: 16777216, swap: 16777216}'

# Every linux.resources group v2 can express, read back by resources_all_v2.
bundle v2-all '["sleep","100000"]' '
  .linux.resources.memory = {limit: 67108864, reservation: 33554432, swap: 100663296}
| .linux.resources.cpu = {shares: 2048, quota: 30000, period: 100000, burst: 5000, idle: 0, cpus: "0", mems: "0"}
| .linux.resources.pids = {limit: 40}
| .linux.resources.hugepageLimits = [{pageSize: "2MB", limit: 4194304}]
| .linux.resources.unified = {"memory.high": "50331648", "cgroup.max.descendants": "5"}'

# blockIO on the guest's /dev/loop0 (7:0): weight and the four throttle lists.
bundle v2-io '["sleep","100000"]' '
  .linux.resources.blockIO = {weight: 500,
    throttleReadBpsDevice: [{major: 7, minor: 0, rate: 1048576}],
    throttleWriteBpsDevice: [{major: 7, minor: 0, rate: 2097152}],
    throttleReadIOPSDevice: [{major: 7, minor: 0, rate: 100}],
    throttleWriteIOPSDevice: [{major: 7, minor: 0, rate: 200}]}'

# Per-device weight: needs BFQ on /dev/loop0.
bundle v2-io-bfq '["sleep","100000"]' '
  .linux.resources.blockIO = {weight: 300, weightDevice: [{major: 7, minor: 0, weight: 600}]}'

bundle v2-rdma '["sleep","100000"]' '
  .linux.resources.rdma = {"mlx5_1": {hcaHandles: 3, hcaObjects: 1000}}'

# v1-only fields: refused on v2 with an error naming the field.
bundle v2-bad-kerneltcp '["sleep","100000"]' '.linux.resources.memory = {limit: 67108864, kernelTCP: 1048576}'
bundle v2-bad-swappiness '["sleep","100000"]' '.linux.resources.memory = {swappiness: 30}'
bundle v2-bad-realtime '["sleep","100000"]' '.linux.resources.cpu = {realtimeRuntime: 1000, realtimePeriod: 1000000}'
bundle v2-bad-network '["sleep","100000"]' '.linux.resources.network = {classID: 1048577}'
bundle v2-bad-leafweight '["sleep","100000"]' '.linux.resources.blockIO = {leafWeight: 300}'
bundle v2-bad-cpus '["sleep","100000"]' '.linux.resources.cpu = {cpus: "64"}'
bundle v2-bad-unified '["sleep","100000"]' '.linux.resources.unified = {"no.such.file": "1"}'

# The host's /dev/loop0 and /dev/loop1 bind-mounted in; the device rules (deny
# all, then berth's defaults) allow only loop1, for reading.
# A device node listed in linux.devices under the default deny-all device
# policy: created, but not usable (listing is no permission).
bundle v2-listed-device '["sleep","100000"]' '
  .linux.devices += [{path: "/dev/listed", type: "b", major: 7, minor: 0, fileMode: 420, uid: 0, gid: 0}]'

bundle v2-devices '["sleep","100000"]' '
  .mounts += [{destination: "/dev/denied", type: "bind", source: "/dev/loop0", options: ["bind"]},
              {destination: "/dev/allowed", type: "bind", source: "/dev/loop1", options: ["bind"]}]
| .linux.resources.devices += [{allow: true, type: "b", major: 7, minor: 1, access: "r"}]'
