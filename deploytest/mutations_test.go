package deploytest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// problems records what a check reports, instead of failing the test.
type problems []string

func (p *problems) Helper() {}

func (p *problems) Errorf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// TestOverlayChecksRejectMutations breaks one thing in a fresh dev build and
// requires the check guarding it to report it, so no check passes whatever
// the manifests say. Each check must first pass on the unbroken build.
func TestOverlayChecksRejectMutations(t *testing.T) {
	// Not parallel: kustomize's schema loading races with itself.
	tests := []struct {
		name   string
		check  func(reporter, *overlay)
		mutate func(*overlay)
		want   string // part of the reported problem
	}{
		{"env overrides DRAIN_TIMEOUT", checkConfigSource, func(o *overlay) {
			c := container(o, "read-api")
			c.Env = append(c.Env, corev1.EnvVar{Name: "DRAIN_TIMEOUT", Value: "60s"})
		}, "env DRAIN_TIMEOUT overrides"},
		{"env overrides MAX_CONNECTION_AGE", checkConfigSource, func(o *overlay) {
			c := container(o, "write-api")
			c.Env = append(c.Env, corev1.EnvVar{Name: "MAX_CONNECTION_AGE", Value: "2h"})
		}, "env MAX_CONNECTION_AGE overrides"},
		{"config not taken from notify-config", checkConfigSource, func(o *overlay) {
			c := container(o, "read-api")
			c.EnvFrom = slices.DeleteFunc(c.EnvFrom, func(src corev1.EnvFromSource) bool { return src.ConfigMapRef != nil })
		}, "no envFrom of ConfigMap notify-config"},
		{"notify-config under a prefix", checkConfigSource, func(o *overlay) {
			configRef(o, "read-api").Prefix = "NOTIFY_"
		}, `has prefix "NOTIFY_"`},
		{"notify-config optional", checkConfigSource, func(o *overlay) {
			configRef(o, "write-api").ConfigMapRef.Optional = ptr.To(true)
		}, "or is optional"},
		{"later Secret overrides DRAIN_TIMEOUT", checkConfigSource, func(o *overlay) {
			o.secrets["notify-secrets"].StringData["DRAIN_TIMEOUT"] = "60s"
		}, "later envFrom source overrides notify-config's DRAIN_TIMEOUT"},

		{"PDB maxUnavailable 100%", checkPDB, func(o *overlay) {
			readPDB(o).Spec.MaxUnavailable = ptr.To(intstr.FromString("100%"))
		}, "lets every read-api pod go"},
		{"PDB maxUnavailable = HPA minimum", checkPDB, func(o *overlay) {
			readPDB(o).Spec.MaxUnavailable = ptr.To(intstr.FromInt32(2))
		}, "lets every read-api pod go at 2 replicas"},
		{"PDB minAvailable 0", checkPDB, func(o *overlay) {
			p := readPDB(o)
			p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, ptr.To(intstr.FromInt32(0))
		}, "lets every read-api pod go"},
		{"PDB with no budget", checkPDB, func(o *overlay) {
			readPDB(o).Spec.MaxUnavailable = nil
		}, "lets every read-api pod go"},
		{"PDB minAvailable 100%", checkPDB, func(o *overlay) {
			p := readPDB(o)
			p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, ptr.To(intstr.FromString("100%"))
		}, "blocks every eviction"},
		{"PDB selects other pods", checkPDB, func(o *overlay) {
			readPDB(o).Spec.Selector.MatchLabels = map[string]string{"app.kubernetes.io/name": "reader"}
		}, "no PodDisruptionBudget covers read-api"},

		{"NetworkPolicy rule with no from", checkNetworkPolicy, func(o *overlay) {
			writePolicy(o).Spec.Ingress[0].From = nil
		}, "open to every source"},
		{"NetworkPolicy namespaceSelector {} alone", checkNetworkPolicy, func(o *overlay) {
			addPeer(o, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}})
		}, "selects no label"},
		{"NetworkPolicy podSelector {}", checkNetworkPolicy, func(o *overlay) {
			addPeer(o, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})
		}, "selects no label"},
		{"NetworkPolicy ipBlock", checkNetworkPolicy, func(o *overlay) {
			addPeer(o, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}})
		}, "admits an IP block"},
		{"second NetworkPolicy allowing all", checkNetworkPolicy, func(o *overlay) {
			// Policies add up, and an empty podSelector selects write-api too.
			o.netpols = append(o.netpols, &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "allow-all"},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			})
		}, "allow-all has a rule open to every source"},
		{"NetworkPolicy egress only", checkNetworkPolicy, func(o *overlay) {
			writePolicy(o).Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		}, "no NetworkPolicy restricts ingress to write-api"},

		{"write-api Service NodePort", checkServices, func(o *overlay) {
			o.services["write-api"].Spec.Type = corev1.ServiceTypeNodePort
		}, "want ClusterIP only"},
		{"write-api Service LoadBalancer", checkServices, func(o *overlay) {
			o.services["write-api"].Spec.Type = corev1.ServiceTypeLoadBalancer
		}, "want ClusterIP only"},
		{"write-api Service external IP", checkServices, func(o *overlay) {
			o.services["write-api"].Spec.ExternalIPs = []string{"192.0.2.1"}
		}, "want ClusterIP only"},

		{"HPA without metrics", checkHPA, func(o *overlay) {
			o.hpas[0].Spec.Metrics = nil
		}, "has no metrics"},
		{"read-api with fixed replicas", checkHPA, func(o *overlay) {
			o.deployments["read-api"].Spec.Replicas = ptr.To[int32](3)
		}, "the HPA owns that count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := buildOverlay(t, "dev")
			var before problems
			tt.check(&before, o)
			if len(before) > 0 {
				t.Fatalf("the unbroken build already fails the check: %q", before)
			}
			tt.mutate(o)
			var after problems
			tt.check(&after, o)
			if !slices.ContainsFunc(after, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("check reported %q after the mutation, want a problem containing %q", after, tt.want)
			}
		})
	}
}

// container is the first container of Deployment name.
func container(o *overlay, name string) *corev1.Container {
	return &o.deployments[name].Spec.Template.Spec.Containers[0]
}

// configRef is the envFrom entry of Deployment name for notify-config.
func configRef(o *overlay, name string) *corev1.EnvFromSource {
	c := container(o, name)
	i := slices.IndexFunc(c.EnvFrom, func(src corev1.EnvFromSource) bool { return src.ConfigMapRef != nil })
	return &c.EnvFrom[i]
}

func readPDB(o *overlay) *policyv1.PodDisruptionBudget {
	i := slices.IndexFunc(o.pdbs, func(p *policyv1.PodDisruptionBudget) bool { return p.Name == "read-api" })
	return o.pdbs[i]
}

func writePolicy(o *overlay) *networkingv1.NetworkPolicy {
	i := slices.IndexFunc(o.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "write-api" })
	return o.netpols[i]
}

// addPeer admits peer in the write-api policy's first rule, beside the others.
func addPeer(o *overlay, peer networkingv1.NetworkPolicyPeer) {
	rule := &writePolicy(o).Spec.Ingress[0]
	rule.From = append(rule.From, peer)
}
