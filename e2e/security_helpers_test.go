package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"notify/e2e/stack"
	"notify/pkg/sseclient"
)

// rawStream keeps every byte of a stream response so tests can parse
// exactly what went over the wire.
type rawStream struct {
	Resp   *http.Response
	cancel context.CancelFunc
	mu     sync.Mutex
	buf    bytes.Buffer
	done   chan struct{}
}

func openRaw(t *testing.T, url string, header http.Header) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &rawStream{Resp: resp, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-s.done })
	return s
}

func (s *rawStream) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// events waits until n events (comments excluded) have arrived, then a
// little longer so that any extra, injected event would show, and returns
// all of them with the raw bytes.
func (s *rawStream) events(t *testing.T, n int, within time.Duration) ([]sseclient.Event, []byte) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		raw := s.Bytes()
		evs, err := sseclient.ParseBytes(raw, nil)
		if err != nil {
			t.Fatalf("parse stream: %v", err)
		}
		if len(evs) >= n {
			time.Sleep(200 * time.Millisecond)
			raw = s.Bytes()
			evs, _ = sseclient.ParseBytes(raw, nil)
			return evs, raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events within %s; stream so far:\n%q", len(evs), n, within, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wireLine is every line shape Notify may put on a stream.
var wireLine = regexp.MustCompile(`\A(?:retry: [0-9]+|id: [A-Za-z0-9_-]+|event: [A-Za-z0-9][A-Za-z0-9._:-]*|data: [^\r\n]*|:[^\r\n]*|)\z`)

// checkWire fails on any line a client could have injected: each line must
// have one of the shapes above, and CR never appears.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if bytes.IndexByte(raw, '\r') >= 0 {
		t.Fatalf("stream holds a CR: %q", raw)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if !wireLine.Match(sc.Bytes()) {
			t.Fatalf("unexpected line on the wire: %q\nstream: %q", sc.Text(), raw)
		}
	}
}

func rsaKeyE2E(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t *testing.T, k *rsa.PrivateKey, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if kid != "" {
		b.Headers = map[string]string{"kid": kid}
	}
	return pem.EncodeToMemory(b)
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mint signs claims; kid is set when not empty.
func mint(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawRequest writes req on a fresh TCP connection and returns what the
// server answered before closing or within d.
func rawRequest(t *testing.T, p *stack.Proc, req string, d time.Duration) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(conn)
	return string(out)
}

func mustDER(t *testing.T, k *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
