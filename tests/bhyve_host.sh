#!/bin/sh
# Makes a simulated FreeBSD host a bhyve host with vm-bhyve set up the way an admin does it:
#   bhyve_host.sh <host root> <simulator bin dir> [vm-bhyve version, default 1.7.5]
# (pkg install vm-bhyve puts the example template in place; then sysrc vm_enable=YES
# vm_dir=…, vm init, vm switch create public). See tests/sim/src/vm.rs for the guests.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 <host root> <sim bin dir> [version]" >&2; exit 2; }
root=$1
bin=$2
version=${3:-1.7.5}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$root/vm" "$root/usr/local/share/examples/vm-bhyve"
cp "$here/fixtures/vm/default.conf" "$root/usr/local/share/examples/vm-bhyve/default.conf"
printf '%s\n' "$version" > "$root/sim/vm-bhyve.version"
WARDEN_SIM_ROOT=$root
PATH=$bin:$PATH
export WARDEN_SIM_ROOT PATH
sysrc -q vm_enable=YES "vm_dir=$root/vm" >/dev/null
vm init
vm switch create public
