#!/bin/bash
# docker-entrypoint.sh - starts mariadbd like the official mariadb image does,
# for the subset of its interface that speedy's docker-compose.yml relies on.
#
# On the first start (no /var/lib/mysql/mysql) it initialises the datadir and,
# through a temporary server without networking, creates:
#   root@'%' and root@localhost with MARIADB_ROOT_PASSWORD, or with an empty
#     password if MARIADB_ALLOW_EMPTY_ROOT_PASSWORD is set (one is required;
#     MARIADB_ROOT_HOST narrows '%');
#   the database MARIADB_DATABASE, if set;
#   MARIADB_USER with MARIADB_PASSWORD and all rights on MARIADB_DATABASE;
#   healthcheck@localhost/127.0.0.1/::1 with a random password kept in
#     /var/lib/mysql/.my-healthcheck.cnf (used by healthcheck.sh).
# The MYSQL_* spellings of these variables are accepted too. Later starts
# use the datadir as it is. Arguments starting with '-' are mariadbd flags.
set -euo pipefail

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

log() { echo "$(date -u '+%F %T') [entrypoint] $*" >&2; }
die() { log "error: $*"; exit 1; }

# env_var NAME: $MARIADB_NAME, else $MYSQL_NAME, else empty.
env_var() {
  local m="MARIADB_$1" y="MYSQL_$1"
  echo "${!m:-${!y:-}}"
}

# sql_string TEXT: TEXT as a single-quoted SQL literal.
sql_string() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\\\'}"
}

# sql_ident TEXT: TEXT as a backquoted SQL identifier.
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

# init_sql: the statements that set up accounts and the database.
init_sql() {
  local root_pw root_host db user pw hc_pw
  root_pw=$(sql_string "$(env_var ROOT_PASSWORD)")
  root_host=$(sql_string "$(env_var ROOT_HOST)")
  [ -n "$(env_var ROOT_HOST)" ] || root_host="'%'"
  hc_pw=$(sql_string "$1")
  cat <<EOF
SET @@SESSION.SQL_LOG_BIN=0;
DROP USER IF EXISTS ''@'localhost', root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS \'\'@\'', @@hostname, '\'');
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD($root_pw) OR unix_socket;
CREATE USER IF NOT EXISTS root@$root_host IDENTIFIED BY $root_pw;
GRANT ALL ON *.* TO root@$root_host WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO root@$root_host WITH GRANT OPTION;
CREATE USER healthcheck@'127.0.0.1' IDENTIFIED BY $hc_pw;
CREATE USER healthcheck@'::1' IDENTIFIED BY $hc_pw;
CREATE USER healthcheck@localhost IDENTIFIED BY $hc_pw;
GRANT USAGE ON *.* TO healthcheck@'127.0.0.1', healthcheck@'::1', healthcheck@localhost;
DROP DATABASE IF EXISTS test;
EOF
  db=$(env_var DATABASE) user=$(env_var USER) pw=$(env_var PASSWORD)
  [ -z "$db" ] || echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$db");"
  if [ -n "$user" ]; then
    echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$pw");"
    [ -z "$db" ] || echo "GRANT ALL ON $(sql_ident "$db").* TO $(sql_string "$user")@'%';"
  fi
  echo "FLUSH PRIVILEGES;"
}

# initialise: a fresh datadir, configured through a temporary server that
# listens on the socket only (so the health check fails until the real one).
initialise() {
  if [ -z "$(env_var ROOT_PASSWORD)" ] && [ -z "$(env_var ALLOW_EMPTY_ROOT_PASSWORD)" ]; then
    die "database is uninitialized and neither MARIADB_ROOT_PASSWORD nor MARIADB_ALLOW_EMPTY_ROOT_PASSWORD is set"
  fi
  log "initialising $datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" &
  local pid=$! i hc_pw
  for i in $(seq 1 60); do
    mariadb-admin --no-defaults --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "temporary server exited during initialisation"
    [ "$i" -lt 60 ] || die "temporary server did not answer in 30 s"
    sleep 0.5
  done
  hc_pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  init_sql "$hc_pw" | mariadb --no-defaults --socket="$socket" -uroot
  printf '[client]\nuser=healthcheck\npassword=%s\nprotocol=tcp\nhost=127.0.0.1\n' "$hc_pw" \
    >"$datadir/.my-healthcheck.cnf"
  chown mysql:mysql "$datadir/.my-healthcheck.cnf"
  chmod 600 "$datadir/.my-healthcheck.cnf"
  kill "$pid"
  wait "$pid" || true
  log "initialised; starting the server"
}

if [ "${1:0:1}" = - ]; then
  set -- mariadbd "$@"
fi
if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
  mkdir -p /run/mysqld
  chown mysql:mysql "$datadir" /run/mysqld
  [ -d "$datadir/mysql" ] || initialise
  shift
  exec mariadbd --user=mysql "$@"
fi
exec "$@"
