package secretsencrypt

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

func apiTypeMeta() metav1.TypeMeta {
	return metav1.TypeMeta{Kind: "EncryptionConfiguration", APIVersion: "apiserver.config.k8s.io/v1"}
}
