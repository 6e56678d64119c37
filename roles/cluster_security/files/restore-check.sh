#!/bin/sh
# opsbook restore check: restore the newest dump into a scratch database and count the rows.
#
#   restore-check.sh WORKDIR
#
# Storage settings as backup.sh (BACKUP_S3_*, BACKUP_NAME_PREFIX). The scratch server: libpq's
# PGHOST PGPORT PGUSER PGPASSWORD (PGSSLMODE); RESTORE_DATABASE is the scratch database (its
# name must start with restore_check: it is dropped and created again); RESTORE_KEEP=1 keeps it.
# Output (tab separated, for the playbook): `dump NAME BYTES`, then `rows TABLE COUNT` per table,
# then `tables N`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: restore-check.sh WORKDIR}
db=${RESTORE_DATABASE:-restore_check}
case $db in
restore_check*) ;;
*) echo "restore-check: ERROR: RESTORE_DATABASE must start with restore_check" >&2 && exit 1 ;;
esac
case $db in *[!a-z0-9_]*)
	echo "restore-check: ERROR: RESTORE_DATABASE: lowercase letters, digits, _ only" >&2
	exit 1
	;;
esac

mkdir -p "$work"
file="$work/latest.sql.gz"
rm -f "$file"
name=$(sh "$here/backup.sh" fetch "$file" | tail -n 1)
gzip -t "$file"
printf 'dump\t%s\t%s\n' "$name" "$(wc -c <"$file" | tr -d ' ')"

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "${RESTORE_ADMIN_DATABASE:-postgres}" "$@"; }
psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
psql_admin -c "CREATE DATABASE \"$db\"" >/dev/null
cleanup() {
	if [ "${RESTORE_KEEP:-0}" != 1 ]; then
		psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

gzip -dc "$file" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null

# Exact row counts of every table, in one query (query_to_xml runs the count per table).
psql -X -A -t -F "$(printf '\t')" -v ON_ERROR_STOP=1 -d "$db" -c "
  SELECT 'rows', table_schema || '.' || table_name,
         (xpath('/row/c/text()', query_to_xml(
            format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name),
            false, true, '')))[1]::text::bigint
  FROM information_schema.tables
  WHERE table_type = 'BASE TABLE'
    AND table_schema NOT IN ('pg_catalog', 'information_schema')
  ORDER BY 2" >"$work/rows.tsv"
cat "$work/rows.tsv"
printf 'tables\t%s\n' "$(grep -c . "$work/rows.tsv" || true)"
