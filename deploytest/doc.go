// Package deploytest checks the deployment artefacts of Notify: the Kubernetes
// manifests (strictly decoded, built with kustomize), docker-compose.yml (loaded
// with compose-go) and the nginx front proxy (run live from Debian's nginx).
// It holds tests only.
package deploytest
