#!/bin/sh
# Creates fresh simulated FreeBSD hosts: sandbox.sh <sandbox-dir> <sim-binary> [<host>...]
# Layout: <dir>/bin/{ifconfig,sysrc,…} -> the simulator, <dir>/hosts/<host>/ = each host's
# root, <dir>/pg/ = a throw-away PostgreSQL server standing in for the agents' db jails
# (tests/pgcluster.sh). An existing sandbox is removed first, after stopping its server and
# any tmux server whose socket lives in it; with no hosts, that is all it does.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 <sandbox-dir> <freebsd-sim> [<host>...]" >&2; exit 2; }
dir=$1
sim=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$dir" ]; then
	"$here/pgcluster.sh" stop "$dir/pg" 2>/dev/null || true
	tmux=$(command -v tmux || true)
	if [ -n "$tmux" ]; then
		find "$dir" -type s 2>/dev/null | while read -r socket; do
			"$tmux" -S "$socket" kill-server 2>/dev/null || true
		done
	fi
	# the simulated bhyve guests' processes (tests/sim/src/vm.rs `vm _run`)
	find "$dir" -path '*/sim/vm/*.pid' 2>/dev/null | while read -r pidfile; do
		kill "$(cut -d' ' -f1 "$pidfile")" 2>/dev/null || true
	done
	rm -rf "$dir"
fi
[ $# -gt 0 ] || exit 0
mkdir -p "$dir/hosts"
"$sim" links "$dir/bin"
for host in "$@"; do
	mkdir -p "$dir/hosts/$host"
	"$sim" init "$dir/hosts/$host" "$host"
done
"$here/pgcluster.sh" start "$dir/pg"
