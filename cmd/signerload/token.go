package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenMain makes a bearer token for a JWT benchmark run: a fresh RSA-2048
// key (RS256, as most identity providers sign), its JWKS for signerd's
// -jwks-file, and one token of it. The private key is never written.
func tokenMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("signerload token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jwksFile := fs.String("jwks", "", "write the JWKS (the public key) to this file, for signerd -jwks-file")
	tokenFile := fs.String("out", "", "write the token to this file (mode 0600)")
	issuer := fs.String("issuer", "https://issuer.signerload.test", "iss of the token (signerd -jwt-issuer)")
	audience := fs.String("audience", "signerd", "aud of the token (signerd -jwt-audience)")
	subject := fs.String("subject", "signerload", "sub of the token: the backend identity the policy grants")
	ttl := fs.Duration("ttl", 2*time.Hour, "lifetime of the token")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: signerload token -jwks FILE -out FILE [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *jwksFile == "" || *tokenFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if *ttl <= 0 || *subject == "" || *issuer == "" || *audience == "" {
		return errors.New("-ttl, -subject, -issuer, -audience: must be set, -ttl positive")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	const kid = "signerload-1"
	b64u := base64.RawURLEncoding.EncodeToString
	jwks, err := json.MarshalIndent(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(key.N.Bytes()), "e": b64u(big.NewInt(int64(key.E)).Bytes()),
	}}}, "", "  ")
	if err != nil {
		return err
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: *issuer, Subject: *subject, Audience: jwt.ClaimStrings{*audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(*ttl)),
	})
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*jwksFile, append(jwks, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(*tokenFile, []byte(signed+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "token: RS256, kid %s, sub %q, iss %q, aud %q, expires %s; JWKS in %s, token in %s\n",
		kid, *subject, *issuer, *audience, now.Add(*ttl).UTC().Format(time.RFC3339), *jwksFile, *tokenFile)
	return nil
}
