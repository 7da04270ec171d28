#!/usr/bin/env bash
# demo_tls.sh SERVER BACKEND CLIENT - the demo smoke test (tests/examples)
# over mTLS: the server requires client certificates and a policy, the demo
# backends serve TLS and report with their certificate, the demo client
# watches with its own certificate and calls the backends over TLS.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CERTS=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-demo-tls.XXXXXX")
trap 'rm -rf "$CERTS"' EXIT
sh "$HERE/gen_certs.sh" "$CERTS"
cat >"$CERTS/policy" <<POLICY
id spiffe://test/backend-smoke report:smoke register-any
id spiffe://test/client-web    watch:smoke
POLICY
C=$CERTS
export LOOKASIDE_SMOKE_SERVER_ARGS="--tls-cert $C/server.crt --tls-key $C/server.key --tls-client-ca $C/ca.crt --policy-file $C/policy"
export LOOKASIDE_SMOKE_BACKEND_ARGS="--tls-ca $C/ca.crt --tls-cert $C/backend.crt --tls-key $C/backend.key --tls-server-name localhost"
export LOOKASIDE_SMOKE_CLIENT_ARGS="--tls-ca $C/ca.crt --tls-cert $C/client.crt --tls-key $C/client.key --tls-server-name localhost"
bash "$HERE/../examples/demo_smoke.sh" "$@"
