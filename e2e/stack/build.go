// Package stack runs Notify's real binaries for end-to-end tests: it builds
// them once per test process and starts write-api and read-api processes
// on free loopback ports against a redis-server the test owns.
package stack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds bin/write-api and bin/read-api from this checkout into a
// temporary directory, once per test process, and returns it.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		binDir, buildErr = os.MkdirTemp("", "notify-e2e-bin-")
		if buildErr != nil {
			return
		}
		for _, svc := range []string{"write-api", "read-api"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, svc), "./"+svc)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("stack: build %s: %w\n%s", svc, err, out)
				return
			}
		}
	})
	return binDir, buildErr
}
