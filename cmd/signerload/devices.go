package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// fleet names the synthetic devices every mode agrees on: device i is
// {product}/dev-%07d with a secret derived from seed, so that seed, the
// load modes (-verify) and hmac need no shared file.
type fleet struct {
	product string
	seed    string
	// device, if set, replaces the generated names: every request is for
	// this one device (for signerd -dev's demo device).
	device string
}

func (f fleet) name(i int) string {
	if f.device != "" {
		return f.device
	}
	return fmt.Sprintf("dev-%07d", i)
}

// secret is device i's DeviceSecret: 32 lower-case hex characters, like
// the platform's.
func (f fleet) secret(i int) []byte {
	m := hmac.New(sha256.New, []byte(f.seed))
	m.Write([]byte(f.product + "/" + f.name(i)))
	return []byte(hex.EncodeToString(m.Sum(nil))[:32])
}

// checkLocal refuses hosts other than loopback ones unless allowRemote: a
// load generator pointed at a shared server by mistake is a denial of
// service. Host names other than localhost are refused without resolving.
func checkLocal(what, host string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: %q is not a loopback address (127.0.0.1, ::1, localhost); pass -allow-remote to load another host", what, host)
}

// checkLocalAddr checks a host:port address.
func checkLocalAddr(what, addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %w", what, addr, err)
	}
	return checkLocal(what, host, allowRemote)
}

// checkLocalURL checks a URL's host.
func checkLocalURL(what, raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%s %q: want an http:// or https:// URL", what, raw)
	}
	return checkLocal(what, u.Hostname(), allowRemote)
}
