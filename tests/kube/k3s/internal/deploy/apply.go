// Package deploy applies manifests the way k3s's deploy controller does: k3s's CRDs at
// start, and every file in server/manifests/ re-applied when it changes, each recorded in
// an Addon object (k3s: pkg/deploy/controller.go, pkg/deploy/stage.go, pkg/crd).
package deploy

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

//go:embed crds/*
var crdFiles embed.FS

// Applier applies objects with server-side apply.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	owner  string
}

// NewApplier builds an applier whose field manager is owner.
func NewApplier(c *rest.Config, owner string) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)), owner: owner}, nil
}

// Decode splits multi-document YAML or JSON into objects (List kinds expanded).
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, u)
	}
}

func (a *Applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		return a.dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// Apply server-side-applies each object.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		data, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		force := true
		if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: a.owner, Force: &force}); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// Delete removes each object (absent ones are fine).
func (a *Applier) Delete(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			continue
		}
		if err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// CRDs returns the embedded CRDs: k3s.cattle.io always, helm.cattle.io unless the helm
// controller is disabled (k3s's helm-controller registers them), and traefik.io unless
// traefik is disabled (in k3s the traefik-crd HelmChart installs them; nothing runs Helm
// here, so the test server applies them itself).
func CRDs(helm, traefik bool) ([]*unstructured.Unstructured, error) {
	entries, err := crdFiles.ReadDir("crds")
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	haveShared := false
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		switch {
		case strings.HasPrefix(name, "helm.cattle.io"):
			haveShared = true
			if !helm {
				continue
			}
		case strings.HasPrefix(name, "traefik.io"):
			if !traefik {
				continue
			}
		}
		data, err := crdFiles.ReadFile(path.Join("crds", name))
		if err != nil {
			return nil, err
		}
		objs, err := Decode(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, objs...)
	}
	if !haveShared {
		return nil, errors.New("the helm.cattle.io and traefik.io CRDs were not embedded: build the test server with tests/kube/build.sh")
	}
	return out, nil
}

// CRDNames lists the metadata.name of CRD objects.
func CRDNames(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		if o.GroupVersionKind() == (schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}) {
			names = append(names, o.GetName())
		}
	}
	return names
}
