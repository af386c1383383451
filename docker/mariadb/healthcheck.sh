#!/bin/bash
# healthcheck.sh - the official mariadb image's health check, for the tests
# docker-compose.yml uses:
#   --connect             the server accepts a TCP connection and a login
#   --innodb_initialized  InnoDB is up (its engine reports YES/DEFAULT)
# Logs in as the healthcheck user the entrypoint created
# (/var/lib/mysql/.my-healthcheck.cnf). Other official flags (--su-mysql,
# --mariadbupgrade, ...) are accepted and ignored. Exit 0 only if every test
# given passes.
set -uo pipefail

cnf=/var/lib/mysql/.my-healthcheck.cnf
[ -r "$cnf" ] || exit 1

query() { mariadb --defaults-extra-file="$cnf" --connect-timeout=3 -sN -e "$1"; }

status=0
for arg in "$@"; do
  case "$arg" in
    --connect)
      query 'SELECT 1' >/dev/null 2>&1 || status=1 ;;
    --innodb_initialized)
      [ "$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'InnoDB' AND support IN ('YES', 'DEFAULT')" 2>/dev/null)" = 1 ] || status=1 ;;
    *) ;;
  esac
done
exit "$status"
