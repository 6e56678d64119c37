package nodes

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CheckPassword verifies a node's password against the Secret
// kube-system/<node>.node-password.k3s, creating it on first use
// (k3s: pkg/nodepassword/nodepassword.go; the test server stores a sha256, k3s a scrypt hash).
func CheckPassword(ctx context.Context, kube kubernetes.Interface, node, password string) error {
	name := node + ".node-password.k3s"
	sum := sha256.Sum256([]byte(password))
	hash := hex.EncodeToString(sum[:])
	secrets := kube.CoreV1().Secrets(metav1.NamespaceSystem)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
			Immutable:  ptr(true),
			Data:       map[string][]byte{"hash": []byte(hash)},
			Type:       "k3s.cattle.io/node-password",
		}, metav1.CreateOptions{})
		return err
	} else if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(s.Data["hash"], []byte(hash)) != 1 {
		return errors.New(fmt.Sprintf("unable to verify password for node %s", node))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
