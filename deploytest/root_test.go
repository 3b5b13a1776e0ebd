package deploytest

import (
	"os"
	"path/filepath"
	"testing"
)

// repoRoot is the repository root: the parent of this module, holding go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root not found above the deploytest module: %v", err)
	}
	return root
}
