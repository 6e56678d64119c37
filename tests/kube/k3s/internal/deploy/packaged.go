package deploy

import (
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"opsbook/tests/kube/k3s/internal/pki"
)

// traefikManifest is the packaged traefik.yaml: the traefik-crd and traefik HelmCharts in
// kube-system (k3s: manifests/traefik.yaml; chart URLs keep %{KUBERNETES_API}% for
// helm-controller). Nothing in the test server acts on HelmCharts; the chart versions are
// those of a 1.35 release (third-party logs), not fetched.
const traefikManifest = `apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: traefik-crd
  namespace: kube-system
spec:
  chart: https://%{KUBERNETES_API}%/static/charts/traefik-crd-39.0.701+up39.0.7.tgz
---
apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: traefik
  namespace: kube-system
spec:
  chart: https://%{KUBERNETES_API}%/static/charts/traefik-39.0.701+up39.0.7.tgz
  set:
    global.systemDefaultRegistry: ""
  valuesContent: |-
    deployment:
      podAnnotations:
        prometheus.io/port: "8082"
        prometheus.io/scrape: "true"
    providers:
      kubernetesIngress:
        publishedService:
          enabled: true
    priorityClassName: "system-cluster-critical"
    image:
      repository: "rancher/mirrored-library-traefik"
      tag: "3.6.13"
    tolerations:
    - key: "CriticalAddonsOnly"
      operator: "Exists"
    - key: "node-role.kubernetes.io/control-plane"
      operator: "Exists"
      effect: "NoSchedule"
    service:
      ipFamilyPolicy: "PreferDualStack"
`

// Stage writes the packaged manifests on every start, overwriting local edits, except the
// disabled ones (k3s: pkg/deploy/stage.go Stage). The test server packages only
// traefik.yaml; coredns, local-storage, metrics-server and the rest are not written.
func Stage(dir string, disables []string) error {
	if contains(disables, "traefik") {
		return nil
	}
	p := filepath.Join(dir, "traefik.yaml")
	if old, err := os.ReadFile(p); err == nil && string(old) == traefikManifest {
		return nil
	}
	logrus.Infof("Writing manifest: %s", p)
	return pki.WriteFile(p, []byte(traefikManifest), 0o600)
}
