package azure

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// The SAS token format, as Microsoft's azure-iot-common writes it
// (SharedAccessSignature.toString: fields in the order sr, sig, skn, se,
// skn only when a key name is given).
const (
	tokenPrefix = "SharedAccessSignature sr="
	sigPrefix   = "&sig="
	sknPrefix   = "&skn="
	sePrefix    = "&se="
)

// appendEscaped appends s URL-encoded exactly as azure-iot-common's
// encodeUriComponentStrict does: JavaScript's encodeURIComponent (which
// keeps A-Z a-z 0-9 - _ . ! ~ * ' ( ) and writes other bytes as %XX in
// upper case), after which ! ' ( ) * are replaced by '%' and their
// code in lower-case hex. Only '*' differs from upper case: it becomes
// "%2a". Byte for byte matters: the hub checks the signature over the
// URL-encoded resource URI as the device sent it.
func appendEscaped(dst []byte, s string) []byte {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case charClass[c]&classAlnum != 0, c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == '*':
			dst = append(dst, "%2a"...)
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return dst
}

// escapedLen returns len(appendEscaped(nil, s)).
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if charClass[c]&classAlnum != 0 || c == '-' || c == '_' || c == '.' || c == '~' {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// signToken returns the SAS token over sr (the resource URI as it appears
// in the token, already encoded or not as the service expects), expiring
// at expiry (Unix seconds), with key name skn ("" for none), whose sig
// mac computes over "{sr}\n{expiry}".
func signToken(mac MAC, sr string, expiry int64, skn string) (string, error) {
	var seBuf [20]byte
	se := strconv.AppendInt(seBuf[:0], expiry, 10)

	// One buffer holds the string to sign and then the MAC, which mac may
	// write over it.
	content := make([]byte, 0, max(len(sr)+1+len(se), 32))
	content = append(content, sr...)
	content = append(content, '\n')
	content = append(content, se...)
	sum, err := callMAC(mac, content)
	if err != nil {
		return "", err
	}
	var sigBuf [44]byte // base64 of 32 bytes
	base64.StdEncoding.Encode(sigBuf[:], sum)
	sig := string(sigBuf[:])

	var b strings.Builder
	n := len(tokenPrefix) + len(sr) + len(sigPrefix) + escapedLen(sig) + len(sePrefix) + len(se)
	if skn != "" {
		n += len(sknPrefix) + escapedLen(skn)
	}
	b.Grow(n)
	b.WriteString(tokenPrefix)
	b.WriteString(sr)
	b.WriteString(sigPrefix)
	b.Write(appendEscaped(nil, sig))
	if skn != "" {
		b.WriteString(sknPrefix)
		b.Write(appendEscaped(nil, skn))
	}
	b.WriteString(sePrefix)
	b.Write(se)
	return b.String(), nil
}
