package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T) (*types.Project, string) {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("notify"),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p, root
}

func TestCompose(t *testing.T) {
	t.Parallel()
	p, root := loadCompose(t)

	want := []string{"proxy", "read-api", "redis", "write-api"}
	if got := p.ServiceNames(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for name, s := range p.Services {
		if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 {
			t.Errorf("%s: health check required", name)
		}
		if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
			t.Errorf("%s: image %q must carry a tag other than latest", name, s.Image)
		}
	}

	redis := p.Services["redis"]
	if !slices.Equal(afterFlag(redis.Command, "--appendonly"), []string{"yes"}) {
		t.Errorf("redis: AOF must be on, command %v", redis.Command)
	}

	for _, name := range notifyContainers {
		s := p.Services[name]
		if got := s.HealthCheck.Test; !slices.Equal(got, []string{"CMD", "/" + name, "-healthcheck"}) {
			t.Errorf("%s: health check %v, want the binary's -healthcheck", name, got)
		}
		if s.Build == nil || s.Build.Target != name {
			t.Errorf("%s: must build the Dockerfile target %s", name, name)
		}
		if dep, ok := s.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: must wait for a healthy redis", name)
		}
		if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: want read_only and cap_drop ALL", name)
		}
		secret := env(s, "JWT_HS256_SECRET")
		if len(secret) < 32 || !strings.Contains(secret, "dev-only") {
			t.Errorf("%s: JWT_HS256_SECRET %q: want >= 32 bytes, marked dev-only", name, secret)
		}
	}

	read := p.Services["read-api"]
	if read.Deploy == nil || read.Deploy.Replicas == nil || *read.Deploy.Replicas != 3 {
		t.Error("read-api: deploy.replicas must be 3")
	}
	if len(read.Ports) > 0 {
		t.Error("read-api: must be reached through the proxy, not published")
	}
	drain, err := time.ParseDuration(env(read, "DRAIN_TIMEOUT"))
	if err != nil {
		t.Errorf("read-api: DRAIN_TIMEOUT: %v", err)
	}
	if read.StopGracePeriod == nil || time.Duration(*read.StopGracePeriod) <= drain {
		t.Errorf("read-api: stop_grace_period must exceed DRAIN_TIMEOUT %v", drain)
	}

	for _, port := range p.Services["write-api"].Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("write-api is internal: port %s must bind 127.0.0.1 only", port.Published)
		}
	}

	proxy := p.Services["proxy"]
	confDir := filepath.Join(root, "deploy", "nginx")
	if !slices.ContainsFunc(proxy.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Source == confDir && v.Target == "/etc/nginx/notify" && v.ReadOnly
	}) {
		t.Errorf("proxy: must mount %s read-only at /etc/nginx/notify, got %+v", confDir, proxy.Volumes)
	}
	if !slices.Equal(afterFlag(proxy.Command, "-c"), []string{"/etc/nginx/notify/nginx.conf"}) {
		t.Errorf("proxy: must run the mounted nginx.conf, command %v", proxy.Command)
	}
	if dep, ok := proxy.DependsOn["read-api"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Error("proxy: must wait for healthy read-api replicas")
	}

	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "DEV ONLY") {
		t.Error("docker-compose.yml must mark its secrets DEV ONLY")
	}
}

// afterFlag returns the one argument after flag in cmd, or nil.
func afterFlag(cmd []string, flag string) []string {
	i := slices.Index(cmd, flag)
	if i < 0 || i+1 >= len(cmd) {
		return nil
	}
	return cmd[i+1 : i+2]
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}
