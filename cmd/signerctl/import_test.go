package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/secrets"
)

// cli runs signerctl in-process and captures its outputs.
type cli struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, ctx context.Context, env map[string]string, args ...string) cli {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, env, &out, &errb)
	return cli{code, out.String(), errb.String()}
}

// vaultEnv starts a real Vault dev server and returns it with the flags
// that point signerctl at it with its root token.
func vaultEnv(t *testing.T) (*vaulttest.Server, []string) {
	t.Helper()
	srv := vaulttest.StartT(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(srv.RootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, []string{"-vault-addr", srv.Addr, "-vault-token-file", tok}
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newSecret returns a random 32-character DeviceSecret, as the platform
// makes them; random enough never to occur in the output by chance.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// fixture is a generated device export.
type fixture struct {
	csv     string
	good    map[secrets.DeviceID]string // device → secret, every row that must land in Vault
	order   []secrets.DeviceID          // good devices in file order
	bad     map[int]string              // line → a substring its reason must contain
	secrets []string                    // every secret in the file, good rows or bad
}

// genExport makes an export of n data rows whose columns are in another
// order than the console's, with extra columns, quoted commas and, every
// 250 rows, a quoted field spanning two lines (so rows and lines differ).
// Rows at the indices in badAt are bad, of kinds in turn.
func genExport(n int, badAt map[int]bool) fixture {
	f := fixture{good: map[secrets.DeviceID]string{}, bad: map[int]string{}}
	var b strings.Builder
	b.WriteString("DeviceName,IotId,DeviceSecret,Nickname,ProductKey,GmtCreate\n")
	line := 2 // line of the next row
	kind := 0
	var last secrets.DeviceID // the last good device, for duplicates
	for i := range n {
		pk := fmt.Sprintf("a1Prod%d", i%5)
		dn := fmt.Sprintf("dev-%05d", i)
		if i%7 == 3 {
			dn = fmt.Sprintf("d.%05d@site:b_1", i) // every character class the platform allows
		}
		secret := newSecret()
		f.secrets = append(f.secrets, secret)
		nick := fmt.Sprintf("\"Sensor %d, hall B\"", i)
		if i%250 == 0 {
			nick = fmt.Sprintf("\"Sensor %d\nsecond line\"", i)
		}
		row := func() string {
			return fmt.Sprintf("%s,iot%08d,%s,%s,%s,2026-01-02 03:04:05\n", dn, i, secret, nick, pk)
		}
		var text, want string
		if badAt[i] && last != (secrets.DeviceID{}) {
			switch kind % 12 {
			case 0:
				pk, want = "a1-Prod!", "productKey: must be"
			case 1:
				pk, want = strings.Repeat("P", 33), "productKey: must be"
			case 2:
				dn, want = "ab1", "deviceName: must be"
			case 3:
				dn, want = "dev#"+strconv.Itoa(i), "deviceName: must be"
			case 4:
				dn, want = strings.Repeat("d", 33), "deviceName: must be"
			case 5:
				secret, want = "", "deviceSecret: must not be empty"
			case 6:
				secret, want = " "+secret, "deviceSecret: has leading or trailing white space"
			case 7:
				pk, dn, secret = last.ProductKey, last.DeviceName, f.good[last]
				want = "duplicate of line"
			case 8:
				pk, dn = last.ProductKey, last.DeviceName
				want = "with a different secret"
			case 9:
				text, want = fmt.Sprintf("%s,iot%08d,%s\n", dn, i, secret), "has 3 fields, the header needs at least 5"
			case 10:
				nick, want = "Sensor \"quoted\" badly", "malformed CSV"
			case 11:
				pk, secret, want = "", "", "productKey: must be 1–32 characters of [A-Za-z0-9]; deviceSecret: must not be empty"
			}
			kind++
			if text == "" {
				text = row()
			}
			f.bad[line] = want
		} else {
			text = row()
			id := secrets.DeviceID{ProductKey: pk, DeviceName: dn}
			f.good[id] = secret
			f.order = append(f.order, id)
			last = id
		}
		b.WriteString(text)
		line += strings.Count(text, "\n")
	}
	f.csv = b.String()
	return f
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// badLines parses the "line N: bad row: reason" report.
func badLines(t *testing.T, stdout string) map[int]string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^line (\d+): bad row: (.*)$`)
	got := map[int]string{}
	for _, m := range re.FindAllStringSubmatch(stdout, -1) {
		n, _ := strconv.Atoi(m[1])
		if _, dup := got[n]; dup {
			t.Errorf("line %d reported twice", n)
		}
		got[n] = m[2]
	}
	return got
}

// counts parses a summary line: created, unchanged, conflicts, errors.
func counts(t *testing.T, stdout, target string) [4]int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^  ` + target + ` \S+: (\d+) (?:created|to create), (\d+) unchanged, (\d+) conflicts, (\d+) errors`)
	m := re.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no %s summary line in:\n%s", target, stdout)
	}
	var c [4]int
	for i := range c {
		c[i], _ = strconv.Atoi(m[i+1])
	}
	return c
}

// noSecrets fails when any secret occurs in the outputs.
func noSecrets(t *testing.T, r cli, secrets []string) {
	t.Helper()
	all := r.stdout + r.stderr
	for _, s := range secrets {
		if s = strings.TrimSpace(s); s != "" && strings.Contains(all, s) {
			t.Fatalf("a secret appears in the output")
		}
	}
}

// checkVault reads every device as root: the secret is the file's and the
// entry has exactly one version.
func checkVault(t *testing.T, srv *vaulttest.Server, want map[secrets.DeviceID]string) {
	t.Helper()
	kv := srv.Client.KVv2("iot")
	ids := make(chan secrets.DeviceID)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				path := "devices/" + id.ProductKey + "/" + id.DeviceName
				s, err := kv.Get(context.Background(), path)
				var msg string
				switch {
				case err != nil:
					msg = fmt.Sprintf("%s: %v", id, err)
				case s.Data["deviceSecret"] != want[id]:
					msg = fmt.Sprintf("%s: wrong secret in Vault", id)
				case s.VersionMetadata == nil || s.VersionMetadata.Version != 1:
					msg = fmt.Sprintf("%s: version %v, want 1", id, s.VersionMetadata)
				}
				if msg == "" {
					md, err := kv.GetMetadata(context.Background(), path)
					if err != nil || md.CurrentVersion != 1 || len(md.Versions) != 1 {
						msg = fmt.Sprintf("%s: metadata %v %v, want exactly version 1", id, md, err)
					}
				}
				if msg != "" {
					mu.Lock()
					errs = append(errs, msg)
					mu.Unlock()
				}
			}
		})
	}
	for id := range want {
		ids <- id
	}
	close(ids)
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		t.Fatalf("%d devices wrong in Vault, e.g.:\n%s", len(errs), strings.Join(errs[:min(10, len(errs))], "\n"))
	}
}

// vaultDevices counts the devices under iot/devices.
func vaultDevices(t *testing.T, srv *vaulttest.Server) int {
	t.Helper()
	n := 0
	pks, err := srv.Client.Logical().List("iot/metadata/devices")
	if err != nil {
		t.Fatal(err)
	}
	if pks == nil {
		return 0
	}
	for _, pk := range pks.Data["keys"].([]any) {
		dns, err := srv.Client.Logical().List("iot/metadata/devices/" + strings.TrimSuffix(pk.(string), "/"))
		if err != nil {
			t.Fatal(err)
		}
		n += len(dns.Data["keys"].([]any))
	}
	return n
}

// TestImport10k is the acceptance: 10,000 rows with 3% bad rows of
// mixed kinds. Every good row lands in Vault with its secret, every bad row
// is reported by its line, nothing else is written, and a re-run changes
// nothing. No secret is ever printed.
func TestImport10k(t *testing.T) {
	const n = 10_000
	badAt := map[int]bool{}
	for i := 17; len(badAt) < 300; i += 33 {
		badAt[i] = true
	}
	fx := genExport(n, badAt)
	if len(fx.bad) != 300 || len(fx.good) != n-300 {
		t.Fatalf("fixture: %d bad, %d good", len(fx.bad), len(fx.good))
	}
	file := writeTemp(t, "devices.csv", fx.csv)
	srv, vflags := vaultEnv(t)
	ctx := context.Background()

	start := time.Now()
	r := runCLI(t, ctx, nil, append([]string{"import", "-progress", "plain", "-progress-interval", "500ms"}, append(vflags, file)...)...)
	took := time.Since(start)
	t.Logf("imported %d rows (%d devices) in %s (%.0f rows/s); summary:\n%s", n, len(fx.good), took.Round(time.Millisecond),
		float64(n)/took.Seconds(), r.stdout[strings.Index(r.stdout, "summary"):])
	if r.code != exitRowsFailed {
		t.Fatalf("exit %d, want %d (bad rows); stderr:\n%s", r.code, exitRowsFailed, r.stderr)
	}
	noSecrets(t, r, fx.secrets)

	got := badLines(t, r.stdout)
	for line, want := range fx.bad {
		reason, ok := got[line]
		switch {
		case !ok:
			t.Errorf("bad line %d (want %q) not reported", line, want)
		case !strings.Contains(reason, want):
			t.Errorf("line %d: reason %q, want it to contain %q", line, reason, want)
		}
	}
	for line, reason := range got {
		if _, ok := fx.bad[line]; !ok {
			t.Errorf("line %d reported bad (%s) but is good", line, reason)
		}
	}
	if c := counts(t, r.stdout, "vault kv"); c != [4]int{n - 300, 0, 0, 0} {
		t.Errorf("kv counts %v, want %d created", c, n-300)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf(": %d rows: %d valid, 300 bad", n, n-300)) {
		t.Errorf("summary:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "signerctl import: importing: ") || !strings.Contains(r.stderr, fmt.Sprintf("%d/%d devices (100%%)", n-300, n-300)) {
		t.Errorf("no plain progress lines on stderr:\n%s", r.stderr)
	}
	checkVault(t, srv, fx.good)
	if got := vaultDevices(t, srv); got != len(fx.good) {
		t.Errorf("%d devices in Vault, want %d: bad rows must not be written", got, len(fx.good))
	}

	// A re-run changes nothing: every device unchanged, still version 1.
	start = time.Now()
	r = runCLI(t, ctx, nil, append([]string{"import", "-progress", "off"}, append(vflags, file)...)...)
	t.Logf("re-run took %s", time.Since(start).Round(time.Millisecond))
	if r.code != exitRowsFailed {
		t.Fatalf("re-run: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	noSecrets(t, r, fx.secrets)
	if c := counts(t, r.stdout, "vault kv"); c != [4]int{0, n - 300, 0, 0} {
		t.Errorf("re-run kv counts %v, want all %d unchanged", c, n-300)
	}
	if len(badLines(t, r.stdout)) != 300 {
		t.Errorf("re-run: bad rows not reported again")
	}
	checkVault(t, srv, fx.good)
}

// TestImportConflict: a device already in Vault with another secret is
// reported as a conflict by its line and left alone (still version 1), as
// is one whose latest version is deleted; neither secret is printed. The
// dry run predicts the same.
func TestImportConflict(t *testing.T) {
	srv, vflags := vaultEnv(t)
	ctx := context.Background()
	fx := genExport(20, nil)
	file := writeTemp(t, "devices.csv", fx.csv)
	old := newSecret()
	a, b := fx.order[3], fx.order[7]
	if err := srv.PutDevice(ctx, a.ProductKey, a.DeviceName, old); err != nil {
		t.Fatal(err)
	}
	if err := srv.PutDevice(ctx, b.ProductKey, b.DeviceName, fx.good[b]); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.KVv2("iot").Delete(ctx, "devices/"+b.ProductKey+"/"+b.DeviceName); err != nil {
		t.Fatal(err)
	}
	lineOf := func(id secrets.DeviceID) int { // no multi-line rows after row 0
		for i, o := range fx.order {
			if o == id {
				return i + 3
			}
		}
		return 0
	}

	for _, dry := range []bool{true, false} {
		args := []string{"import"}
		if dry {
			args = append(args, "-dry-run")
		}
		r := runCLI(t, ctx, nil, append(args, append(vflags, file)...)...)
		if r.code != exitRowsFailed {
			t.Fatalf("dry=%v: exit %d, want 1; stderr:\n%s", dry, r.code, r.stderr)
		}
		noSecrets(t, r, append(fx.secrets, old))
		wantA := fmt.Sprintf("line %d: %s: vault kv: conflict: Vault holds a different secret for this device", lineOf(a), a)
		wantB := fmt.Sprintf("line %d: %s: vault kv: conflict: Vault has this device with its latest version deleted", lineOf(b), b)
		if !strings.Contains(r.stdout, wantA) || !strings.Contains(r.stdout, wantB) {
			t.Errorf("dry=%v: want\n%s\n%s\nin:\n%s", dry, wantA, wantB, r.stdout)
		}
		if c := counts(t, r.stdout, "vault kv"); c != [4]int{18, 0, 2, 0} {
			t.Errorf("dry=%v: counts %v, want 18 created, 2 conflicts", dry, c)
		}
		if !strings.Contains(r.stdout, "result: 2 conflicts (exit status 1") {
			t.Errorf("dry=%v: result line missing:\n%s", dry, r.stdout)
		}
	}
	s, err := srv.Client.KVv2("iot").Get(ctx, "devices/"+a.ProductKey+"/"+a.DeviceName)
	if err != nil || s.Data["deviceSecret"] != old || s.VersionMetadata.Version != 1 {
		t.Fatalf("conflicting device was overwritten: %v", err)
	}
	md, err := srv.Client.KVv2("iot").GetMetadata(ctx, "devices/"+b.ProductKey+"/"+b.DeviceName)
	if err != nil || md.CurrentVersion != 1 {
		t.Fatalf("deleted device was written again: %v %v", md, err)
	}
	delete(fx.good, a)
	delete(fx.good, b)
	checkVault(t, srv, fx.good)
}

// TestImportDryRun: a dry run reports what would happen and writes
// nothing; -offline checks the file without Vault.
func TestImportDryRun(t *testing.T) {
	srv, vflags := vaultEnv(t)
	ctx := context.Background()
	fx := genExport(200, map[int]bool{50: true, 120: true})
	file := writeTemp(t, "devices.csv", fx.csv)

	r := runCLI(t, ctx, nil, append([]string{"import", "-dry-run", "-transit"}, append(vflags, file)...)...)
	if r.code != exitRowsFailed {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	noSecrets(t, r, fx.secrets)
	if c := counts(t, r.stdout, "vault kv"); c != [4]int{198, 0, 0, 0} {
		t.Errorf("kv counts %v, want 198 to create", c)
	}
	if c := counts(t, r.stdout, "transit"); c != [4]int{198, 0, 0, 0} {
		t.Errorf("transit counts %v, want 198 to create", c)
	}
	if !strings.Contains(r.stdout, "dry run: Vault read, nothing written") {
		t.Errorf("summary does not say dry run:\n%s", r.stdout)
	}
	if n := vaultDevices(t, srv); n != 0 {
		t.Errorf("dry run wrote %d devices", n)
	}
	keys, err := srv.Client.Logical().List("transit/keys")
	if err != nil || keys != nil {
		t.Errorf("dry run created Transit keys: %v %v", keys, err)
	}

	// -offline: no Vault flags at all.
	r = runCLI(t, ctx, nil, "import", "-dry-run", "-offline", file)
	if r.code != exitRowsFailed || len(badLines(t, r.stdout)) != 2 || !strings.Contains(r.stdout, "200 rows: 198 valid, 2 bad") {
		t.Errorf("offline: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	noSecrets(t, r, fx.secrets)
}

// TestImportTransit: -transit imports each secret as a Transit hmac key:
// Vault's HMAC equals crypto/hmac with the secret. A re-run finds the keys
// unchanged; a key holding another secret is a conflict, not replaced.
func TestImportTransit(t *testing.T) {
	srv, vflags := vaultEnv(t)
	ctx := context.Background()
	fx := genExport(6, nil)
	file := writeTemp(t, "devices.csv", fx.csv)
	tr, err := secrets.NewTransit(srv.Client, secrets.TransitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	other := fx.order[5]
	if err := tr.Import(ctx, other, []byte("a-different-secret-0123456789abc")); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, ctx, nil, append([]string{"import", "-transit"}, append(vflags, file)...)...)
	if r.code != exitRowsFailed {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	noSecrets(t, r, fx.secrets)
	if c := counts(t, r.stdout, "transit"); c != [4]int{5, 0, 1, 0} {
		t.Errorf("transit counts %v, want 5 created, 1 conflict", c)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("%s: transit: conflict: the Transit key holds a different secret", other)) {
		t.Errorf("no transit conflict reported:\n%s", r.stdout)
	}
	checkVault(t, srv, fx.good) // KV is written all the same

	content := "clientId" + "x" + "deviceName" + "y" + "productKey" + "z"
	for _, id := range fx.order[:5] {
		got, err := tr.HMACHex(ctx, id, content)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, []byte(fx.good[id]))
		m.Write([]byte(content))
		if want := hex.EncodeToString(m.Sum(nil)); got != want {
			t.Errorf("%s: Transit HMAC %s, want %s", id, got, want)
		}
	}

	r = runCLI(t, ctx, nil, append([]string{"import", "-transit"}, append(vflags, file)...)...)
	if c := counts(t, r.stdout, "transit"); c != [4]int{0, 5, 1, 0} {
		t.Errorf("re-run transit counts %v, want 5 unchanged, 1 conflict", c)
	}
	if c := counts(t, r.stdout, "vault kv"); c != [4]int{0, 6, 0, 0} {
		t.Errorf("re-run kv counts %v, want 6 unchanged", c)
	}
	noSecrets(t, r, fx.secrets)
}

// TestImportHeaderAndBOM: header names in any case and order, padded, with
// a byte-order mark and CRLF line ends, as spreadsheet programs save them.
func TestImportHeaderAndBOM(t *testing.T) {
	srv, vflags := vaultEnv(t)
	ctx := context.Background()
	s1, s2 := newSecret(), newSecret()
	csv := "\uFEFFdeviceNAME, productkey ,Note,DEVICESECRET\r\n" +
		"dev-0001,a1Bom," + "\"x, y\"," + s1 + "\r\n" +
		"dev-0002,a1Bom,," + s2 + "\r\n"
	file := writeTemp(t, "bom.csv", csv)
	// -progress bar: the bar a terminal gets, here into the captured stderr.
	r := runCLI(t, ctx, nil, append([]string{"import", "-progress", "bar"}, append(vflags, file)...)...)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "importing 100%") || !strings.Contains(r.stderr, "(2/2, ") {
		t.Errorf("no progress bar on stderr: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "result: ok") {
		t.Errorf("summary:\n%s", r.stdout)
	}
	noSecrets(t, r, []string{s1, s2})
	checkVault(t, srv, map[secrets.DeviceID]string{{ProductKey: "a1Bom", DeviceName: "dev-0001"}: s1, {ProductKey: "a1Bom", DeviceName: "dev-0002"}: s2})
}

// TestImportFileErrors: files that cannot be imported at all are exit 2,
// before Vault is contacted, and a headerless file's secret on line 1 is
// not echoed.
func TestImportFileErrors(t *testing.T) {
	ctx := context.Background()
	s := newSecret()
	for name, tc := range map[string]struct{ csv, want string }{
		"no secret column": {"ProductKey,DeviceName,Secret\na1P,dev-0001," + s + "\n", "no DeviceSecret column"},
		"headerless":       {"a1P,dev-0001," + s + "\na1P,dev-0002," + s + "\n", "no ProductKey, DeviceName, DeviceSecret column"},
		"empty":            {"", "empty file"},
		"twice":            {"ProductKey,DeviceName,DeviceSecret,devicename\n", "column DeviceName appears twice"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeTemp(t, "f.csv", tc.csv)
			// An unreachable Vault: the file is rejected first.
			r := runCLI(t, ctx, nil, "import", "-vault-addr", "http://127.0.0.1:1", file)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
			noSecrets(t, r, []string{s})
		})
	}
	r := runCLI(t, ctx, nil, "import", "-vault-addr", "http://127.0.0.1:1", filepath.Join(t.TempDir(), "missing.csv"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d, %q", r.code, r.stderr)
	}
}

// TestImportResume: an import interrupted part-way (^C) stops handing out
// rows, lets requests in flight finish, says so, and exits 3; running the
// same command again imports the rest, and the devices done before count as
// unchanged (each still version 1).
func TestImportResume(t *testing.T) {
	srv, vflags := vaultEnv(t)
	fx := genExport(3000, nil)
	file := writeTemp(t, "devices.csv", fx.csv)

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	done := 0
	testHookDone = func() {
		mu.Lock()
		defer mu.Unlock()
		if done++; done == 500 {
			cancel()
		}
	}
	t.Cleanup(func() { testHookDone = nil })
	r := runCLI(t, ctx, nil, append([]string{"import"}, append(vflags, file)...)...)
	testHookDone = nil
	if r.code != exitIncomplete {
		t.Fatalf("interrupted: exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "devices, interrupted: re-run the same command to continue") {
		t.Errorf("interrupted summary:\n%s", r.stdout)
	}
	first := counts(t, r.stdout, "vault kv")
	if first[0] < 500 || first[0] >= 3000 || first[1]+first[2]+first[3] != 0 {
		t.Fatalf("interrupted run: %v", first)
	}
	if n := vaultDevices(t, srv); n != first[0] {
		t.Fatalf("%d devices in Vault, %d reported created", n, first[0])
	}

	r = runCLI(t, context.Background(), nil, append([]string{"import"}, append(vflags, file)...)...)
	if r.code != exitOK {
		t.Fatalf("resumed: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if c := counts(t, r.stdout, "vault kv"); c != [4]int{3000 - first[0], first[0], 0, 0} {
		t.Errorf("resumed: %v, want %d created, %d unchanged", c, 3000-first[0], first[0])
	}
	checkVault(t, srv, fx.good)
	noSecrets(t, r, fx.secrets)
}

// TestImportLeastPrivilege logs in with AppRole under the policy "signerctl
// policy -transit" prints: it suffices for import, re-run and -transit, and
// cannot overwrite (Vault refuses the update itself, and the device counts
// as a conflict). A token with signerd's read-only policy is refused
// before anything is written.
func TestImportLeastPrivilege(t *testing.T) {
	srv, _ := vaultEnv(t)
	ctx := context.Background()
	var pol bytes.Buffer
	if code := runPolicy([]string{"-transit"}, nil, &pol, os.Stderr); code != 0 {
		t.Fatal("policy", code)
	}
	if err := srv.Client.Sys().PutPolicyWithContext(ctx, "signerctl-import", pol.String()); err != nil {
		t.Fatalf("policy does not parse: %v\n%s", err, pol.String())
	}
	roleID := func(name, policy string) []string {
		if _, err := srv.Client.Logical().Write("auth/approle/role/"+name, map[string]any{"token_policies": policy, "token_ttl": "5m"}); err != nil {
			t.Fatal(err)
		}
		rid, err := srv.Client.Logical().Read("auth/approle/role/" + name + "/role-id")
		if err != nil {
			t.Fatal(err)
		}
		sid, err := srv.Client.Logical().Write("auth/approle/role/"+name+"/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"-vault-addr", srv.Addr, "-vault-auth", "approle",
			"-vault-approle-role-id", rid.Data["role_id"].(string),
			"-vault-approle-secret-id-file", writeTemp(t, "sid", sid.Data["secret_id"].(string))}
	}
	fx := genExport(8, nil)
	file := writeTemp(t, "devices.csv", fx.csv)
	old := newSecret()
	a := fx.order[2]
	if err := srv.PutDevice(ctx, a.ProductKey, a.DeviceName, old); err != nil {
		t.Fatal(err)
	}

	ro := runCLI(t, ctx, nil, append(append([]string{"import"}, roleID("ro", "signerd")...), file)...)
	if ro.code != exitUsage || !strings.Contains(ro.stderr, `lacks "create" on iot/data/devices/`) {
		t.Errorf("read-only token: exit %d, stderr %q", ro.code, ro.stderr)
	}
	if n := vaultDevices(t, srv); n != 1 {
		t.Errorf("read-only token: %d devices in Vault", n)
	}

	flags := roleID("importer", "signerctl-import")
	for run := range 2 {
		r := runCLI(t, ctx, nil, append(append([]string{"import", "-transit"}, flags...), file)...)
		if r.code != exitRowsFailed {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, r.code, r.stdout, r.stderr)
		}
		noSecrets(t, r, append(fx.secrets, old))
		kv, tr := counts(t, r.stdout, "vault kv"), counts(t, r.stdout, "transit")
		if run == 0 && (kv != [4]int{7, 0, 1, 0} || tr != [4]int{7, 0, 0, 0}) || run == 1 && (kv != [4]int{0, 7, 1, 0} || tr != [4]int{0, 7, 0, 0}) {
			t.Errorf("run %d: kv %v transit %v\n%s", run, kv, tr, r.stdout)
		}
	}
	// The policy itself forbids overwriting: a plain write (no cas) to an
	// existing device with the importer's token is refused.
	sid := flags[len(flags)-1]
	b, _ := os.ReadFile(sid)
	login, err := srv.Client.Logical().Write("auth/approle/login", map[string]any{"role_id": flags[5], "secret_id": string(b)})
	if err != nil {
		t.Fatal(err)
	}
	imp, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	imp.SetToken(login.Auth.ClientToken)
	_, err = imp.KVv2("iot").Put(ctx, "devices/"+a.ProductKey+"/"+a.DeviceName, map[string]any{"deviceSecret": "x"})
	if httpStatus(err) != 403 {
		t.Errorf("importer token overwriting a device: %v, want 403", err)
	}

	// The dry run works under the same policy, and predicts the same.
	r := runCLI(t, ctx, nil, append(append([]string{"import", "-dry-run", "-transit"}, flags...), file)...)
	if kv, tr := counts(t, r.stdout, "vault kv"), counts(t, r.stdout, "transit"); r.code != exitRowsFailed || kv != [4]int{0, 7, 1, 0} || tr != [4]int{0, 7, 0, 0} {
		t.Errorf("dry run: exit %d, kv %v, transit %v\n%s%s", r.code, kv, tr, r.stdout, r.stderr)
	}
	s, err := srv.Client.KVv2("iot").Get(ctx, "devices/"+a.ProductKey+"/"+a.DeviceName)
	if err != nil || s.Data["deviceSecret"] != old || s.VersionMetadata.Version != 1 {
		t.Fatalf("conflicting device overwritten: %v", err)
	}
}

// TestUsage: flags, environment and exit status 2.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	file := writeTemp(t, "f.csv", "ProductKey,DeviceName,DeviceSecret\n")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"import"}, nil, "want exactly one FILE.csv argument, got 0"},
		{[]string{"import", file, "-dry-run"}, nil, "flag -dry-run after FILE.csv"},
		{[]string{"import", "-concurrency", "0", file}, nil, "-concurrency 0: must be between 1 and 256"},
		{[]string{"import", file}, map[string]string{"SIGNERCTL_CONCURRENCY": "1000"}, "-concurrency 1000"},
		{[]string{"import", file}, map[string]string{"SIGNERCTL_VAULT_AUTH": "ldap"}, `-vault-auth "ldap"`},
		// The environment is checked as signerd's is: a misspelt
		// variable, or a bad value, is an error that says what was meant.
		{[]string{"import", file}, map[string]string{"SIGNERCTL_CONCURENCY": "4"}, "SIGNERCTL_CONCURENCY: not a signerctl setting; did you mean SIGNERCTL_CONCURRENCY?"},
		{[]string{"import", file}, map[string]string{"SIGNERCTL_VAULT_TIMEOUT": "soon"}, `SIGNERCTL_VAULT_TIMEOUT: "soon" is not a duration`},
		{[]string{"policy"}, map[string]string{"SIGNERCTL_VAULT_KV_MUONT": "x"}, "did you mean SIGNERCTL_VAULT_KV_MOUNT?"},
		{[]string{"import", "-concurency", "4", file}, nil, "-concurency: no such flag; did you mean -concurrency?"},
		{[]string{"import", "-vault-auth", "approle", file}, nil, "-vault-approle-role-id: required"},
		{[]string{"import", "-offline", file}, nil, "-offline: only with -dry-run"},
		{[]string{"import", "-progress", "fancy", file}, nil, `-progress "fancy"`},
		{[]string{"export"}, nil, `unknown command "export"`},
		{nil, nil, "Usage:"},
	} {
		r := runCLI(t, ctx, tc.env, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q %v: exit %d, stderr %q; want 2 and %q", tc.args, tc.env, r.code, r.stderr, tc.want)
		}
	}
	// The environment fills what the command line leaves out; the command line wins.
	c, err := parseImport([]string{"-concurrency", "4", file},
		map[string]string{"SIGNERCTL_CONCURRENCY": "8", "SIGNERCTL_VAULT_KV_MOUNT": "fleet", "SIGNERCTL_DRY_RUN": "true"}, &bytes.Buffer{})
	if err != nil || c.concurrency != 4 || c.vault.KVMount != "fleet" || !c.dryRun {
		t.Errorf("parseImport with env: %+v %v", c, err)
	}
	// One environment serves both commands: import's settings are not
	// unknown to policy.
	if r := runCLI(t, ctx, map[string]string{"SIGNERCTL_CONCURRENCY": "8", "SIGNERCTL_VAULT_ADDR": "http://x"}, "policy"); r.code != exitOK {
		t.Errorf("policy with import's settings in the environment: exit %d, %s", r.code, r.stderr)
	}
	if r := runCLI(t, ctx, nil, "import", "-h"); r.code != exitOK || !strings.Contains(r.stderr, "-vault-kv-path") {
		t.Errorf("-h: exit %d", r.code)
	}
}

func TestPolicy(t *testing.T) {
	var out bytes.Buffer
	code := runPolicy([]string{"-vault-kv-mount", "fleet/", "-vault-kv-path", "x/{productKey}/y/{deviceName}"}, nil, &out, &out)
	if code != 0 || !strings.Contains(out.String(), `path "fleet/data/x/+/y/+"`) || strings.Contains(out.String(), "transit") {
		t.Errorf("policy: %d\n%s", code, out.String())
	}
}

// TestImportVaultErrors: a wrong mount is one clear error before anything
// is written (exit 2); per-device Vault errors are reported by line, and
// -max-errors stops handing out rows (exit 3) while 0 goes on (exit 1).
func TestImportVaultErrors(t *testing.T) {
	srv, vflags := vaultEnv(t)
	ctx := context.Background()
	fx := genExport(200, nil)
	file := writeTemp(t, "devices.csv", fx.csv)
	for _, tc := range []struct{ args []string }{
		{[]string{"-vault-kv-mount", "nosuch"}},
		{[]string{"-vault-kv-mount", "iot/devices", "-vault-kv-path", "{productKey}/{deviceName}"}},
		{[]string{"-vault-kv-mount", "transit"}},
		{[]string{"-transit", "-vault-transit-mount", "iot"}},
	} {
		r := runCLI(t, ctx, nil, append(append(append([]string{"import"}, vflags...), tc.args...), file)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "mount") {
			t.Errorf("%v: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
	if n := vaultDevices(t, srv); n != 0 {
		t.Fatalf("%d devices written", n)
	}

	// A token that may write one product of the five: the other four fail.
	if err := srv.Client.Sys().PutPolicy("one-product", `path "iot/data/devices/a1Prod0/*" { capabilities = ["create", "read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Client.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"one-product"}})
	if err != nil {
		t.Fatal(err)
	}
	tokFile := writeTemp(t, "tok", tok.Auth.ClientToken)
	args := []string{"import", "-vault-addr", srv.Addr, "-vault-token-file", tokFile, "-concurrency", "2"}

	r := runCLI(t, ctx, nil, append(args, "-max-errors", "10", file)...)
	if r.code != exitIncomplete || !strings.Contains(r.stdout, "devices, stopped after 10 errors (-max-errors): re-run the same command to continue") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if c := counts(t, r.stdout, "vault kv"); c[3] < 10 || c[3] > 12 {
		t.Errorf("counts %v: want 10–12 errors (10, and what was in flight)", c)
	}
	noSecrets(t, r, fx.secrets)

	r = runCLI(t, ctx, nil, append(args, "-max-errors", "0", file)...)
	if r.code != exitRowsFailed {
		t.Fatalf("-max-errors 0: exit %d\n%s", r.code, r.stderr)
	}
	c := counts(t, r.stdout, "vault kv")
	if c[0]+c[1] != 40 || c[3] != 160 {
		t.Errorf("counts %v, want 40 created or unchanged, 160 errors", c)
	}
	// e.g. "line 3: a1Prod1/dev-00001: vault kv: error: read: ... permission denied"
	re := regexp.MustCompile(`(?m)^line (\d+): a1Prod[1-4]/\S+: vault kv: error: write: HTTP 403: permission denied \(the token may not create secrets here\)$`)
	if n := len(re.FindAllString(r.stdout, -1)); n != 160 {
		t.Errorf("%d error lines, want 160:\n%s", n, r.stdout[:min(len(r.stdout), 2000)])
	}
	noSecrets(t, r, fx.secrets)
}
