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
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// Invariants every overlay build must hold (issue 6).

func configDuration(t *testing.T, cfg *corev1.ConfigMap, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(cfg.Data[key])
	if err != nil || d <= 0 {
		t.Fatalf("ConfigMap %s=%q: want a positive duration (%v)", key, cfg.Data[key], err)
	}
	return d
}

// checkRedisConfig wants exactly one Redis mode configured (CONTRACT section 2).
func checkRedisConfig(t *testing.T, cfg *corev1.ConfigMap) {
	t.Helper()
	var modes []string
	for _, key := range []string{"REDIS_URL", "REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"} {
		if cfg.Data[key] != "" {
			modes = append(modes, key)
		}
	}
	if len(modes) != 1 {
		t.Errorf("Redis modes configured %v, want exactly one", modes)
	}
	if cfg.Data["REDIS_SENTINEL_ADDRS"] != "" && cfg.Data["REDIS_SENTINEL_MASTER"] == "" {
		t.Error("REDIS_SENTINEL_ADDRS without REDIS_SENTINEL_MASTER")
	}
}

func checkPodSpec(t *testing.T, d *appsv1.Deployment, drain time.Duration) {
	t.Helper()
	pod := d.Spec.Template.Spec
	notify := slices.Contains(notifyContainers, d.Name)
	if notify {
		grace := pod.TerminationGracePeriodSeconds
		if grace == nil || time.Duration(*grace)*time.Second <= drain {
			t.Errorf("%s: terminationGracePeriodSeconds %d, want > DRAIN_TIMEOUT %v", d.Name, ptr.Deref(grace, 30), drain)
		}
		checkScrapeAnnotations(t, d)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", d.Name)
	}
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod must set runAsNonRoot", d.Name)
	}
	if len(pod.Containers) == 0 {
		t.Errorf("%s: no containers", d.Name)
	}
	for _, c := range pod.Containers {
		where := d.Name + "/" + c.Name
		checkImage(t, where, c.Image)
		checkResources(t, where, c.Resources)
		checkContainerSecurity(t, where, c.SecurityContext)
		if notify {
			checkNotifyProbes(t, where, c)
		} else if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness and liveness probes required", where)
		}
	}
}

func checkScrapeAnnotations(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: Prometheus scrape annotations missing: %v", d.Name, a)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if strconv.Itoa(int(p.ContainerPort)) == a["prometheus.io/port"] {
				return
			}
		}
	}
	t.Errorf("%s: prometheus.io/port %q is no container port", d.Name, a["prometheus.io/port"])
}

// checkImage rejects untagged images and the latest tag.
func checkImage(t *testing.T, where, image string) {
	t.Helper()
	if strings.Contains(image, "@sha256:") {
		return
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" || tag == "latest" {
		t.Errorf("%s: image %q must carry a version tag (not latest)", where, image)
	}
}

func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		limit, okLimit := r.Limits[name]
		if !okReq || !okLimit {
			t.Errorf("%s: %s request and limit required", where, name)
			continue
		}
		if req.Cmp(limit) > 0 {
			t.Errorf("%s: %s request %s above limit %s", where, name, req.String(), limit.String())
		}
	}
}

func checkContainerSecurity(t *testing.T, where string, sc *corev1.SecurityContext) {
	t.Helper()
	if sc == nil {
		t.Errorf("%s: securityContext missing", where)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot must be true", where)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities must drop ALL and add none", where)
	}
}

// checkNotifyProbes: readiness on /readyz fails fast, liveness on /healthz fails slowly.
func checkNotifyProbes(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	ready, live := c.ReadinessProbe, c.LivenessProbe
	if ready == nil || ready.HTTPGet == nil || ready.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: readiness probe must GET /readyz", where)
		return
	}
	if live == nil || live.HTTPGet == nil || live.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness probe must GET /healthz", where)
		return
	}
	if live.FailureThreshold*live.PeriodSeconds <= ready.FailureThreshold*ready.PeriodSeconds {
		t.Errorf("%s: liveness must be more tolerant than readiness", where)
	}
	for _, p := range []*corev1.Probe{ready, live} {
		if p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s: probe port %v, want the named port http", where, p.HTTPGet.Port.String())
		}
	}
}

// checkServices: every Service selects the pods of some Deployment.
func checkServices(t *testing.T, o *overlay) {
	t.Helper()
	for name, svc := range o.services {
		if findDeployment(o, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}) == nil {
			t.Errorf("Service %s selects no Deployment's pods", name)
		}
	}
}

// findDeployment returns the Deployment whose pods sel matches.
func findDeployment(o *overlay, sel *metav1.LabelSelector) *appsv1.Deployment {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return nil
	}
	for _, d := range o.deployments {
		if s.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

func checkIngress(t *testing.T, o *overlay, maxAge time.Duration) {
	t.Helper()
	if len(o.ingresses) != 1 {
		t.Fatalf("%d Ingresses, want 1", len(o.ingresses))
	}
	ing := o.ingresses[0]
	a := ing.Annotations
	if a["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
		t.Error("Ingress: proxy-buffering must be off")
	}
	// MAX_CONNECTION_AGE is jittered by ±10%: the longest stream lasts 1.1×.
	longest := maxAge + maxAge/10
	for _, key := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v := a["nginx.ingress.kubernetes.io/"+key]
		secs, err := strconv.Atoi(v)
		if err != nil || time.Duration(secs)*time.Second <= longest {
			t.Errorf("Ingress: %s %q, want seconds above %v", key, v, longest)
		}
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service
			if svc == nil || svc.Name != "read-api" {
				t.Errorf("Ingress path %s must route to read-api only", p.Path)
				continue
			}
			if !slices.ContainsFunc(o.services["read-api"].Spec.Ports, func(sp corev1.ServicePort) bool {
				return sp.Name == svc.Port.Name
			}) {
				t.Errorf("Ingress path %s: Service read-api has no port %q", p.Path, svc.Port.Name)
			}
		}
	}
}

func checkHPA(t *testing.T, o *overlay) {
	t.Helper()
	if len(o.hpas) != 1 {
		t.Fatalf("%d HPAs, want 1", len(o.hpas))
	}
	h := o.hpas[0]
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != "read-api" || o.deployments[ref.Name] == nil {
		t.Errorf("HPA targets %s/%s, want Deployment read-api", ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		t.Errorf("HPA replicas %d..%d: want 2 <= min <= max", ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas)
	}
}

func checkPDB(t *testing.T, o *overlay) {
	t.Helper()
	covered := map[string]bool{}
	for _, p := range o.pdbs {
		if d := findDeployment(o, p.Spec.Selector); d != nil {
			covered[d.Name] = true
		}
	}
	if !covered["read-api"] {
		t.Error("no PodDisruptionBudget covers read-api")
	}
}

// checkNetworkPolicy: a policy selects write-api and admits only labelled
// publishers and Prometheus, never everyone.
func checkNetworkPolicy(t *testing.T, o *overlay) {
	t.Helper()
	for _, np := range o.netpols {
		d := findDeployment(o, &np.Spec.PodSelector)
		if d == nil || d.Name != "write-api" {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("NetworkPolicy %s must restrict Ingress", np.Name)
		}
		var publishers bool
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s has a rule open to every source", np.Name)
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil {
					t.Errorf("NetworkPolicy %s admits an IP block", np.Name)
				}
				if peer.NamespaceSelector == nil && peer.PodSelector != nil &&
					peer.PodSelector.MatchLabels["notify-publisher"] == "true" {
					publishers = true
				}
			}
		}
		if !publishers {
			t.Errorf("NetworkPolicy %s must admit pods labelled notify-publisher=true", np.Name)
		}
		return
	}
	t.Error("no NetworkPolicy selects write-api")
}

func checkSecrets(t *testing.T, o *overlay, want bool) {
	t.Helper()
	s := o.secrets["notify-secrets"]
	if !want {
		if len(o.secrets) > 0 {
			t.Errorf("Secrets %v in the build: this overlay expects them from outside", slices.Sorted(maps.Keys(o.secrets)))
		}
		return
	}
	if s == nil {
		t.Fatal("Secret notify-secrets missing")
	}
	if s.Annotations["notify/dev-only"] != "true" {
		t.Error("bundled Secret must be annotated notify/dev-only: \"true\"")
	}
	if secret := s.StringData["JWT_HS256_SECRET"]; len(secret) < 32 || !strings.Contains(secret, "dev-only") {
		t.Errorf("dev JWT_HS256_SECRET %q: want >= 32 bytes, marked dev-only", secret)
	}
}
