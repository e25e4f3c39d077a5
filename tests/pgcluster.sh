#!/bin/sh
# A throw-away PostgreSQL cluster for tests and the demo.
#   pgcluster.sh start DIR   initdb into DIR/data and start it; writes DIR/env
#   pgcluster.sh stop DIR    stop it (the directory stays; remove it yourself)
#   pgcluster.sh restart DIR start a stopped cluster again on the port in DIR/env
#   pgcluster.sh certs DIR   only make a CA and a server certificate in DIR (for tests'
#                            stand-in servers): DIR/ca.crt, DIR/server.crt, DIR/server.key
# The server listens on 127.0.0.1 (a free port) and on a unix socket in DIR, trusts local
# socket logins and logs every connection and statement to DIR/server.log. TCP takes TLS only
# (pg_hba.conf's host lines become hostssl) and SCRAM (superuser "postgres" with a random
# password, in DIR/env). The TLS certificates are made here for this cluster: a CA
# (DIR/ca.crt, PGSSLROOTCERT in DIR/env; its key is deleted once it has signed) and the
# server's ECDSA P-256/SHA-256 certificate for IP 127.0.0.1 and DNS localhost (an ECDSA or RSA
# signature with SHA-256 gives SCRAM-SHA-256-PLUS its tls-server-end-point hash, RFC 5929
# section 4.1; Ed25519 would give none). Run as root, it runs PostgreSQL as the postgres user
# (initdb refuses root).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 start|stop|restart|certs DIR" >&2; exit 2; }
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

# A CA and the server's certificate signed by it, valid for 30 days.
make_certs() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes -days 30 \
		-subj "/CN=warden test cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes \
		-subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
	printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$dir/server.ext"
	openssl x509 -req -sha256 -days 30 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -extfile "$dir/server.ext" \
		-out "$dir/server.crt" 2>/dev/null
	rm -f "$dir/ca.key" "$dir/server.csr" "$dir/server.ext"
	chmod 600 "$dir/server.key"
	chmod 644 "$dir/ca.crt" "$dir/server.crt"
}

server_start() {
	as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$dir -c log_statement=all -c log_connections=on -c fsync=off -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" \
		start >/dev/null 2>&1
}

case $cmd in
certs)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	make_certs || { echo "$0: cannot make the TLS certificates (openssl)" >&2; exit 1; }
	;;
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
	# TCP only with TLS: host records become hostssl (plain TCP finds no record).
	sed 's/^host\([[:space:]]\)/hostssl\1/' "$dir/data/pg_hba.conf" > "$dir/pg_hba.new"
	as_server cp "$dir/pg_hba.new" "$dir/data/pg_hba.conf"
	rm -f "$dir/pg_hba.new"
	make_certs || { echo "$0: cannot make the TLS certificates (openssl)" >&2; exit 1; }
	[ "$(id -u)" != 0 ] || chown postgres "$dir/server.key"
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
PGSSLROOTCERT=$dir/ca.crt
PGDATA=$dir/data
PGLOG=$dir/server.log
PGBIN=$bindir
EOT
	chmod 600 "$dir/env"
	;;
stop)
	[ -d "$dir/data" ] || exit 0
	as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	;;
*)
	echo "usage: $0 start|stop|restart|certs DIR" >&2
	exit 2
	;;
esac
