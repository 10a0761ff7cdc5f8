#!/bin/sh
# Remakes the seeds that are signed, with openssl: the JWTs and JWKS of
# tests/fuzz/corpus/jwt (keys in tests/fuzz/keys, test keys made with
# openssl genpkey, used nowhere else) and the sealed requestStates of
# tests/fuzz/corpus/reqstate (the fixed key of fuzz_reqstate.c).
# The other seeds are plain files. Run from anywhere; needs openssl, xxd.
set -eu
cd "$(dirname "$0")"
keys=keys

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
hex2bin() { xxd -r -p; }

# ---- JWKS ----
ed_x=$(openssl pkey -in $keys/ed25519.pem -pubout -outform DER | tail -c 32 | b64url)
ec_pt=$(openssl pkey -in $keys/p256.pem -pubout -outform DER | tail -c 65 | xxd -p | tr -d '\n')
ec_x=$(printf %s "$ec_pt" | cut -c3-66 | hex2bin | b64url)
ec_y=$(printf %s "$ec_pt" | cut -c67-130 | hex2bin | b64url)
rsa_n=$(openssl rsa -in $keys/rsa2048.pem -noout -modulus | sed 's/^Modulus=//' | hex2bin | b64url)
cat >$keys/jwks.json <<EOF
{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed1","use":"sig","alg":"EdDSA","x":"$ed_x"},{"kty":"EC","crv":"P-256","kid":"p256","alg":"ES256","x":"$ec_x","y":"$ec_y"},{"kty":"RSA","kid":"rsa1","key_ops":["verify"],"e":"AQAB","n":"$rsa_n"},{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}
EOF
c=corpus/jwt
mkdir -p $c
cp $keys/jwks.json $c/jwks
printf '{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/.well-known/jwks.json","authorization_endpoint":"https://issuer.example/authorize"}' >$c/discovery

# ---- JWTs ----
# jwt HEADER CLAIMS ALG: a compact JWS signed with the test key for ALG.
jwt() {
	input=$(printf %s "$1" | b64url).$(printf %s "$2" | b64url)
	case $3 in
	EdDSA)
		printf %s "$input" >sign.tmp
		sig=$(openssl pkeyutl -sign -inkey $keys/ed25519.pem -rawin -in sign.tmp | b64url)
		rm -f sign.tmp ;;
	ES256)
		# DER (r, s) into the JWS form: r || s, 32 bytes each.
		rs=$(printf %s "$input" | openssl dgst -sha256 -sign $keys/p256.pem |
		    openssl asn1parse -inform DER | sed -n 's/.*INTEGER *:\([0-9A-F]*\)$/\1/p' |
		    while read -r v; do printf %064s "$v" | tr ' ' 0; done)
		sig=$(printf %s "$rs" | hex2bin | b64url) ;;
	RS256)
		sig=$(printf %s "$input" | openssl dgst -sha256 -sign $keys/rsa2048.pem | b64url) ;;
	PS256)
		sig=$(printf %s "$input" | openssl dgst -sha256 -sign $keys/rsa2048.pem \
		    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest | b64url) ;;
	esac
	printf %s "$input.$sig"
}

# fuzz_jwt.c checks at 1750000000 (2025-06-15); these expire in 2033.
exp=2000000000
claims='{"iss":"https://issuer.example","sub":"ada","aud":"mcpd","exp":'$exp',"nbf":1700000000,"iat":1700000000,"scope":"mcp tools.read","client_id":"cli-1","tenant":"acme","resource":"https://mcp.example/mcp"}'
jwt '{"alg":"EdDSA","typ":"JWT","kid":"ed1"}' "$claims" EdDSA >$c/eddsa
jwt '{"alg":"ES256","typ":"at+jwt","kid":"p256"}' "$claims" ES256 >$c/es256
jwt '{"alg":"RS256","kid":"rsa1"}' "$claims" RS256 >$c/rs256
jwt '{"alg":"PS256","typ":"application/at+jwt","kid":"rsa1"}' \
    '{"iss":"https://issuer.example","sub":"bob","aud":["other","mcpd"],"exp":'$exp',"scp":["mcp","tools.admin"],"azp":"cli-2"}' PS256 >$c/ps256
jwt '{"alg":"EdDSA","kid":"ed1"}' '{"iss":"https://issuer.example","sub":"ada","aud":"mcpd","exp":1600000000}' EdDSA >$c/expired
jwt '{"alg":"none"}' "$claims" EdDSA >$c/alg-none
# Header and claims joined by a NUL: fuzz_jwt.c signs them itself.
printf '{"alg":"EdDSA","typ":"JWT","kid":"ed1"}\000%s' "$claims" >$c/sign-eddsa
printf '{"alg":"ES256","kid":"p256"}\000{"iss":"https://issuer.example","sub":"x","aud":"mcpd","exp":%s,"scope":["mcp"],"tenant":"acme","resource":"https://mcp.example/mcp"}' $exp >$c/sign-es256

# ---- requestState ----
# seal JSON: base64url(JSON) "." base64url(HMAC-SHA256(key, JSON)), the key
# being fuzz_reqstate.c's 32 bytes.
rkey=$(printf 'mcpd fuzz requestState key 0123\000' | xxd -p | tr -d '\n')
seal() {
	mac=$(printf %s "$1" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$rkey -binary | b64url)
	printf %s "$(printf %s "$1" | b64url).$mac"
}
r=corpus/reqstate
mkdir -p $r
h=$(printf '{"name":"Ada"}' | openssl dgst -sha256 -r | cut -c1-64)
# exp in milliseconds; fuzz_reqstate.c opens them today, so far ahead.
seal '{"m":"tools/call","n":"ask-name","h":"'$h'","a":{"name":{"action":"accept","content":{"name":"Ada"}}},"exp":4102444800000}' >$r/tools-call
seal '{"m":"prompts/get","n":"greeting","h":"'$h'","a":{},"exp":4102444800000}' >$r/prompts-get
seal '{"m":"tools/call","n":"ask-name","h":"'$h'","a":{},"exp":1600000000000}' >$r/expired
printf '{"m":"tools/call","n":"ask-name","h":"%s","a":{"q1":{"action":"decline"}},"exp":4102444800000}' "$h" >$r/payload-json
