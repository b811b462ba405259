package secrets_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/secrets"
)

// These tests log signerd in with Vault's Kubernetes auth method, through
// vault/api's helper, against the real Vault dev server. Vault verifies a
// service-account JWT by asking the kube-apiserver's TokenReview API; there
// is no cluster here, so kubeAPIServer below plays the apiserver's part (and
// only that part: Vault itself is never imitated).

const (
	// k8sIssuer is the issuer of the emulated cluster's service-account
	// tokens; k8sAPIAudience is the apiserver's own audience, the default
	// target of a TokenReview without spec.audiences.
	k8sIssuer      = "https://kubernetes.default.svc.cluster.local"
	k8sAPIAudience = "https://kubernetes.default.svc.cluster.local"
	// vaultAudience is the audience of the token projected into signerd's
	// pod for Vault, and the audience Vault's role requires.
	vaultAudience = "vault"

	k8sReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"
)

// kubeAPIServer emulates the one kube-apiserver endpoint Vault's Kubernetes
// auth method calls: POST /apis/authentication.k8s.io/v1/tokenreviews. Like
// the apiserver it authenticates the caller's bearer token (a service-account
// token of its own), authorizes it (only service accounts bound to
// system:auth-delegator may create TokenReviews), decodes the TokenReview,
// verifies the reviewed token's signature, issuer, lifetime, audiences and
// service account (which must still exist with the UID in the token), and
// answers 201 Created with the TokenReview and its status. Errors are
// metav1.Status objects with the apiserver's codes.
type kubeAPIServer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string

	mu         sync.Mutex
	accounts   map[string]string // "namespace/name" -> uid
	delegators map[string]bool   // usernames allowed to create TokenReviews
	requests   []apiRequest
}

// apiRequest records one request the emulated apiserver received.
type apiRequest struct {
	Method, Path string
	Code         int
	Caller       string // authenticated username of the bearer, "" if none
	// Body of a TokenReview, when the request got that far.
	APIVersion, Kind string
	Token            string
	Audiences        []string
	// Outcome of the review.
	Authenticated bool
	Username      string
	Error         string
}

// saClaims are the claims of a projected (bound) service-account token, as
// the kubelet mounts into a pod since Kubernetes 1.21.
type saClaims struct {
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub"`
	Audience   []string `json:"aud"`
	Expiry     int64    `json:"exp"`
	IssuedAt   int64    `json:"iat"`
	NotBefore  int64    `json:"nbf"`
	ID         string   `json:"jti"`
	Kubernetes struct {
		Namespace      string  `json:"namespace"`
		Node           *objRef `json:"node,omitempty"`
		Pod            *objRef `json:"pod,omitempty"`
		ServiceAccount objRef  `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

type objRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// tokenReview is authentication.k8s.io/v1 TokenReview.
type tokenReview struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	Spec       struct {
		Token     string   `json:"token,omitempty"`
		Audiences []string `json:"audiences,omitempty"`
	} `json:"spec"`
	Status struct {
		Authenticated bool `json:"authenticated,omitempty"`
		User          struct {
			Username string              `json:"username,omitempty"`
			UID      string              `json:"uid,omitempty"`
			Groups   []string            `json:"groups,omitempty"`
			Extra    map[string][]string `json:"extra,omitempty"`
		} `json:"user"`
		Audiences []string `json:"audiences,omitempty"`
		Error     string   `json:"error,omitempty"`
	} `json:"status"`
}

func newKubeAPIServer(t *testing.T) *kubeAPIServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeAPIServer{
		key:        key,
		kid:        randomHex(t, 8),
		accounts:   map[string]string{},
		delegators: map[string]bool{},
	}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serveHTTP)) // listens on 127.0.0.1
	t.Cleanup(k.srv.Close)
	return k
}

// URL is the apiserver's address, Vault's kubernetes_host.
func (k *kubeAPIServer) URL() string { return k.srv.URL }

// addServiceAccount creates a service account and returns its UID.
func (k *kubeAPIServer) addServiceAccount(t *testing.T, namespace, name string) string {
	t.Helper()
	uid := newUID(t)
	k.mu.Lock()
	k.accounts[namespace+"/"+name] = uid
	k.mu.Unlock()
	return uid
}

// recreateServiceAccount deletes a service account and creates it again
// under a new UID, until the end of the test.
func (k *kubeAPIServer) recreateServiceAccount(t *testing.T, namespace, name string) {
	t.Helper()
	k.mu.Lock()
	old := k.accounts[namespace+"/"+name]
	k.accounts[namespace+"/"+name] = newUID(t)
	k.mu.Unlock()
	t.Cleanup(func() {
		k.mu.Lock()
		k.accounts[namespace+"/"+name] = old
		k.mu.Unlock()
	})
}

// bindAuthDelegator grants a service account system:auth-delegator, which
// allows creating TokenReviews.
func (k *kubeAPIServer) bindAuthDelegator(namespace, name string) {
	k.mu.Lock()
	k.delegators[saUsername(namespace, name)] = true
	k.mu.Unlock()
}

// claims builds the claims of a fresh projected token of an existing
// service account, mounted in a pod.
func (k *kubeAPIServer) claims(t *testing.T, namespace, name string, aud ...string) saClaims {
	t.Helper()
	k.mu.Lock()
	uid, ok := k.accounts[namespace+"/"+name]
	k.mu.Unlock()
	if !ok {
		t.Fatalf("no service account %s/%s", namespace, name)
	}
	now := time.Now()
	c := saClaims{
		Issuer:    k8sIssuer,
		Subject:   saUsername(namespace, name),
		Audience:  aud,
		Expiry:    now.Add(time.Hour).Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        newUID(t),
	}
	c.Kubernetes.Namespace = namespace
	c.Kubernetes.Node = &objRef{Name: "node-1", UID: newUID(t)}
	c.Kubernetes.Pod = &objRef{Name: name + "-7d9f8b6c5d-x2x9q", UID: newUID(t)}
	c.Kubernetes.ServiceAccount = objRef{Name: name, UID: uid}
	return c
}

// issue returns a projected service-account token signed by the cluster.
func (k *kubeAPIServer) issue(t *testing.T, namespace, name string, aud ...string) string {
	t.Helper()
	return signJWT(t, k.key, k.kid, k.claims(t, namespace, name, aud...))
}

// Requests returns what the apiserver has received so far.
func (k *kubeAPIServer) Requests() []apiRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.requests)
}

func (k *kubeAPIServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := apiRequest{Method: r.Method, Path: r.URL.Path}
	defer func() {
		k.mu.Lock()
		k.requests = append(k.requests, rec)
		k.mu.Unlock()
	}()
	fail := func(code int, reason, msg string) {
		rec.Code = code
		writeStatus(w, code, reason, msg)
	}

	// Authentication comes first, for every path.
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || bearer == "" {
		fail(http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	caller, _, err := k.authenticate(bearer, nil)
	if err != nil {
		fail(http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	rec.Caller = caller.Username

	if r.URL.Path != k8sReviewPath {
		fail(http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("the server does not allow this method on the requested resource (%s tokenreviews.authentication.k8s.io)", r.Method))
		return
	}
	k.mu.Lock()
	allowed := k.delegators[caller.Username]
	k.mu.Unlock()
	if !allowed {
		fail(http.StatusForbidden, "Forbidden", fmt.Sprintf(`tokenreviews.authentication.k8s.io is forbidden: User %q cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope`, caller.Username))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", r.Header.Get("Content-Type")))
		return
	}

	var tr tokenReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&tr); err != nil {
		fail(http.StatusBadRequest, "BadRequest", "error decoding TokenReview: "+err.Error())
		return
	}
	rec.APIVersion, rec.Kind = tr.APIVersion, tr.Kind
	rec.Token, rec.Audiences = tr.Spec.Token, tr.Spec.Audiences
	// An object without apiVersion and kind takes the endpoint's (as the
	// apiserver's decoder defaults them); any other type is refused.
	if (tr.APIVersion != "" && tr.APIVersion != "authentication.k8s.io/v1") || (tr.Kind != "" && tr.Kind != "TokenReview") {
		fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("the API version/kind in the data (%s/%s) does not match the expected authentication.k8s.io/v1/TokenReview", tr.APIVersion, tr.Kind))
		return
	}
	if tr.Spec.Token == "" {
		fail(http.StatusBadRequest, "BadRequest", "token is required for TokenReview in authentication")
		return
	}

	// The apiserver ignores a submitted status and fills in its own.
	out := tokenReview{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview", Metadata: json.RawMessage(`{"creationTimestamp":null}`)}
	out.Spec = tr.Spec
	user, auds, err := k.authenticate(tr.Spec.Token, tr.Spec.Audiences)
	if err != nil {
		out.Status.Error = "[invalid bearer token, " + err.Error() + "]"
		rec.Error = out.Status.Error
	} else {
		out.Status.Authenticated = true
		out.Status.User.Username = user.Username
		out.Status.User.UID = user.UID
		out.Status.User.Groups = user.Groups
		out.Status.User.Extra = user.Extra
		out.Status.Audiences = auds
		rec.Authenticated, rec.Username = true, user.Username
	}
	rec.Code = http.StatusCreated
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out)
}

type k8sUser struct {
	Username, UID string
	Groups        []string
	Extra         map[string][]string
}

// authenticate validates a service-account token as the apiserver does and
// returns its user and the audiences it is valid for among want (the
// apiserver's own audience when want is empty).
func (k *kubeAPIServer) authenticate(token string, want []string) (k8sUser, []string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return k8sUser{}, nil, errors.New("token is not a JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil || hdr.Alg != "RS256" {
		return k8sUser{}, nil, errors.New("unsupported or malformed JWS header")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return k8sUser{}, nil, errors.New("malformed signature")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return k8sUser{}, nil, errors.New("square/go-jose: error in cryptographic primitive")
	}
	var c saClaims
	if err := decodeSegment(parts[1], &c); err != nil {
		return k8sUser{}, nil, errors.New("malformed claims")
	}
	if c.Issuer != k8sIssuer {
		return k8sUser{}, nil, errors.New("token issuer is not trusted")
	}
	now := time.Now().Unix()
	if now < c.NotBefore-60 || now > c.Expiry+60 {
		return k8sUser{}, nil, errors.New("service account token has expired")
	}
	if len(want) == 0 {
		want = []string{k8sAPIAudience}
	}
	var auds []string
	for _, a := range want {
		if slices.Contains(c.Audience, a) {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return k8sUser{}, nil, fmt.Errorf("token audiences %q is invalid for the target audiences %q", c.Audience, want)
	}
	ns, sa := c.Kubernetes.Namespace, c.Kubernetes.ServiceAccount
	k.mu.Lock()
	uid, ok := k.accounts[ns+"/"+sa.Name]
	k.mu.Unlock()
	if !ok {
		return k8sUser{}, nil, fmt.Errorf("serviceaccounts %q not found", sa.Name)
	}
	if uid != sa.UID {
		return k8sUser{}, nil, fmt.Errorf("service account UID (%s) does not match claim (%s)", uid, sa.UID)
	}
	if c.Subject != saUsername(ns, sa.Name) {
		return k8sUser{}, nil, errors.New("token subject does not match its service account")
	}
	u := k8sUser{
		Username: saUsername(ns, sa.Name),
		UID:      uid,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		Extra:    map[string][]string{"authentication.kubernetes.io/credential-id": {"JTI=" + c.ID}},
	}
	if c.Kubernetes.Pod != nil {
		u.Extra["authentication.kubernetes.io/pod-name"] = []string{c.Kubernetes.Pod.Name}
		u.Extra["authentication.kubernetes.io/pod-uid"] = []string{c.Kubernetes.Pod.UID}
	}
	return u, auds, nil
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

func saUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// signJWT returns an RS256 JWS of claims.
func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims any) string {
	t.Helper()
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func newUID(t *testing.T) string {
	t.Helper()
	h := randomHex(t, 16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// k8sFixture is an emulated cluster with signerd's service account, an
// unrelated one, and Vault's token reviewer, and Vault's Kubernetes auth
// method at the default mount "kubernetes" pointed at it.
type k8sFixture struct {
	api         *kubeAPIServer
	reviewerJWT string // Vault's own service account (vault/vault), an auth delegator
	signerdJWT  string // signerd's token (iot/signerd), audience "vault"
	signerdUID  string
}

func newK8sFixture(t *testing.T, ttl, maxTTL time.Duration) *k8sFixture {
	shared := sharedVault(t)
	t.Helper()
	ctx := context.Background()
	api := newKubeAPIServer(t)
	api.addServiceAccount(t, "vault", "vault")
	api.bindAuthDelegator("vault", "vault")
	signerdUID := api.addServiceAccount(t, "iot", "signerd")
	api.addServiceAccount(t, "iot", "other")
	f := &k8sFixture{
		api:         api,
		reviewerJWT: api.issue(t, "vault", "vault", k8sAPIAudience),
		signerdJWT:  api.issue(t, "iot", "signerd", vaultAudience),
		signerdUID:  signerdUID,
	}

	err := shared.EnableKubernetesAuth(ctx, "kubernetes", api.URL(), f.reviewerJWT, vaulttest.KubernetesRole{
		Name:            "signerd",
		ServiceAccounts: []string{"signerd"},
		Namespaces:      []string{"iot"},
		Audience:        vaultAudience,
		TTL:             ttl,
		MaxTTL:          maxTTL,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := shared.Client.Sys().DisableAuthWithContext(context.Background(), "kubernetes"); err != nil {
			t.Errorf("disable kubernetes auth: %v", err)
		}
	})
	if n := len(api.Requests()); n != 0 {
		t.Fatalf("configuring Vault sent %d requests to the apiserver, want none", n)
	}
	return f
}

// tokenFile writes a service-account token the way the kubelet mounts it.
func tokenFile(t *testing.T, jwt string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func k8sVault(ctx context.Context, t *testing.T, jwt string, onRenew func(bool), logs *logBuffer) (*secrets.Vault, error) {
	shared := sharedVault(t)
	t.Helper()
	auth, err := kubernetes.NewKubernetesAuth("signerd", kubernetes.WithServiceAccountTokenPath(tokenFile(t, jwt)))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", shared.RootToken) // must be ignored: the auth method wins
	if logs == nil {
		logs = &logBuffer{}
	}
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address: shared.Addr,
		Auth:    auth,
		OnRenew: onRenew,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err == nil {
		t.Cleanup(v.Close)
	}
	return v, err
}

// checkReview asserts that req is one authenticated TokenReview of want by
// Vault's reviewer, for audience "vault".
func (f *k8sFixture) checkReview(t *testing.T, i int, req apiRequest, want string) {
	t.Helper()
	switch {
	case req.Method != http.MethodPost || req.Path != k8sReviewPath || req.Code != http.StatusCreated:
		t.Errorf("apiserver request %d: %s %s -> %d, want POST %s -> 201", i, req.Method, req.Path, req.Code, k8sReviewPath)
	case req.Caller != saUsername("vault", "vault"):
		t.Errorf("apiserver request %d: caller %q, want Vault's reviewer", i, req.Caller)
	case req.Token != want:
		t.Errorf("apiserver request %d reviewed another token than signerd's", i)
	case !slices.Equal(req.Audiences, []string{vaultAudience}):
		t.Errorf("apiserver request %d: spec.audiences %q, want the role's [%q]", i, req.Audiences, vaultAudience)
	case !req.Authenticated || req.Username != saUsername("iot", "signerd"):
		t.Errorf("apiserver request %d: authenticated=%v as %q (error %q), want signerd", i, req.Authenticated, req.Username, req.Error)
	}
}

func TestVaultKubernetesLogin(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	f := newK8sFixture(t, time.Hour, 2*time.Hour)
	if err := shared.PutDevice(ctx, "a1K8s", "dev-k8s", "k8s-secret"); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	v, err := k8sVault(ctx, t, f.signerdJWT, nil, logs)
	if err != nil {
		t.Fatalf("NewVault with Kubernetes auth: %v", err)
	}
	tok := v.Client().Token()
	if tok == "" || tok == shared.RootToken {
		t.Fatal("Kubernetes login did not replace the root token from VAULT_TOKEN")
	}

	s, err := v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1K8s", DeviceName: "dev-k8s"})
	if err != nil {
		t.Fatalf("Lookup with the Kubernetes-auth token: %v", err)
	}
	if string(s.Bytes()) != "k8s-secret" {
		t.Error("Lookup returned the wrong secret")
	}
	if err := v.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}

	// The token is the role's: signerd's policy, the service account's
	// identity, the role's TTL.
	self, err := v.Client().Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatalf("token lookup-self: %v", err)
	}
	policies, _ := self.TokenPolicies()
	if !slices.Contains(policies, "signerd") || slices.Contains(policies, "root") {
		t.Errorf("token policies = %q, want signerd's and not root", policies)
	}
	meta, _ := self.TokenMetadata()
	if meta["service_account_name"] != "signerd" || meta["service_account_namespace"] != "iot" ||
		meta["service_account_uid"] != f.signerdUID || meta["role"] != "signerd" {
		t.Errorf("token metadata = %v, want service account iot/signerd (uid %s), role signerd", meta, f.signerdUID)
	}
	if ttl, _ := self.TokenTTL(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("token TTL = %s, want ≤ the role's 1h", ttl)
	}
	if path, _ := self.Data["path"].(string); path != "auth/kubernetes/login" {
		t.Errorf("token created by %q, want auth/kubernetes/login", path)
	}

	// Exactly one TokenReview: the login. Neither the lookups nor Ready
	// reach the apiserver.
	reqs := f.api.Requests()
	if len(reqs) != 1 {
		t.Fatalf("apiserver got %d requests, want exactly 1 TokenReview", len(reqs))
	}
	f.checkReview(t, 0, reqs[0], f.signerdJWT)
	t.Logf("Vault's TokenReview body: apiVersion=%q kind=%q", reqs[0].APIVersion, reqs[0].Kind)

	if strings.Contains(logs.String(), f.signerdJWT) || strings.Contains(logs.String(), tok) {
		t.Error("logs contain the service-account JWT or the Vault token")
	}
}

func TestVaultKubernetesLoginRejected(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	f := newK8sFixture(t, time.Hour, 2*time.Hour)

	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed, for signerd's service account and the right audience,
	// but not signed by the cluster: only the TokenReview can tell.
	forged := signJWT(t, forger, f.api.kid, f.api.claims(t, "iot", "signerd", vaultAudience))
	// Signed by the cluster, but for a service account the role does not
	// bind: Vault refuses it from its claims alone.
	otherSA := f.api.issue(t, "iot", "other", vaultAudience)
	// Signed by the cluster for signerd, but for the apiserver's audience
	// rather than Vault's: Vault refuses it from its claims alone.
	wrongAud := f.api.issue(t, "iot", "signerd", k8sAPIAudience)
	// A valid token whose service account was deleted and recreated (new
	// UID) after it was issued: only the TokenReview can tell.
	recreated := f.api.issue(t, "iot", "signerd", vaultAudience)
	// A valid apiserver credential of an account that may not create
	// TokenReviews.
	unprivileged := f.api.issue(t, "iot", "other", k8sAPIAudience)

	reconfigure := func(t *testing.T, host, reviewer string) {
		t.Helper()
		_, err := shared.Client.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
			"kubernetes_host": host, "token_reviewer_jwt": reviewer, "disable_local_ca_jwt": true,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, err := shared.Client.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
				"kubernetes_host": f.api.URL(), "token_reviewer_jwt": f.reviewerJWT, "disable_local_ca_jwt": true,
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name     string
		jwt      string
		setup    func(t *testing.T)
		wantText string
		// What the apiserver must have seen: the HTTP codes of its answers
		// and, for answered reviews, the error in the TokenReview status.
		wantCodes []int
		wantError string
	}{
		{
			name: "token not signed by the cluster", jwt: forged,
			wantText: "permission denied", wantCodes: []int{201}, wantError: "invalid bearer token",
		},
		{
			name: "service account recreated", jwt: recreated,
			setup:    func(t *testing.T) { f.api.recreateServiceAccount(t, "iot", "signerd") },
			wantText: "permission denied", wantCodes: []int{201}, wantError: "does not match claim",
		},
		{
			name: "service account not bound to the role", jwt: otherSA,
			wantText: "service account name not authorized", wantCodes: nil,
		},
		{
			name: "audience not the role's", jwt: wrongAud,
			wantText: "invalid audience (aud) claim", wantCodes: nil,
		},
		{
			name: "not a JWT", jwt: "not-a-jwt-" + randomHex(t, 16),
			// Vault maps a token that does not even parse to "permission
			// denied", like a bad signature.
			wantText: "permission denied", wantCodes: nil,
		},
		{
			name: "reviewer JWT not accepted by the apiserver", jwt: f.signerdJWT,
			setup:    func(t *testing.T) { reconfigure(t, f.api.URL(), forged) },
			wantText: "permission denied", wantCodes: []int{401},
		},
		{
			name: "reviewer without system:auth-delegator", jwt: f.signerdJWT,
			setup:    func(t *testing.T) { reconfigure(t, f.api.URL(), unprivileged) },
			wantText: "permission denied", wantCodes: []int{403},
		},
		{
			name: "no reviewer JWT and a login JWT not meant for the apiserver", jwt: f.signerdJWT,
			// Without token_reviewer_jwt, Vault sends the login JWT itself
			// as the bearer; its audience is Vault, not the apiserver.
			setup:    func(t *testing.T) { reconfigure(t, f.api.URL(), "") },
			wantText: "permission denied", wantCodes: []int{401},
		},
		{
			// Vault answers 403 here too, not a 5xx: signerd cannot tell
			// an apiserver outage from a refused login.
			name: "apiserver unreachable", jwt: f.signerdJWT,
			setup:    func(t *testing.T) { reconfigure(t, closed.URL, f.reviewerJWT) },
			wantText: "permission denied", wantCodes: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			before := len(f.api.Requests())
			logs := &logBuffer{}
			start := time.Now()
			_, err := k8sVault(ctx, t, tt.jwt, nil, logs)
			if err == nil {
				t.Fatal("NewVault succeeded, want a login error")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("NewVault took %s to fail", d)
			}
			msg := err.Error()
			t.Logf("NewVault: %s", msg)
			if !strings.Contains(msg, "vault login at "+shared.Addr) || !strings.Contains(msg, tt.wantText) {
				t.Errorf("error %q does not name the login or %q", msg, tt.wantText)
			}
			if !errors.Is(err, secrets.ErrPermission) {
				t.Errorf("error %q is not ErrPermission", msg)
			}
			for _, secret := range []string{tt.jwt, f.reviewerJWT, f.signerdJWT, shared.RootToken} {
				if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("error or logs contain a JWT or token: %q", msg)
				}
			}

			reqs := f.api.Requests()[before:]
			var codes []int
			for _, r := range reqs {
				codes = append(codes, r.Code)
				if r.Authenticated {
					t.Errorf("apiserver authenticated %q for a login that must fail", r.Username)
				}
				if r.Code == http.StatusCreated && (r.Token != tt.jwt || !strings.Contains(r.Error, tt.wantError)) {
					t.Errorf("TokenReview error %q, want one with %q for the login JWT", r.Error, tt.wantError)
				}
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Errorf("apiserver answered %v, want %v", codes, tt.wantCodes)
			}
		})
	}
}

func TestVaultKubernetesLoginRenewal(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	if err := shared.PutDevice(ctx, "a1K8sRenew", "dev-k8s-renew", "k8s-renew-secret"); err != nil {
		t.Fatal(err)
	}
	f := newK8sFixture(t, 2*time.Second, 4*time.Second)

	var renewals, relogins atomic.Int64
	logs := &logBuffer{}
	// TTL 2 s, max TTL 4 s: within 9 s the token is renewed and replaced by
	// a fresh login at least twice.
	v, err := k8sVault(ctx, t, f.signerdJWT, func(relogin bool) {
		if relogin {
			relogins.Add(1)
		} else {
			renewals.Add(1)
		}
	}, logs)
	if err != nil {
		t.Fatalf("NewVault with Kubernetes auth: %v", err)
	}
	firstToken := v.Client().Token()

	deadline := time.Now().Add(9 * time.Second)
	for time.Now().Before(deadline) {
		s, err := v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1K8sRenew", DeviceName: "dev-k8s-renew"})
		if err != nil {
			t.Fatalf("Lookup %s before the end: %v", time.Until(deadline).Round(time.Millisecond), err)
		}
		if string(s.Bytes()) != "k8s-renew-secret" {
			t.Fatal("wrong secret")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := v.Ready(ctx); err != nil {
		t.Errorf("Ready after re-logins: %v", err)
	}
	lastToken := v.Client().Token()
	v.Close() // stop the token loop, so the counts below are final

	if renewals.Load() < 2 || relogins.Load() < 2 {
		t.Errorf("renewals = %d, re-logins = %d over 9 s of 2 s/4 s tokens; want ≥2 each", renewals.Load(), relogins.Load())
	}
	if lastToken == firstToken {
		t.Error("token never replaced although its max TTL passed")
	}
	// Every login, and only a login, is a TokenReview: renewing a
	// Kubernetes-auth token does not ask the apiserver again.
	reqs := f.api.Requests()
	if want := 1 + int(relogins.Load()); len(reqs) != want {
		t.Errorf("apiserver got %d requests for 1 login + %d re-logins (%d renewals), want %d", len(reqs), relogins.Load(), renewals.Load(), want)
	}
	for i, r := range reqs {
		f.checkReview(t, i, r, f.signerdJWT)
	}
	for _, secret := range []string{f.signerdJWT, f.reviewerJWT, firstToken, lastToken, "k8s-renew-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Error("logs contain a JWT, token or secret")
		}
	}
}
