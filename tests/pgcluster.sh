#!/bin/sh
# A throw-away PostgreSQL cluster for tests and the demo.
#   pgcluster.sh start DIR   initdb into DIR/data and start it; writes DIR/env
#   pgcluster.sh stop DIR    stop it (the directory stays; remove it yourself)
#   pgcluster.sh restart DIR start a stopped cluster again on the port in DIR/env
# The server listens on 127.0.0.1 (a free port) and on a unix socket in DIR, uses SCRAM for
# TCP (superuser "postgres" with a random password, in DIR/env), trusts local socket logins,
# and logs every statement to DIR/server.log. Run as root, it runs PostgreSQL as the
# postgres user (initdb refuses root).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 start|stop|restart DIR" >&2; exit 2; }
cmd=$1
dir=$2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || bindir=$(dirname "$(command -v initdb)")
[ -x "$bindir/initdb" ] || { echo "$0: PostgreSQL server binaries not found (install the postgresql package)" >&2; exit 1; }

as_server() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

server_start() {
	as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$dir -c log_statement=all -c fsync=off" \
		start >/dev/null 2>&1
}

case $cmd in
restart)
	dir=$(cd "$dir" && pwd)
	port=$(sed -n 's/^PGPORT=//p' "$dir/env")
	server_start "$port" || { cat "$dir/server.log" >&2; exit 1; }
	;;
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ "$(id -u)" = 0 ]; then
		chown postgres "$dir"
		runuser -u postgres -- test -w "$dir" \
			|| { echo "$0: the postgres user cannot reach $dir (a parent directory is not searchable by others)" >&2; exit 1; }
	fi
	password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$password" > "$dir/pwfile"
	chmod 600 "$dir/pwfile"
	[ "$(id -u)" != 0 ] || chown postgres "$dir/pwfile"
	as_server "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log" >&2; exit 1; }
	rm -f "$dir/pwfile"
	tries=0
	while :; do
		port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 ))
		if server_start "$port"; then
			break
		fi
		tries=$((tries + 1))
		[ $tries -lt 5 ] || { cat "$dir/server.log" >&2; exit 1; }
	done
	cat > "$dir/env" <<EOT
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=postgres
PGPASSWORD=$password
PGSOCKET=$dir
PGDATA=$dir/data
PGLOG=$dir/server.log
PGBIN=$bindir
EOT
	;;
stop)
	[ -d "$dir/data" ] || exit 0
	as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	;;
*)
	echo "usage: $0 start|stop|restart DIR" >&2
	exit 2
	;;
esac
