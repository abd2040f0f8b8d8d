#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A development certificate authority for Portolan's mutual TLS (OpenSSL CLI,
# ECDSA P-256). Not for production: the CA key sits unencrypted next to the
# certificates. Production CAs issue the same shapes (see docs/security.md).
#
#   deploy/dev-ca.sh DIR init                      CA: DIR/ca.pem, DIR/ca.key (kept if present)
#   deploy/dev-ca.sh DIR scheduler [NAME|IP ...]   DIR/scheduler.pem/.key for the agent RPC and
#                                                  HTTPS; valid for localhost, 127.0.0.1, ::1 and
#                                                  each NAME or IP given
#   deploy/dev-ca.sh DIR agent ID SITE             DIR/agent-ID.pem/.key: CN=ID, OU=SITE; the
#                                                  scheduler lets it register only as ID at SITE
#
# --days N (before the command) sets the validity (default 365).
set -euo pipefail

days=365
if [[ "${1:-}" == "--days" ]]; then
  days="$2"
  shift 2
fi
if [[ $# -lt 2 ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
dir="$1"
cmd="$2"
shift 2
command -v openssl >/dev/null || { echo "dev-ca.sh: openssl is not installed" >&2; exit 2; }
mkdir -p "$dir"
umask 077

# A token that is safe in a file name and a certificate subject.
check_name() {
  if [[ ! "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]]; then
    echo "dev-ca.sh: '$1' is not a valid $2 (letters, digits, . _ -; at most 63)" >&2
    exit 2
  fi
}

need_ca() {
  if [[ ! -f "$dir/ca.pem" || ! -f "$dir/ca.key" ]]; then
    echo "dev-ca.sh: no CA in $dir; run: $0 $dir init" >&2
    exit 2
  fi
}

# issue NAME SUBJECT EXTENSIONS: key + certificate signed by the CA.
issue() {
  local name="$1" subject="$2" ext="$3"
  local extfile
  extfile="$(mktemp)"
  printf '%s\n' "$ext" >"$extfile"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "$subject" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$extfile" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$extfile"
  chmod 600 "$dir/$name.key"
  chmod 644 "$dir/$name.pem"
  echo "$dir/$name.pem ($subject, $days days)"
}

case "$cmd" in
  init)
    if [[ -f "$dir/ca.pem" && -f "$dir/ca.key" ]]; then
      echo "$dir/ca.pem (existing CA kept)"
      exit 0
    fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$((days * 10))" \
      -subj "/O=Portolan development CA/CN=portolan-dev-ca" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 644 "$dir/ca.pem"
    echo "$dir/ca.pem (new development CA)"
    ;;
  scheduler)
    need_ca
    san="DNS:localhost,IP:127.0.0.1,IP:::1"
    for n in "$@"; do
      if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then
        san="$san,IP:$n"
      else
        check_name "$n" "host name"
        san="$san,DNS:$n"
      fi
    done
    issue scheduler "/O=Portolan/OU=scheduler/CN=portolan-scheduler" \
      "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
    ;;
  agent)
    need_ca
    if [[ $# -ne 2 ]]; then
      echo "dev-ca.sh: usage: $0 DIR agent ID SITE" >&2
      exit 2
    fi
    check_name "$1" "agent id"
    check_name "$2" "site"
    # clientAuth for the scheduler's agent port; serverAuth for its own data
    # endpoint, where other agents pull datasets from it (docs/datasets.md).
    issue "agent-$1" "/O=Portolan/OU=$2/CN=$1" \
      "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth"
    ;;
  *)
    echo "dev-ca.sh: unknown command '$cmd' (init, scheduler, agent)" >&2
    exit 2
    ;;
esac
