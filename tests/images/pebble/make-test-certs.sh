#!/bin/sh
# aistack test kit: create pebble's HTTPS test certificates in the layout of
# upstream's test/certs (which Debian's repacked source does not ship):
#   DIR/pebble.minica.pem, DIR/pebble.minica.key.pem  a throwaway CA
#   DIR/localhost/cert.pem, DIR/localhost/key.pem      server certificate for
#                                                      localhost, pebble, 127.0.0.1
# The keys are test-only and world-readable, like upstream's.
set -eu
dir="${1:?usage: make-test-certs.sh DIR}"
mkdir -p "$dir/localhost"
cd "$dir"

openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -sha256 \
    -subj "/CN=minica root ca $(openssl rand -hex 3)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,digitalSignature" \
    -keyout pebble.minica.key.pem -out pebble.minica.pem

openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
    -keyout localhost/key.pem -out localhost/csr.pem
cat > localhost/ext.cnf <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,DNS:pebble,IP:127.0.0.1
EXT
openssl x509 -req -in localhost/csr.pem -CA pebble.minica.pem -CAkey pebble.minica.key.pem \
    -CAcreateserial -days 36500 -sha256 -extfile localhost/ext.cnf -out localhost/cert.pem
rm -f localhost/csr.pem localhost/ext.cnf pebble.minica.srl
chmod 0644 pebble.minica.key.pem pebble.minica.pem localhost/key.pem localhost/cert.pem
openssl verify -CAfile pebble.minica.pem localhost/cert.pem
