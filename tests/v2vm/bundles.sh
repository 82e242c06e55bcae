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
