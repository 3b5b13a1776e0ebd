package deploytest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDockerfileUserIsNumeric: each service image runs as a numeric,
// non-root user, the one its pods declare. Kubernetes' runAsNonRoot can
// verify only a numeric USER: with a name (nonroot:nonroot) and no
// runAsUser in the pod, the kubelet refuses to start the container.
// Not parallel: it builds an overlay, and kustomize's schema loading
// races with itself.
func TestDockerfileUserIsNumeric(t *testing.T) {
	users := dockerfileUsers(t)
	o := buildOverlay(t, "prod")
	for _, svc := range notifyContainers {
		user, ok := users[svc]
		if !ok {
			t.Errorf("Dockerfile: target %s sets no USER", svc)
			continue
		}
		uid, gid, ok := strings.Cut(user, ":")
		u, errU := strconv.ParseInt(uid, 10, 64)
		g, errG := strconv.ParseInt(gid, 10, 64)
		if !ok || errU != nil || errG != nil || u == 0 {
			t.Errorf("Dockerfile: target %s has USER %q, want a numeric non-root uid:gid", svc, user)
			continue
		}
		d := o.deployments[svc]
		if d == nil {
			t.Fatalf("overlay prod: no Deployment %s", svc)
		}
		psc := d.Spec.Template.Spec.SecurityContext
		if psc == nil || psc.RunAsUser == nil || psc.RunAsGroup == nil || *psc.RunAsUser != u || *psc.RunAsGroup != g {
			t.Errorf("%s: pod runAsUser/runAsGroup do not match the image's USER %s", svc, user)
		}
	}
}

// dockerfileUsers maps each build target of the Dockerfile to its last
// USER instruction.
func dockerfileUsers(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	users := map[string]string{}
	stage := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 4 && strings.EqualFold(fields[0], "FROM") && strings.EqualFold(fields[2], "AS"):
			stage = fields[3]
		case len(fields) == 2 && strings.EqualFold(fields[0], "USER"):
			users[stage] = fields[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return users
}
