#!/bin/sh
# The samples' dedicated PostgreSQL: create the cluster on the first start, then become postgres.
#
#   pg_launch.sh INITDB POSTGRES DATADIR PORT SOCKETDIR
#
# The declaration runs this text with `/bin/sh -c` (so the postgres user needs no access to the
# repository) and names `process_name` = the postgres binary: `exec` keeps the pid, so the pid in
# DATADIR/postmaster.pid is this process, now running postgres. Trust authentication, TCP on
# 127.0.0.1 only: a throwaway development database, never a production setup.
set -eu
initdb=$1 postgres=$2 data=$3 port=$4 sockets=$5
if [ ! -f "$data/PG_VERSION" ]; then
  echo "pg_launch: first start, creating the cluster in $data"
  rm -rf "$data.init"
  "$initdb" -D "$data.init" -U postgres --auth=trust -E UTF8 >/dev/null
  if [ -d "$data" ]; then rmdir "$data"; fi  # an empty leftover only; anything else stops here
  mv "$data.init" "$data"
fi
exec "$postgres" -D "$data" -p "$port" -k "$sockets" -c listen_addresses=127.0.0.1
