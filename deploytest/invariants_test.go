package deploytest

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Invariants every overlay build must hold (issue 6).

// reporter is what the checks report to: *testing.T in TestOverlays, a
// recorder in TestOverlayChecksRejectMutations.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

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

// checkRedisConfig wants exactly one Redis mode configured (CONTRACT section 2).
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

// checkServices: every Service selects the pods of some Deployment, and
// write-api's is reachable from inside the cluster only.
func checkServices(r reporter, o *overlay) {
	r.Helper()
	for name, svc := range o.services {
		if findDeployment(o, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}) == nil {
			r.Errorf("Service %s selects no Deployment's pods", name)
		}
	}
	w := o.services["write-api"]
	if w == nil {
		r.Errorf("Service write-api missing")
		return
	}
	// "" is defaulted to ClusterIP; NodePort and LoadBalancer publish it.
	if w.Spec.Type != "" && w.Spec.Type != corev1.ServiceTypeClusterIP || len(w.Spec.ExternalIPs) > 0 {
		r.Errorf("Service write-api: type %q, external IPs %v: want ClusterIP only", w.Spec.Type, w.Spec.ExternalIPs)
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

func checkIngress(r reporter, o *overlay, maxAge time.Duration) {
	r.Helper()
	if len(o.ingresses) != 1 {
		r.Errorf("%d Ingresses, want 1", len(o.ingresses))
		return
	}
	ing := o.ingresses[0]
	a := ing.Annotations
	if a["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
		r.Errorf("Ingress: proxy-buffering must be off")
	}
	// MAX_CONNECTION_AGE is jittered by ±10%: the longest stream lasts 1.1×.
	longest := maxAge + maxAge/10
	for _, key := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v := a["nginx.ingress.kubernetes.io/"+key]
		secs, err := strconv.Atoi(v)
		if err != nil || time.Duration(secs)*time.Second <= longest {
			r.Errorf("Ingress: %s %q, want seconds above %v", key, v, longest)
		}
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service
			if svc == nil || svc.Name != "read-api" {
				r.Errorf("Ingress path %s must route to read-api only", p.Path)
				continue
			}
			if !slices.ContainsFunc(o.services["read-api"].Spec.Ports, func(sp corev1.ServicePort) bool {
				return sp.Name == svc.Port.Name
			}) {
				r.Errorf("Ingress path %s: Service read-api has no port %q", p.Path, svc.Port.Name)
			}
		}
	}
}

func checkHPA(r reporter, o *overlay) {
	r.Helper()
	h := readHPA(r, o)
	if h == nil {
		return
	}
	ref := h.Spec.ScaleTargetRef
	d := o.deployments[ref.Name]
	if ref.Kind != "Deployment" || ref.Name != "read-api" || d == nil {
		r.Errorf("HPA targets %s/%s, want Deployment read-api", ref.Kind, ref.Name)
	} else if d.Spec.Replicas != nil {
		// Every kubectl apply would reset the count the HPA chose.
		r.Errorf("Deployment read-api sets replicas %d: the HPA owns that count", *d.Spec.Replicas)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		r.Errorf("HPA replicas %d..%d: want 2 <= min <= max", ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas)
	}
	// Without metrics the API server would pick 80% CPU: say what scales it.
	if len(h.Spec.Metrics) == 0 {
		r.Errorf("HPA %s has no metrics", h.Name)
	}
}

// readHPA returns the one HPA of the build.
func readHPA(r reporter, o *overlay) *autoscalingv2.HorizontalPodAutoscaler {
	r.Helper()
	if len(o.hpas) != 1 {
		r.Errorf("%d HPAs, want 1", len(o.hpas))
		return nil
	}
	return o.hpas[0]
}

// checkPDB: a PodDisruptionBudget covers read-api and, at every scale its
// HPA allows, keeps at least one pod available and still lets one be
// evicted (so node drains proceed).
func checkPDB(r reporter, o *overlay) {
	r.Helper()
	h := readHPA(r, o)
	if h == nil {
		return
	}
	var covered bool
	for _, p := range o.pdbs {
		if d := findDeployment(o, p.Spec.Selector); d == nil || d.Name != "read-api" {
			continue
		}
		covered = true
		for n := ptr.Deref(h.Spec.MinReplicas, 1); n <= h.Spec.MaxReplicas; n++ {
			healthy, err := desiredHealthy(p, int(n))
			switch {
			case err != nil:
				r.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
			case healthy < 1:
				r.Errorf("PodDisruptionBudget %s lets every read-api pod go at %d replicas", p.Name, n)
			case healthy >= int(n):
				r.Errorf("PodDisruptionBudget %s blocks every eviction at %d replicas", p.Name, n)
			default:
				continue
			}
			break
		}
	}
	if !covered {
		r.Errorf("no PodDisruptionBudget covers read-api")
	}
}

// desiredHealthy is how many of n pods p keeps, computed as the disruption
// controller does (percentages round up; a budget with neither field keeps none).
func desiredHealthy(p *policyv1.PodDisruptionBudget, n int) (int, error) {
	switch spec := p.Spec; {
	case spec.MaxUnavailable != nil && spec.MinAvailable != nil:
		return 0, errors.New("minAvailable and maxUnavailable are exclusive")
	case spec.MaxUnavailable != nil:
		down, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, n, true)
		return n - down, err
	case spec.MinAvailable != nil:
		return intstr.GetScaledValueFromIntOrPercent(spec.MinAvailable, n, true)
	}
	return 0, nil
}

// checkNetworkPolicy: write-api's ingress is restricted, and every policy
// selecting it (their rules add up) admits only labelled publishers and
// Prometheus, never everyone.
func checkNetworkPolicy(r reporter, o *overlay) {
	r.Helper()
	write := o.deployments["write-api"]
	if write == nil {
		r.Errorf("Deployment write-api missing")
		return
	}
	var restricted, publishers bool
	for _, np := range o.netpols {
		// An empty podSelector selects every pod, write-api's too.
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(write.Spec.Template.Labels)) {
			continue
		}
		// Empty policyTypes means Ingress (plus Egress if it has egress rules).
		if len(np.Spec.PolicyTypes) > 0 && !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		restricted = true
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				r.Errorf("NetworkPolicy %s has a rule open to every source", np.Name)
			}
			for _, peer := range rule.From {
				switch {
				case peer.IPBlock != nil:
					r.Errorf("NetworkPolicy %s admits an IP block", np.Name)
				case anyLabels(peer.PodSelector) && anyLabels(peer.NamespaceSelector):
					r.Errorf("NetworkPolicy %s admits a peer that selects no label, so every pod in its scope", np.Name)
				case peer.NamespaceSelector == nil && peer.PodSelector != nil &&
					peer.PodSelector.MatchLabels["notify-publisher"] == "true":
					publishers = true
				}
			}
		}
	}
	if !restricted {
		r.Errorf("no NetworkPolicy restricts ingress to write-api")
	}
	if !publishers {
		r.Errorf("NetworkPolicy for write-api must admit pods labelled notify-publisher=true")
	}
}

// anyLabels reports whether a peer selector matches regardless of labels:
// absent or empty ({}).
func anyLabels(sel *metav1.LabelSelector) bool {
	return sel == nil || len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0
}

func checkSecrets(r reporter, o *overlay, want bool) {
	r.Helper()
	s := o.secrets["notify-secrets"]
	if !want {
		if len(o.secrets) > 0 {
			r.Errorf("Secrets %v in the build: this overlay expects them from outside", slices.Sorted(maps.Keys(o.secrets)))
		}
		return
	}
	if s == nil {
		r.Errorf("Secret notify-secrets missing")
		return
	}
	if s.Annotations["notify/dev-only"] != "true" {
		r.Errorf("bundled Secret must be annotated notify/dev-only: \"true\"")
	}
	if secret := s.StringData["JWT_HS256_SECRET"]; len(secret) < 32 || !strings.Contains(secret, "dev-only") {
		r.Errorf("dev JWT_HS256_SECRET %q: want >= 32 bytes, marked dev-only", secret)
	}
}
