package deploytest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// Invariants of the pods: where their settings come from and how they run.

func configDuration(t *testing.T, cfg *corev1.ConfigMap, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(cfg.Data[key])
	if err != nil || d <= 0 {
		t.Fatalf("ConfigMap %s=%q: want a positive duration (%v)", key, cfg.Data[key], err)
	}
	return d
}

// timingKeys are the settings the grace-period and Ingress checks read from
// notify-config, so the pods must get them from there.
var timingKeys = []string{"DRAIN_TIMEOUT", "MAX_CONNECTION_AGE"}

// checkConfigSource: each Notify container takes notify-config through
// envFrom (no prefix, not optional) and nothing overrides the timing keys on
// the way: an env entry or a later envFrom source would win over it.
func checkConfigSource(r reporter, o *overlay) {
	r.Helper()
	for _, name := range notifyContainers {
		d := o.deployments[name]
		if d == nil {
			r.Errorf("Deployment %s missing", name)
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			where := name + "/" + c.Name
			for _, e := range c.Env {
				if slices.Contains(timingKeys, e.Name) {
					r.Errorf("%s: env %s overrides notify-config", where, e.Name)
				}
			}
			i := slices.IndexFunc(c.EnvFrom, func(src corev1.EnvFromSource) bool {
				return src.ConfigMapRef != nil && src.ConfigMapRef.Name == "notify-config"
			})
			if i < 0 {
				r.Errorf("%s: no envFrom of ConfigMap notify-config", where)
				continue
			}
			if src := c.EnvFrom[i]; src.Prefix != "" || ptr.Deref(src.ConfigMapRef.Optional, false) {
				r.Errorf("%s: envFrom notify-config has prefix %q or is optional", where, src.Prefix)
			}
			// Only sources in the build can be read; prod's Secret comes from outside.
			for _, src := range c.EnvFrom[i+1:] {
				for _, key := range envKeys(o, src) {
					if slices.Contains(timingKeys, src.Prefix+key) {
						r.Errorf("%s: a later envFrom source overrides notify-config's %s", where, src.Prefix+key)
					}
				}
			}
		}
	}
}

// envKeys lists the keys of an envFrom source that is part of the build.
func envKeys(o *overlay, src corev1.EnvFromSource) []string {
	var keys []string
	if ref := src.ConfigMapRef; ref != nil && o.configMaps[ref.Name] != nil {
		keys = slices.AppendSeq(keys, maps.Keys(o.configMaps[ref.Name].Data))
	}
	if ref := src.SecretRef; ref != nil && o.secrets[ref.Name] != nil {
		keys = slices.AppendSeq(keys, maps.Keys(o.secrets[ref.Name].Data))
		keys = slices.AppendSeq(keys, maps.Keys(o.secrets[ref.Name].StringData))
	}
	return keys
}

// checkRedisConfig wants exactly one Redis mode configured (docs/api.md, Configuration).
func checkRedisConfig(r reporter, cfg *corev1.ConfigMap) {
	r.Helper()
	var modes []string
	for _, key := range []string{"REDIS_URL", "REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"} {
		if cfg.Data[key] != "" {
			modes = append(modes, key)
		}
	}
	if len(modes) != 1 {
		r.Errorf("Redis modes configured %v, want exactly one", modes)
	}
	if cfg.Data["REDIS_SENTINEL_ADDRS"] != "" && cfg.Data["REDIS_SENTINEL_MASTER"] == "" {
		r.Errorf("REDIS_SENTINEL_ADDRS without REDIS_SENTINEL_MASTER")
	}
}

func checkPodSpec(r reporter, d *appsv1.Deployment, drain time.Duration) {
	r.Helper()
	pod := d.Spec.Template.Spec
	notify := slices.Contains(notifyContainers, d.Name)
	if notify {
		grace := pod.TerminationGracePeriodSeconds
		if grace == nil || time.Duration(*grace)*time.Second <= drain {
			r.Errorf("%s: terminationGracePeriodSeconds %d, want > DRAIN_TIMEOUT %v", d.Name, ptr.Deref(grace, 30), drain)
		}
		checkScrapeAnnotations(r, d)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		r.Errorf("%s: pod seccompProfile must be RuntimeDefault", d.Name)
	}
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		r.Errorf("%s: pod must set runAsNonRoot", d.Name)
	}
	if len(pod.Containers) == 0 {
		r.Errorf("%s: no containers", d.Name)
	}
	for _, c := range pod.Containers {
		where := d.Name + "/" + c.Name
		checkImage(r, where, c.Image)
		checkResources(r, where, c.Resources)
		checkContainerSecurity(r, where, c.SecurityContext)
		if notify {
			checkNotifyProbes(r, where, c)
		} else if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			r.Errorf("%s: readiness and liveness probes required", where)
		}
	}
}

func checkScrapeAnnotations(r reporter, d *appsv1.Deployment) {
	r.Helper()
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
		r.Errorf("%s: Prometheus scrape annotations missing: %v", d.Name, a)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if strconv.Itoa(int(p.ContainerPort)) == a["prometheus.io/port"] {
				return
			}
		}
	}
	r.Errorf("%s: prometheus.io/port %q is no container port", d.Name, a["prometheus.io/port"])
}

// checkImage rejects untagged images and the latest tag.
func checkImage(r reporter, where, image string) {
	r.Helper()
	if strings.Contains(image, "@sha256:") {
		return
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" || tag == "latest" {
		r.Errorf("%s: image %q must carry a version tag (not latest)", where, image)
	}
}

func checkResources(r reporter, where string, res corev1.ResourceRequirements) {
	r.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := res.Requests[name]
		limit, okLimit := res.Limits[name]
		if !okReq || !okLimit {
			r.Errorf("%s: %s request and limit required", where, name)
			continue
		}
		if req.Cmp(limit) > 0 {
			r.Errorf("%s: %s request %s above limit %s", where, name, req.String(), limit.String())
		}
	}
}

func checkContainerSecurity(r reporter, where string, sc *corev1.SecurityContext) {
	r.Helper()
	if sc == nil {
		r.Errorf("%s: securityContext missing", where)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		r.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		r.Errorf("%s: runAsNonRoot must be true", where)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		r.Errorf("%s: capabilities must drop ALL and add none", where)
	}
}

// checkNotifyProbes: readiness on /readyz fails fast, liveness on /healthz fails slowly.
func checkNotifyProbes(r reporter, where string, c corev1.Container) {
	r.Helper()
	ready, live := c.ReadinessProbe, c.LivenessProbe
	if ready == nil || ready.HTTPGet == nil || ready.HTTPGet.Path != "/readyz" {
		r.Errorf("%s: readiness probe must GET /readyz", where)
		return
	}
	if live == nil || live.HTTPGet == nil || live.HTTPGet.Path != "/healthz" {
		r.Errorf("%s: liveness probe must GET /healthz", where)
		return
	}
	if live.FailureThreshold*live.PeriodSeconds <= ready.FailureThreshold*ready.PeriodSeconds {
		r.Errorf("%s: liveness must be more tolerant than readiness", where)
	}
	for _, p := range []*corev1.Probe{ready, live} {
		if p.HTTPGet.Port.StrVal != "http" {
			r.Errorf("%s: probe port %v, want the named port http", where, p.HTTPGet.Port.String())
		}
	}
}
