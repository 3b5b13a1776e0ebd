package deploytest

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
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

// Invariants of the objects around the pods, in every overlay build.

// reporter is what the checks report to: *testing.T in TestOverlays, a
// recorder in TestOverlayChecksRejectMutations.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
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
