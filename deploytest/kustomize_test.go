package deploytest

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// notifyContainers are the containers running Notify's own binaries.
var notifyContainers = []string{"write-api", "read-api"}

// TestManifestFilesDecodeStrictly decodes every YAML file under k8s/ (bases,
// overlay resources and patches) except the kustomization files themselves.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(repoRoot(t), "k8s")
	var seen int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" || d.Name() == "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := splitYAML(data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for _, doc := range docs {
			if _, err := decodeStrict(doc); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			seen++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("decoded only %d manifests under %s", seen, dir)
	}
}

// overlay is what a kustomize build produced, by kind and name.
type overlay struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	ingresses   []*networkingv1.Ingress
	netpols     []*networkingv1.NetworkPolicy
}

// buildOverlay runs kustomize on k8s/overlays/<name> and decodes each resulting
// object strictly.
func buildOverlay(t *testing.T, name string) *overlay {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "k8s", "overlays", name)
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := &overlay{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
	}
	for _, res := range resMap.Resources() {
		doc, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("overlay %s: %v", name, err)
		}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			o.deployments[v.Name] = v
		case *corev1.Service:
			o.services[v.Name] = v
		case *corev1.ConfigMap:
			o.configMaps[v.Name] = v
		case *corev1.Secret:
			o.secrets[v.Name] = v
		case *autoscalingv2.HorizontalPodAutoscaler:
			o.hpas = append(o.hpas, v)
		case *policyv1.PodDisruptionBudget:
			o.pdbs = append(o.pdbs, v)
		case *networkingv1.Ingress:
			o.ingresses = append(o.ingresses, v)
		case *networkingv1.NetworkPolicy:
			o.netpols = append(o.netpols, v)
		}
	}
	return o
}

func TestOverlays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		replicas         map[string]int32 // fixed counts of the Deployments besides read-api
		readMin, readMax int32            // read-api's HPA range: the HPA owns its count
		wantSecret       bool             // dev bundles a dev-only Secret; prod expects it from outside
	}{
		{name: "dev", replicas: map[string]int32{"write-api": 1, "redis": 1}, readMin: 2, readMax: 4, wantSecret: true},
		{name: "prod", replicas: map[string]int32{"write-api": 3}, readMin: 6, readMax: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: kustomize's schema loading races with itself.
			o := buildOverlay(t, tt.name)
			cfg := o.configMaps["notify-config"]
			if cfg == nil {
				t.Fatal("ConfigMap notify-config missing")
			}
			drain := configDuration(t, cfg, "DRAIN_TIMEOUT")
			maxAge := configDuration(t, cfg, "MAX_CONNECTION_AGE")
			checkRedisConfig(t, cfg)

			want := slices.Sorted(slices.Values(append(slices.Collect(maps.Keys(tt.replicas)), "read-api")))
			if got := slices.Sorted(maps.Keys(o.deployments)); !slices.Equal(got, want) {
				t.Errorf("deployments %v, want %v", got, want)
			}
			for name, d := range o.deployments {
				if want, fixed := tt.replicas[name]; fixed && (d.Spec.Replicas == nil || *d.Spec.Replicas != want) {
					t.Errorf("Deployment %s replicas %v, want %d", name, ptr.Deref(d.Spec.Replicas, 1), want)
				}
				checkPodSpec(t, d, drain)
			}
			if h := readHPA(t, o); h != nil && (ptr.Deref(h.Spec.MinReplicas, 1) != tt.readMin || h.Spec.MaxReplicas != tt.readMax) {
				t.Errorf("HPA read-api %d..%d, want %d..%d", ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas, tt.readMin, tt.readMax)
			}
			checkConfigSource(t, o)
			checkServices(t, o)
			checkIngress(t, o, maxAge)
			checkHPA(t, o)
			checkPDB(t, o)
			checkNetworkPolicy(t, o)
			checkSecrets(t, o, tt.wantSecret)
		})
	}
}
