package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signerd/signerd/auth"
)

const (
	testIssuer   = "https://issuer.signerd.test"
	testAudience = "signerd"
	rsaKID       = "rsa-1"
	ecKID        = "ec-1"
)

// jwtKeys is an issuer's signing keys and the JWKS file with their public
// halves.
type jwtKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	jwksFile string
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK and ecJWK build JWKs by hand, as an operator's JWKS would have them.
func rsaJWK(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(t testing.TB, kid string, pub *ecdsa.PublicKey) map[string]string {
	t.Helper()
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(raw) != 65 {
		t.Fatalf("EC public key bytes: %v (%d bytes)", err, len(raw))
	}
	return map[string]string{"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
		"x": b64u(raw[1:33]), "y": b64u(raw[33:])}
}

func newJWTKeys(t testing.TB) *jwtKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{
		rsaJWK(rsaKID, &rk.PublicKey), ecJWK(t, ecKID, &ek.PublicKey),
	}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return &jwtKeys{rsa: rk, ec: ek, jwksFile: path}
}

func (k *jwtKeys) verifier(t testing.TB) *auth.JWTVerifier {
	t.Helper()
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: k.jwksFile, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claims are valid claims for subject, to be spoilt by a test case.
func claims(subject string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// RS256 and ES256 tokens of the JWKS's keys.
func (k *jwtKeys) rs256(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodRS256, rsaKID, c, k.rsa)
}

func (k *jwtKeys) es256(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodES256, ecKID, c, k.ec)
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func TestJWTVerifierAccepts(t *testing.T) {
	k := newJWTKeys(t)
	v := k.verifier(t)
	tests := []struct {
		name, token, sub string
	}{
		{name: "RS256", token: k.rs256(t, claims("spiffe://td/rsa-backend")), sub: "spiffe://td/rsa-backend"},
		{name: "ES256", token: k.es256(t, claims("ec-backend")), sub: "ec-backend"},
		{name: "audience list holding ours", token: k.rs256(t, with(claims("b"), "aud", []string{"other", testAudience})), sub: "b"},
		{name: "no kid: the key set is tried", token: sign(t, jwt.SigningMethodES256, "", claims("nokid"), k.ec), sub: "nokid"},
		{name: "no nbf, no iat", token: k.es256(t, with(claims("minimal"), "nbf", nil, "iat", nil)), sub: "minimal"},
		{name: "hand-written payload", token: rawToken(t, k, `"svc-a"`), sub: "svc-a"},
		{name: "every printable ASCII character", token: k.es256(t, claims("!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~")),
			sub: "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"},
		{name: "JWT-SVID subject", token: k.es256(t, claims("spiffe://td/ns/prod/sa/provisioner")), sub: "spiffe://td/ns/prod/sa/provisioner"},
		{name: "subject of 2048 bytes", token: k.es256(t, claims(strings.Repeat("a", 2048))), sub: strings.Repeat("a", 2048)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := (auth.Identity{Kind: auth.KindBackend, Name: tc.sub, Method: "jwt"}); id != want {
				t.Errorf("Verify = %+v, want %+v", id, want)
			}
		})
	}
}

func TestJWTVerifierRejects(t *testing.T) {
	k := newJWTKeys(t)
	v := k.verifier(t)
	other := newJWTKeys(t) // a different issuer's keys, same kids
	now := time.Now()

	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwksBytes, err := os.ReadFile(k.jwksFile)
	if err != nil {
		t.Fatal(err)
	}

	valid := k.rs256(t, claims("b"))
	parts := strings.Split(valid, ".")
	tamperedPayload := b64u([]byte(`{"iss":"` + testIssuer + `","aud":"` + testAudience + `","sub":"admin","exp":` +
		big.NewInt(now.Add(time.Hour).Unix()).String() + `}`))

	tests := []struct {
		name, token string
	}{
		{name: "wrong issuer", token: k.rs256(t, with(claims("b"), "iss", "https://evil.test"))},
		{name: "issuer prefix", token: k.rs256(t, with(claims("b"), "iss", testIssuer+"/x"))},
		{name: "no issuer", token: k.rs256(t, with(claims("b"), "iss", nil))},
		{name: "wrong audience", token: k.es256(t, with(claims("b"), "aud", "other-service"))},
		{name: "audience list without ours", token: k.es256(t, with(claims("b"), "aud", []string{"a", "b"}))},
		{name: "no audience", token: k.es256(t, with(claims("b"), "aud", nil))},
		{name: "expired", token: k.rs256(t, with(claims("b"), "exp", now.Add(-time.Hour).Unix()))},
		{name: "expired ES256", token: k.es256(t, with(claims("b"), "exp", now.Add(-time.Hour).Unix()))},
		{name: "not yet valid", token: k.rs256(t, with(claims("b"), "nbf", now.Add(time.Hour).Unix()))},
		{name: "issued in the future", token: k.rs256(t, with(claims("b"), "iat", now.Add(time.Hour).Unix()))},
		{name: "missing exp", token: k.rs256(t, with(claims("b"), "exp", nil))},
		{name: "no subject", token: k.rs256(t, with(claims("b"), "sub", nil))},
		{name: "empty subject", token: k.es256(t, with(claims("b"), "sub", ""))},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, rsaKID, claims("b"), jwt.UnsafeAllowNoneSignatureType)},
		{name: "alg none without kid", token: sign(t, jwt.SigningMethodNone, "", claims("b"), jwt.UnsafeAllowNoneSignatureType)},
		{name: "alg None, hand-made", token: b64u([]byte(`{"alg":"None","typ":"JWT"}`)) + "." + parts[1] + "."},
		{name: "HS256 keyed with the RSA public key PEM", token: sign(t, jwt.SigningMethodHS256, rsaKID, claims("b"), pubPEM)},
		{name: "HS256 keyed with the RSA public key DER", token: sign(t, jwt.SigningMethodHS256, rsaKID, claims("b"), pubDER)},
		{name: "HS256 keyed with the JWKS", token: sign(t, jwt.SigningMethodHS256, "", claims("b"), jwksBytes)},
		{name: "HS512 keyed with the RSA modulus", token: sign(t, jwt.SigningMethodHS512, rsaKID, claims("b"), k.rsa.N.Bytes())},
		{name: "PS256 (not an accepted algorithm)", token: sign(t, jwt.SigningMethodPS256, rsaKID, claims("b"), k.rsa)},
		{name: "RS512 (not an accepted algorithm)", token: sign(t, jwt.SigningMethodRS512, rsaKID, claims("b"), k.rsa)},
		{name: "unknown kid", token: sign(t, jwt.SigningMethodRS256, "rsa-2", claims("b"), k.rsa)},
		{name: "another key under our kid", token: other.rs256(t, claims("b"))},
		{name: "another key without kid", token: sign(t, jwt.SigningMethodES256, "", claims("b"), other.ec)},
		{name: "ES256 under the RSA kid", token: sign(t, jwt.SigningMethodES256, rsaKID, claims("b"), k.ec)},
		{name: "RS256 under the EC kid", token: sign(t, jwt.SigningMethodRS256, ecKID, claims("b"), k.rsa)},
		{name: "tampered payload", token: parts[0] + "." + tamperedPayload + "." + parts[2]},
		{name: "signature removed", token: parts[0] + "." + parts[1] + "."},
		{name: "signature of another token", token: parts[0] + "." + parts[1] + "." + strings.Split(k.rs256(t, claims("c")), ".")[2]},
		{name: "two segments", token: parts[0] + "." + parts[1]},

		// Subjects that decoding alters or that pass for another name: the
		// policy matches bytes, the audit record shows them.
		{name: "subject with invalid UTF-8", token: rawToken(t, k, `"svc-`+"\xff"+`"`)},
		{name: "subject with other invalid UTF-8", token: rawToken(t, k, `"svc-`+"\xfe"+`"`)},
		{name: "subject with a lone surrogate escape", token: rawToken(t, k, `"svc-\ud800"`)},
		{name: "subject with U+FFFD", token: k.es256(t, claims("svc-\ufffd"))},
		{name: "subject with a Cyrillic homoglyph", token: k.es256(t, claims("\u0430dmin"))},
		{name: "subject with a zero-width space", token: k.es256(t, claims("admin\u200b"))},
		{name: "subject with a trailing space", token: k.es256(t, claims("admin "))},
		{name: "subject with a newline", token: k.es256(t, claims("admin\nbackend:spiffe://td/x"))},
		{name: "subject with a NUL", token: k.es256(t, claims("admin\x00"))},
		{name: "subject SPIFFE ID percent-encoded", token: k.es256(t, claims("spiffe://td/%61dmin"))},
		{name: "subject SPIFFE ID with a dot-dot segment", token: k.es256(t, claims("spiffe://td/x/../admin"))},
		{name: "subject SPIFFE ID in capitals", token: k.es256(t, claims("SPIFFE://td/admin"))},
		{name: "subject SPIFFE ID without a path", token: k.es256(t, claims("spiffe://td"))},
		{name: "subject SPIFFE ID with a trailing slash", token: k.es256(t, claims("spiffe://td/admin/"))},
		{name: "subject of 2049 bytes", token: k.es256(t, claims(strings.Repeat("a", 2049)))},
		{name: "garbage", token: "not-a-jwt"},
		{name: "empty", token: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if id != (auth.Identity{}) {
				t.Errorf("Verify returned %+v with its error, want the zero Identity", id)
			}
			msg := err.Error()
			if tc.token != "" && strings.Contains(msg, tc.token) {
				t.Errorf("error contains the token: %s", msg)
			}
			for i, seg := range strings.Split(tc.token, ".") {
				if len(seg) > 8 && strings.Contains(msg, seg) {
					t.Errorf("error contains segment %d of the token: %s", i, msg)
				}
			}
		})
	}
}

// rawToken is an ES256 token whose payload is written by hand, subject
// JSON included, so that it can hold what encoding/json would not write
// (invalid UTF-8).
func rawToken(t *testing.T, k *jwtKeys, subjectJSON string) string {
	t.Helper()
	now := time.Now().Unix()
	header := b64u([]byte(`{"alg":"ES256","typ":"JWT","kid":"` + ecKID + `"}`))
	payload := b64u([]byte(`{"iss":"` + testIssuer + `","aud":"` + testAudience + `","sub":` + subjectJSON +
		`,"iat":` + big.NewInt(now).String() + `,"exp":` + big.NewInt(now+600).String() + `}`))
	sig, err := jwt.SigningMethodES256.Sign(header+"."+payload, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	return header + "." + payload + "." + b64u(sig)
}

func TestNewJWTVerifierErrors(t *testing.T) {
	k := newJWTKeys(t)
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "jwks.txt")
	if err := os.WriteFile(notJSON, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  auth.JWTConfig
		want string
	}{
		{name: "no key source", cfg: auth.JWTConfig{Issuer: testIssuer, Audience: testAudience}, want: "JWKS"},
		{name: "both key sources", cfg: auth.JWTConfig{JWKSFile: k.jwksFile, JWKSURL: "https://issuer.test/jwks", Issuer: testIssuer, Audience: testAudience}, want: "JWKS"},
		{name: "no issuer", cfg: auth.JWTConfig{JWKSFile: k.jwksFile, Audience: testAudience}, want: "issuer"},
		{name: "no audience", cfg: auth.JWTConfig{JWKSFile: k.jwksFile, Issuer: testIssuer}, want: "audience"},
		{name: "missing file", cfg: auth.JWTConfig{JWKSFile: filepath.Join(dir, "missing.json"), Issuer: testIssuer, Audience: testAudience}, want: "missing.json"},
		{name: "not JSON", cfg: auth.JWTConfig{JWKSFile: notJSON, Issuer: testIssuer, Audience: testAudience}, want: "JWKS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := auth.NewJWTVerifier(context.Background(), tc.cfg)
			if err == nil {
				t.Fatalf("NewJWTVerifier(%+v) = %v, want an error", tc.cfg, v)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// jwks is a JWKS document of the given keys.
func jwks(t *testing.T, keys ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A remembered verification holds only while the JWKS still has the key
// that verified the token: removing the key, or putting another key under
// its kid, refuses the token on its next use, and putting it back accepts
// it again.
func TestJWTVerifierCacheFollowsJWKS(t *testing.T) {
	k := newJWTKeys(t)
	other := newJWTKeys(t)
	full := jwks(t, rsaJWK(rsaKID, &k.rsa.PublicKey), ecJWK(t, ecKID, &k.ec.PublicKey))
	tests := []struct {
		name    string
		token   string
		without []byte // the JWKS without the token's key
		swapped []byte // the JWKS with another key under the token's kid
	}{
		{name: "RS256", token: k.rs256(t, claims("rsa-backend")),
			without: jwks(t, ecJWK(t, ecKID, &k.ec.PublicKey)),
			swapped: jwks(t, rsaJWK(rsaKID, &other.rsa.PublicKey), ecJWK(t, ecKID, &k.ec.PublicKey))},
		{name: "ES256", token: k.es256(t, claims("ec-backend")),
			without: jwks(t, rsaJWK(rsaKID, &k.rsa.PublicKey)),
			swapped: jwks(t, rsaJWK(rsaKID, &k.rsa.PublicKey), ecJWK(t, ecKID, &other.ec.PublicKey))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := k.verifier(t)
			for _, step := range []struct {
				what string
				set  []byte
				ok   bool
			}{
				{"first use", nil, true},
				{"second use (remembered)", nil, true},
				{"key removed from the JWKS", tc.without, false},
				{"key put back", full, true},
				{"remembered again", nil, true},
				{"another key under the kid", tc.swapped, false},
				{"key put back again", full, true},
			} {
				if step.set != nil {
					if err := auth.SetJWKS(v, step.set); err != nil {
						t.Fatal(err)
					}
				}
				_, err := v.Verify(tc.token)
				if (err == nil) != step.ok {
					t.Errorf("%s: Verify error %v, want ok=%v", step.what, err, step.ok)
				}
			}
		})
	}
}

// A remembered verification never outlives the token's exp: after it the
// token is verified afresh, which refuses it once exp and the leeway have
// passed.
func TestJWTVerifierCacheNeverOutlivesExp(t *testing.T) {
	k := newJWTKeys(t)
	start := time.Now().Truncate(time.Second)
	now := start
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: k.jwksFile, Issuer: testIssuer, Audience: testAudience,
		Leeway: 5 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	exp := start.Add(time.Minute)
	tok := k.rs256(t, with(claims("short-lived"), "iat", start.Unix(), "nbf", start.Unix(), "exp", exp.Unix()))
	for _, step := range []struct {
		at time.Time
		ok bool
	}{
		{start, true},
		{exp.Add(-time.Second), true},         // remembered
		{exp.Add(4 * time.Second), true},      // past exp, within the leeway: verified afresh
		{exp.Add(6 * time.Second), false},     // past exp and the leeway
		{exp.Add(-time.Second), true},         // the clock stepped back: verified afresh
		{exp.Add(time.Hour), false},           // long expired
		{start.Add(-10 * time.Second), false}, // before nbf and the leeway
	} {
		now = step.at
		_, err := v.Verify(tok)
		if (err == nil) != step.ok {
			t.Errorf("at exp%+v: Verify error %v, want ok=%v", step.at.Sub(exp), err, step.ok)
		}
	}
}

// Caching changes no answer: every token of the accept and reject tables
// gets the same answer from a caching verifier, asked twice, as from one
// that does not cache.
func TestJWTVerifierCacheSameAnswers(t *testing.T) {
	k := newJWTKeys(t)
	cached := k.verifier(t)
	plain, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: k.jwksFile, Issuer: testIssuer, Audience: testAudience, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tokens := []string{
		k.rs256(t, claims("a")), k.es256(t, claims("b")),
		sign(t, jwt.SigningMethodES256, "", claims("nokid"), k.ec),
		k.rs256(t, with(claims("a"), "exp", now.Add(-time.Hour).Unix())),
		k.rs256(t, with(claims("a"), "aud", "someone-else")),
		k.rs256(t, with(claims("a"), "iss", "https://evil.test")),
		k.rs256(t, with(claims("a"), "nbf", now.Add(time.Hour).Unix())),
		k.rs256(t, with(claims("a"), "exp", nil)),
		k.rs256(t, with(claims(""))),
		k.rs256(t, claims("bad\x00name")),
		sign(t, jwt.SigningMethodRS256, "unknown-kid", claims("a"), k.rsa),
		sign(t, jwt.SigningMethodES256, rsaKID, claims("a"), k.ec),
		k.rs256(t, claims("a")) + "x",
	}
	for i, tok := range tokens {
		_, want := plain.Verify(tok)
		for try := range 2 {
			id, err := cached.Verify(tok)
			if (err == nil) != (want == nil) {
				t.Errorf("token %d, try %d: cached Verify = %+v, %v; uncached error %v", i, try, id, err, want)
			}
		}
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	k := newJWTKeys(b)
	for _, size := range []int{-1, 0} {
		name := map[int]string{-1: "uncached", 0: "cached"}[size]
		b.Run(name, func(b *testing.B) {
			v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: k.jwksFile, Issuer: testIssuer, Audience: testAudience, CacheSize: size})
			if err != nil {
				b.Fatal(err)
			}
			tok := k.rs256(b, claims("spiffe://td/loadgen"))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
