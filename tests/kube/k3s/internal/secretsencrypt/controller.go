package secretsencrypt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

// ControlPlaneLabel selects the servers whose hashes must match.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane=true"

// Controller runs the stages on one server.
type Controller struct {
	Kube           kubernetes.Interface
	NodeName       string
	ConfigPath     string
	StatePath      string
	Provider       string
	EncryptSecrets bool
	// Save stores the bootstrap data (encryption config and state included) in etcd.
	Save func(context.Context) error
	// Metrics returns the local kube-apiserver's /metrics text.
	Metrics func(context.Context) (string, error)
	// ReloadTimeout bounds the wait for the apiserver's automatic reload (k3s: 120 s).
	ReloadTimeout time.Duration
}

func (c *Controller) nodes(ctx context.Context) ([]corev1.Node, error) {
	list, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (c *Controller) readConfig() (*apiserverv1.EncryptionConfiguration, bool, error) {
	cfg, err := ReadConfig(c.ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	return cfg, err == nil, err
}

// Status computes the encryption state (k3s: encryptionStatus).
func (c *Controller) Status(ctx context.Context) (State, error) {
	var s State
	cfg, ok, err := c.readConfig()
	if err != nil || !ok {
		return s, err
	}
	providers := Providers(cfg)
	s.Enable = enabled(providers, c.EncryptSecrets)
	nodes, err := c.nodes(ctx)
	if err != nil {
		return s, err
	}
	if err := hashesMatch(nodes); err != nil {
		s.HashError = err.Error()
	} else {
		s.HashMatch = true
	}
	stage, _, err := c.localStage(ctx)
	if err != nil {
		return s, err
	}
	s.Stage = stage
	s.ActiveKey, s.InactiveKeys = keyNames(providers)
	return s, nil
}

func hashesMatch(nodes []corev1.Node) error {
	first, firstName := "", ""
	for _, n := range nodes {
		v, ok := n.Annotations[HashAnnotation]
		if !ok {
			continue
		}
		if firstName == "" {
			first, firstName = v, n.Name
			continue
		}
		if v != first {
			return fmt.Errorf("hash does not match between %s and %s", firstName, n.Name)
		}
	}
	return nil
}

// localStage reads this node's annotation: stage, hash.
func (c *Controller) localStage(ctx context.Context) (string, string, error) {
	node, err := c.Kube.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	if node.Labels["node-role.kubernetes.io/control-plane"] != "true" {
		return "", "", fmt.Errorf("cannot manage secrets encryption on non control-plane node %s", c.NodeName)
	}
	v, ok := node.Annotations[HashAnnotation]
	if !ok {
		return "", "", fmt.Errorf("missing annotation on node %s", c.NodeName)
	}
	parts := strings.Split(v, "-")
	if len(parts) != 2 {
		return "", "", fmt.Errorf("invalid annotation %s found on node %s", v, c.NodeName)
	}
	return parts[0], parts[1], nil
}

// verify is verifyEncryptionHashAnnotation: hashes equal, this node's stage one of
// prevStage (a substring test, as k3s's), and its hash that of the local file.
func (c *Controller) verify(ctx context.Context, prevStage string) error {
	nodes, err := c.nodes(ctx)
	if err != nil {
		return err
	}
	if err := hashesMatch(nodes); err != nil {
		return err
	}
	if prevStage == "" {
		return nil
	}
	stage, hash, err := c.localStage(ctx)
	if err != nil {
		return err
	}
	first := c.NodeName
	if len(nodes) > 0 {
		first = nodes[0].Name // k3s names nodes.Items[0] here
	}
	if !strings.Contains(prevStage, stage) {
		return fmt.Errorf("incorrect stage: %s found on node %s", stage, first)
	}
	local, err := FileHash(c.ConfigPath)
	if err != nil {
		return err
	}
	if hash != local {
		return fmt.Errorf("invalid hash: %s found on node %s", hash, first)
	}
	return nil
}

// Annotate sets this node's hash annotation.
func (c *Controller) Annotate(ctx context.Context, value string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{HashAnnotation: value}}})
	_, err := c.Kube.CoreV1().Nodes().Patch(ctx, c.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// AnnotateFromState copies encryption-state.json into the annotation, as each start with
// --secrets-encryption does (k3s: pkg/server/server.go setNodeLabelsAndAnnotations).
func (c *Controller) AnnotateFromState(ctx context.Context) error {
	data, err := os.ReadFile(c.StatePath)
	if err != nil {
		logrus.Warnf("Unable to set encryption hash annotation %v", err)
		return nil
	}
	return c.Annotate(ctx, strings.TrimSpace(string(data)))
}

// writeStage writes the config and records <stage>-<hash> in the annotation and, unless
// annotationOnly, in encryption-state.json.
func (c *Controller) writeStage(ctx context.Context, cfg *apiserverv1.EncryptionConfiguration, stage string, annotationOnly bool) error {
	hash, err := Write(c.ConfigPath, cfg)
	if err != nil {
		return err
	}
	return c.recordStage(ctx, stage, hash, annotationOnly)
}

func (c *Controller) recordStage(ctx context.Context, stage, hash string, annotationOnly bool) error {
	value := stage + "-" + hash
	if err := c.Annotate(ctx, value); err != nil {
		return err
	}
	if annotationOnly {
		return nil
	}
	return os.WriteFile(c.StatePath, []byte(value), 0o600)
}

func (c *Controller) keys() (Keys, *apiserverv1.EncryptionConfiguration, error) {
	cfg, ok, err := c.readConfig()
	if err != nil {
		return Keys{}, nil, err
	}
	if !ok {
		return Keys{}, nil, fmt.Errorf("open %s: no such file or directory", c.ConfigPath)
	}
	k, err := GetKeys(cfg)
	return k, cfg, err
}

func (k *Keys) of(provider string) *[]apiserverv1.Key {
	if provider == SecretBox {
		return &k.SecretBox
	}
	return &k.AESCBC
}

// rightRotate moves the last key first.
func rightRotate(keys []apiserverv1.Key) []apiserverv1.Key {
	if len(keys) < 2 {
		return keys
	}
	return append([]apiserverv1.Key{keys[len(keys)-1]}, keys[:len(keys)-1]...)
}

// Handle runs one PUT /v1-k3s/encrypt/config request.
func (c *Controller) Handle(ctx context.Context, req Request) error {
	switch {
	case req.Stage != nil:
		switch *req.Stage {
		case StagePrepare:
			return c.prepare(ctx, req.Force)
		case StageRotate:
			return c.rotate(ctx, req.Force)
		case StageReencryptActive:
			return c.reencrypt(ctx, req.Force, req.Skip)
		case StageRotateKeys:
			return c.rotateKeys(ctx)
		default:
			return fmt.Errorf("unknown stage %s requested", *req.Stage)
		}
	case req.Enable != nil:
		return c.enable(ctx, *req.Enable)
	}
	return nil
}

func (c *Controller) prepare(ctx context.Context, force bool) error {
	if err := c.verify(ctx, StageStart+"-"+StageReencryptFinished); err != nil && !force {
		return err
	}
	if c.Provider == SecretBox {
		return errors.New("prepare does not support secretbox key type, use rotate-keys instead")
	}
	k, _, err := c.keys()
	if err != nil {
		return err
	}
	*k.of(c.Provider) = append(*k.of(c.Provider), NewKey(c.Provider))
	logrus.Infof("Adding secrets-encryption key: %v", names(*k.of(c.Provider)))
	if err := c.writeStage(ctx, Build(k, c.Provider, true), StagePrepare, false); err != nil {
		return err
	}
	return c.Save(ctx)
}

func (c *Controller) rotate(ctx context.Context, force bool) error {
	if err := c.verify(ctx, StagePrepare); err != nil && !force {
		return err
	}
	if c.Provider == SecretBox {
		return errors.New("rotate does not support secretbox key type, use rotate-keys instead")
	}
	k, _, err := c.keys()
	if err != nil {
		return err
	}
	*k.of(c.Provider) = rightRotate(*k.of(c.Provider))
	logrus.Infof("Encryption %s keys right rotated", c.Provider)
	if err := c.writeStage(ctx, Build(k, c.Provider, true), StageRotate, false); err != nil {
		return err
	}
	return c.Save(ctx)
}

func (c *Controller) reencrypt(ctx context.Context, force, skip bool) error {
	if err := c.verify(ctx, StageRotate); err != nil && !force {
		return err
	}
	if c.Provider == SecretBox {
		return errors.New("reencrypt does not support secretbox key type, use rotate-keys instead")
	}
	hash, err := FileHash(c.ConfigPath)
	if err != nil {
		return err
	}
	if err := c.recordStage(ctx, StageReencryptActive, hash, true); err != nil {
		return err
	}
	// k3s runs this in the background and answers at once ("reencryption started").
	go func() {
		if err := c.reencryptAndRemoveKey(context.Background(), skip); err != nil {
			logrus.Errorf("secrets reencryption failed: %v", err)
		}
	}()
	return nil
}

func (c *Controller) rotateKeys(ctx context.Context) error {
	if err := c.verify(ctx, StageStart+"-"+StageReencryptFinished); err != nil {
		return err
	}
	if err := c.rotateKeysSupported(ctx); err != nil {
		return err
	}
	baseSuccess, baseTime, err := c.reloadMetrics(ctx, true)
	if err != nil {
		return err
	}
	hash, err := FileHash(c.ConfigPath)
	if err != nil {
		return err
	}
	if err := c.recordStage(ctx, StageReencryptActive, hash, true); err != nil {
		return err
	}
	k, _, err := c.keys()
	if err != nil {
		return err
	}
	*k.of(c.Provider) = append(*k.of(c.Provider), NewKey(c.Provider))
	logrus.Infof("Adding secrets-encryption key: %v", names(*k.of(c.Provider)))
	if _, err := Write(c.ConfigPath, Build(k, c.Provider, true)); err != nil {
		return err
	}
	*k.of(c.Provider) = rightRotate(*k.of(c.Provider))
	logrus.Infof("Rotating secrets-encryption %s keys", c.Provider)
	if _, err := Write(c.ConfigPath, Build(k, c.Provider, true)); err != nil {
		return err
	}
	if err := c.waitForReload(ctx, baseSuccess, baseTime); err != nil {
		return err
	}
	return c.reencryptAndRemoveKey(ctx, false)
}

// rotateKeysSupported: every server's kubelet version must be at least 1.28.0
// (k3s: verifyRotateKeysSupport).
func (c *Controller) rotateKeysSupported(ctx context.Context) error {
	nodes, err := c.nodes(ctx)
	if err != nil {
		return err
	}
	min := semver.MustParse("1.28.0")
	for _, n := range nodes {
		v, err := semver.ParseTolerant(n.Status.NodeInfo.KubeletVersion)
		if err != nil {
			return fmt.Errorf("failed to parse kubelet version %s: %v", n.Status.NodeInfo.KubeletVersion, err)
		}
		if v.LT(min) {
			return fmt.Errorf("node %s is running k3s version %s that does not support rotate-keys", n.Name, n.Status.NodeInfo.KubeletVersion)
		}
	}
	return nil
}

func (c *Controller) enable(ctx context.Context, enable bool) error {
	cfg, ok, err := c.readConfig()
	if err != nil {
		return err
	}
	if !ok {
		if enable {
			// k3s PR #13370 (all 1.36 releases): an unencrypted cluster gets an identity-only
			// config; restarting with secrets-encryption then rotate-keys turns it on.
			logrus.Info("Enabling secrets encryption with identity provider, restart with secrets-encryption")
			if _, err := Write(c.ConfigPath, IdentityConfig()); err != nil {
				return err
			}
			return c.Save(ctx)
		}
		return fmt.Errorf("open %s: no such file or directory", c.ConfigPath)
	}
	providers := Providers(cfg)
	if len(providers) > 3 {
		return fmt.Errorf("more than 3 providers (%d) found in secrets encryption", len(providers))
	}
	k, err := GetKeys(cfg)
	if err != nil {
		return err
	}
	if !enable {
		if len(providers) > 1 && isKeyProvider(providers[0]) && providers[len(providers)-1].Identity != nil {
			logrus.Info("Disabling secrets encryption")
			if _, err := Write(c.ConfigPath, Build(k, c.Provider, false)); err != nil {
				return err
			}
			if err := c.Save(ctx); err != nil {
				return err
			}
			return c.reencryptAndRemoveKey(ctx, true)
		}
		logrus.Info("Secrets encryption already disabled")
		return nil
	}
	if providers[0].Identity != nil {
		// k3s reads providers[1] here without a length check: on an identity-only config
		// the handler panics and the client sees EOF (k3s: pkg/server/handlers/
		// secrets-encrypt.go encryptionEnable). The test server does the same.
		if len(providers) < 2 {
			panic(http.ErrAbortHandler)
		}
		if isKeyProvider(providers[1]) {
			if len(*k.of(c.Provider)) == 0 {
				return fmt.Errorf("cannot enable secrets encryption with %s key type, no keys found", c.Provider)
			}
			logrus.Info("Enabling secrets encryption")
			if _, err := Write(c.ConfigPath, Build(k, c.Provider, true)); err != nil {
				return err
			}
			if err := c.Save(ctx); err != nil {
				return err
			}
			return c.reencryptAndRemoveKey(ctx, true)
		}
	}
	if isKeyProvider(providers[0]) {
		logrus.Info("Secrets encryption already enabled")
		return nil
	}
	return errors.New("unable to enable/disable secrets encryption, unknown configuration")
}

// reencryptAndRemoveKey rewrites every Secret (so the apiserver stores it with the
// current first provider), then, unless skip, drops the old key and records
// reencrypt_finished (k3s: reencryptAndRemoveKey, updateSecrets).
func (c *Controller) reencryptAndRemoveKey(ctx context.Context, skip bool) error {
	n, err := c.updateSecrets(ctx)
	if err != nil {
		return err
	}
	logrus.Infof("reencrypted %d secrets", n)
	if skip {
		data, err := os.ReadFile(c.StatePath)
		if err != nil {
			return err
		}
		return c.Annotate(ctx, strings.TrimSpace(string(data)))
	}
	k, _, err := c.keys()
	if err != nil {
		return err
	}
	mine, other := k.of(c.Provider), &k.SecretBox
	if c.Provider == SecretBox {
		other = &k.AESCBC
	}
	switch {
	case len(*mine) == 1 && len(*other) > 0:
		logrus.Infof("Removing %s key: %v", otherName(c.Provider), names((*other)[len(*other)-1:]))
		*other = (*other)[:len(*other)-1]
	case len(*mine) == 1 && k.Identity:
		logrus.Info("No keys to remove, switched from identity provider")
	case len(*mine) > 1:
		logrus.Infof("Removing %s key: %v", c.Provider, names((*mine)[len(*mine)-1:]))
		*mine = (*mine)[:len(*mine)-1]
	}
	if err := c.writeStage(ctx, Build(k, c.Provider, true), StageReencryptFinished, false); err != nil {
		return err
	}
	return c.Save(ctx)
}

func (c *Controller) updateSecrets(ctx context.Context) (int, error) {
	count := 0
	opts := metav1.ListOptions{Limit: 20}
	for {
		list, err := c.Kube.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return count, err
		}
		for i := range list.Items {
			s := &list.Items[i]
			if _, err := c.Kube.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
					continue
				}
				return count, fmt.Errorf("failed to update secret: %v", err)
			}
			count++
		}
		if list.Continue == "" {
			return count, nil
		}
		opts.Continue = list.Continue
	}
}

func otherName(p string) string {
	if p == SecretBox {
		return AESCBC
	}
	return SecretBox
}

func names(keys []apiserverv1.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Name)
	}
	return out
}
