# Bundles of the systemd guest (sourced by run.sh; see tests/v2vm/bundles.sh
# for `bundle NAME ARGS_JSON [JQ_FILTER]`). Cases copy one and set its
# cgroupsPath with `sd_bundle`.

bundle sleeper '["sleep","100000"]'

# Every resource systemd has a property for, and a device rule list: the
# host's /dev/kmsg (1:11) may be read, not written (CAP_SYSLOG to read it at all).
bundle limits '["sleep","100000"]' '
  .linux.resources.memory = {limit: 67108864, reservation: 33554432, swap: 134217728}
| .linux.resources.cpu = {shares: 512, quota: 50000, period: 100000, cpus: "0", mems: "0"}
| .linux.resources.pids = {limit: 50}
| .linux.resources.blockIO = {weight: 500}
| .linux.resources.devices = [{allow: false, access: "rwm"}, {allow: true, type: "c", major: 1, minor: 11, access: "r"}]
| .mounts += [{destination: "/dev/kmsg2", type: "bind", source: "/dev/kmsg", options: ["bind"]}]
| .process.capabilities |= with_entries(.value += ["CAP_SYSLOG"])'
