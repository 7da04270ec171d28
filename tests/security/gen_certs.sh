#!/bin/sh
# gen_certs.sh DIR - test certificates for tests/security, made fresh with the
# openssl CLI on every run (nothing secret is committed). EC P-256 keys.
#   ca.crt           the test CA; ca2.crt another CA nobody trusts
#   server.crt       DNS:localhost, lb.test, web.test (the grpclb test's balancer
#                    and backends), IP:127.0.0.1, CN server-gen1 (signed by ca)
#   server2.crt      the same names, CN server-gen2, signed by ca2 (rotation)
#   reporter.crt     URI spiffe://test/reporter-web       (report:web)
#   reporter2.crt    URI spiffe://test/reporter-other     (report:web, another identity)
#   client.crt       URI spiffe://test/client-web         (watch:web)
#   admin.crt        URI spiffe://test/admin              (admin)
#   dnsonly.crt      DNS:dns-client.test, no URI          (identity from the DNS SAN)
#   wrongsan.crt     URI spiffe://test/not-in-policy      (a valid cert the policy does not name)
#   backend.crt      URI spiffe://test/backend-smoke, DNS localhost (demo backend: serves and reports)
#   tokenuri.crt     URI token:adm                        (tries to pass for the token "adm")
#   expired.crt      URI spiffe://test/client-web, expired in 2020
#   otherca.crt      URI spiffe://test/client-web, signed by ca2
set -eu
D=$1
mkdir -p "$D"
cd "$D"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 3 -out "$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
}
# leaf NAME CA SAN [CN]
leaf() {
    key "$1"
    openssl req -new -key "$1.key" -subj "/CN=${4:-$1}" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 3 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
ca ca
ca ca2
leaf server ca "DNS:localhost,DNS:lb.test,DNS:web.test,IP:127.0.0.1" server-gen1
leaf server2 ca2 "DNS:localhost,IP:127.0.0.1" server-gen2
leaf reporter ca "URI:spiffe://test/reporter-web"
leaf reporter2 ca "URI:spiffe://test/reporter-other"
leaf client ca "URI:spiffe://test/client-web"
leaf admin ca "URI:spiffe://test/admin"
leaf dnsonly ca "DNS:dns-client.test"
leaf wrongsan ca "URI:spiffe://test/not-in-policy"
leaf backend ca "URI:spiffe://test/backend-smoke,DNS:localhost"
leaf tokenuri ca "URI:token:adm"
leaf otherca ca2 "URI:spiffe://test/client-web"
# Expired: `openssl ca` is the CLI that takes explicit validity dates.
key expired
openssl req -new -key expired.key -subj "/CN=expired" -out expired.csr 2>/dev/null
mkdir -p cadb
: > cadb/index.txt
echo 1000 > cadb/serial
cat > cadb/ca.cnf <<CNF
[ca]
default_ca = c
[c]
database = cadb/index.txt
serial = cadb/serial
new_certs_dir = cadb
default_md = sha256
policy = p
x509_extensions = x
[p]
commonName = supplied
[x]
subjectAltName = URI:spiffe://test/client-web
extendedKeyUsage = clientAuth
CNF
openssl ca -batch -config cadb/ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr \
    -startdate 20200101000000Z -enddate 20200102000000Z -out expired.crt 2>/dev/null
chmod 600 ./*.key
