#!/bin/sh
# opsbook database backup (POSIX sh: busybox in the postgres and rclone images, dash on Debian).
#
#   backup.sh dump      pg_dump | gzip into $BACKUP_DIR, checked (pg_dump's exit status, gzip -t,
#                       the dump's end marker); libpq settings from PGHOST PGPORT PGUSER
#                       PGPASSWORD PGDATABASE PGSSLMODE (never on a command line)
#   backup.sh upload    upload that dump to S3-compatible storage with rclone, check its size,
#                       then delete dumps older than BACKUP_RETENTION_DAYS (never the newest
#                       BACKUP_KEEP_MIN); nothing is deleted unless the upload succeeded
#   backup.sh all       both, in one place (the controller in tests)
#   backup.sh latest    print the name of the newest dump in the bucket
#   backup.sh fetch F   download the newest dump to file F (restore-check.sh uses it)
#
# In the CronJob, `dump` runs in an init container (postgres image) and `upload` in the main
# container (rclone image); they share $BACKUP_DIR (an emptyDir).
# Storage: BACKUP_S3_ENDPOINT BACKUP_S3_REGION BACKUP_S3_BUCKET BACKUP_S3_PREFIX
# BACKUP_S3_ACCESS_KEY_ID BACKUP_S3_SECRET_ACCESS_KEY. Names: <BACKUP_NAME_PREFIX>-<UTC time>.sql.gz
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backup}
BACKUP_NAME_PREFIX=${BACKUP_NAME_PREFIX:-honeydue}
BACKUP_RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-14}
BACKUP_KEEP_MIN=${BACKUP_KEEP_MIN:-3}

log() { echo "backup: $*"; }
die() {
	echo "backup: ERROR: $*" >&2
	exit 1
}

case $BACKUP_NAME_PREFIX in
*[!a-z0-9-]* | "") die "BACKUP_NAME_PREFIX must be lowercase letters, digits and dashes" ;;
esac
case $BACKUP_RETENTION_DAYS$BACKUP_KEEP_MIN in
*[!0-9]*) die "BACKUP_RETENTION_DAYS and BACKUP_KEEP_MIN must be whole numbers" ;;
esac

# A dump's name: <prefix>-YYYYmmddTHHMMSSZ.sql.gz; names sort in time order.
NAME_RE="^${BACKUP_NAME_PREFIX}-[0-9]{8}T[0-9]{6}Z\\.sql\\.gz\$"

dump() {
	mkdir -p "$BACKUP_DIR"
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out="$BACKUP_DIR/$BACKUP_NAME_PREFIX-$stamp.sql.gz"
	rcfile="$BACKUP_DIR/.pg_dump.rc"
	rm -f "$BACKUP_DIR"/*.part "$rcfile"
	log "dumping database ${PGDATABASE:-?} on ${PGHOST:-?}:${PGPORT:-5432}"
	# No pipefail in POSIX sh: pg_dump's exit status goes through a file.
	{
		rc=0
		pg_dump --no-owner --no-privileges --format=plain || rc=$?
		echo "$rc" >"$rcfile"
	} | gzip -c >"$out.part"
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	rm -f "$rcfile"
	[ "$rc" -eq 0 ] || {
		rm -f "$out.part"
		die "pg_dump failed (exit $rc)"
	}
	gzip -t "$out.part" || die "the compressed dump is corrupt"
	gzip -dc "$out.part" | tail -n 5 | grep -q 'PostgreSQL database dump complete' ||
		die "the dump is incomplete (no end marker)"
	mv "$out.part" "$out"
	log "dump written: ${out##*/} ($(wc -c <"$out" | tr -d ' ') bytes)"
}

rclone_env() {
	: "${BACKUP_S3_ENDPOINT:?BACKUP_S3_ENDPOINT is not set}"
	: "${BACKUP_S3_BUCKET:?BACKUP_S3_BUCKET is not set}"
	: "${BACKUP_S3_ACCESS_KEY_ID:?BACKUP_S3_ACCESS_KEY_ID is not set}"
	: "${BACKUP_S3_SECRET_ACCESS_KEY:?BACKUP_S3_SECRET_ACCESS_KEY is not set}"
	# rclone is configured through its environment only: no config file, no key on a command line.
	RCLONE_CONFIG=/dev/null
	RCLONE_CONFIG_STORE_TYPE=s3
	RCLONE_CONFIG_STORE_PROVIDER=${BACKUP_S3_PROVIDER:-Other}
	RCLONE_CONFIG_STORE_ENDPOINT=$BACKUP_S3_ENDPOINT
	RCLONE_CONFIG_STORE_REGION=${BACKUP_S3_REGION:-us-east-1}
	RCLONE_CONFIG_STORE_ACCESS_KEY_ID=$BACKUP_S3_ACCESS_KEY_ID
	RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY=$BACKUP_S3_SECRET_ACCESS_KEY
	# B2 application keys are often limited to one bucket: never try to create it.
	RCLONE_S3_NO_CHECK_BUCKET=true
	export RCLONE_CONFIG RCLONE_CONFIG_STORE_TYPE RCLONE_CONFIG_STORE_PROVIDER \
		RCLONE_CONFIG_STORE_ENDPOINT RCLONE_CONFIG_STORE_REGION RCLONE_CONFIG_STORE_ACCESS_KEY_ID \
		RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY RCLONE_S3_NO_CHECK_BUCKET
	prefix=${BACKUP_S3_PREFIX:-}
	case $prefix in "" | */) ;; *) prefix="$prefix/" ;; esac
	remote="store:$BACKUP_S3_BUCKET/$prefix"
}

rc() { rclone --retries "${BACKUP_RCLONE_RETRIES:-3}" --low-level-retries 3 --contimeout 15s "$@"; }

list_dumps() { # sorted names of the dumps in the bucket, oldest first
	listing=$(rc lsf --files-only "$remote") || die "cannot list $remote"
	printf '%s\n' "$listing" | grep -E "$NAME_RE" | sort || true
}

upload() {
	set -- "$BACKUP_DIR/$BACKUP_NAME_PREFIX"-*.sql.gz
	[ $# -eq 1 ] && [ -f "$1" ] || die "expected exactly one dump in $BACKUP_DIR, found: $*"
	file=$1
	name=${file##*/}
	echo "$name" | grep -Eq "$NAME_RE" || die "unexpected dump name $name"
	rclone_env
	log "uploading $name to $BACKUP_S3_ENDPOINT, bucket $BACKUP_S3_BUCKET"
	rc copyto "$file" "$remote$name"
	size=$(wc -c <"$file" | tr -d ' ')
	remote_size=$(rc lsf --files-only --format s "$remote$name")
	[ "$remote_size" = "$size" ] || die "uploaded size $remote_size differs from $size"
	log "uploaded $name ($size bytes)"
	prune "$name"
}

prune() { # delete dumps older than the retention, keeping the newest BACKUP_KEEP_MIN and $1
	just=$1
	cutoff=$(date -u -d "@$(($(date -u +%s) - BACKUP_RETENTION_DAYS * 86400))" +%Y%m%dT%H%M%SZ)
	dumps=$(list_dumps)
	total=$(printf '%s\n' "$dumps" | grep -c . || true)
	expired=$(printf '%s\n' "$dumps" | grep . | awk -v cutoff="$BACKUP_NAME_PREFIX-$cutoff.sql.gz" \
		-v keep="$BACKUP_KEEP_MIN" -v total="$total" -v just="$just" \
		'NR <= total - keep && $0 < cutoff && $0 != just')
	deleted=0
	for old in $expired; do
		rc deletefile "$remote$old"
		log "deleted $old (older than $BACKUP_RETENTION_DAYS days)"
		deleted=$((deleted + 1))
	done
	log "retention: $total dumps, $deleted deleted, cutoff $cutoff, newest $BACKUP_KEEP_MIN always kept"
}

latest() {
	rclone_env
	list_dumps | tail -n 1
}

fetch() {
	dest=${1:?usage: backup.sh fetch FILE}
	rclone_env
	name=$(list_dumps | tail -n 1)
	[ -n "$name" ] || die "no dump in $BACKUP_S3_BUCKET/$prefix"
	rc copyto "$remote$name" "$dest"
	echo "$name"
}

case ${1:-} in
dump) dump ;;
upload) upload ;;
all)
	dump
	upload
	;;
latest) latest ;;
fetch) fetch "${2:-}" ;;
*) die "usage: backup.sh dump|upload|all|latest|fetch FILE" ;;
esac
