// Package helmchart checks the auditwatch Helm chart (deploy/helm/auditwatch)
// without a cluster: its tests render the chart with the pinned helm binary
// and decode every rendered object strictly into the Kubernetes API types
// (k8s.io/api) and the Prometheus Operator types, so that a misspelt or
// misplaced field fails the test instead of being dropped by the API server.
//
// It is a module of its own so that auditwatch's go.mod does not gain the
// Kubernetes dependencies.
package helmchart

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest: its kind, name and typed value (a pointer
// to a k8s.io/api or monitoring/v1 struct).
type Object struct {
	APIVersion, Kind, Name string
	Annotations            map[string]string
	Value                  any
}

// Kinds lists the types the chart may render, by "apiVersion kind". Any
// other kind is an error: add it here (with its Go type) when the chart
// gains one.
var Kinds = map[string]func() any{
	"v1 ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1 Service":                              func() any { return &corev1.Service{} },
	"v1 ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1 Deployment":                      func() any { return &appsv1.Deployment{} },
	"batch/v1 Job":                            func() any { return &batchv1.Job{} },
	"batch/v1 CronJob":                        func() any { return &batchv1.CronJob{} },
	"policy/v1 PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1 ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1 PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// SplitDocuments splits a multi-document YAML stream (helm template's
// output) into its documents, leaving out those holding only comments or
// white space.
func SplitDocuments(stream []byte) [][]byte {
	var out [][]byte
	for _, doc := range docSeparator.Split(string(stream), -1) {
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			out = append(out, []byte(doc))
		}
	}
	return out
}

// Decode decodes one YAML document strictly into the Go type of its
// apiVersion and kind: duplicate keys, unknown fields (matched case
// sensitively, as the API server does), wrong value types and unknown kinds
// are errors.
func Decode(doc []byte) (Object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("yaml: %w", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return Object{}, fmt.Errorf("type meta: %w", err)
	}
	newValue, ok := Kinds[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return Object{}, fmt.Errorf("unknown kind %q %q: not one of the chart's kinds (helmchart.Kinds)", tm.APIVersion, tm.Kind)
	}
	v := newValue()
	strictErrs, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return Object{}, fmt.Errorf("decode %s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return Object{}, fmt.Errorf("decode %s %s strictly: %w", tm.APIVersion, tm.Kind, errors.Join(strictErrs...))
	}
	meta, ok := v.(metav1.Object)
	if !ok {
		return Object{}, fmt.Errorf("%s %s: no object metadata", tm.APIVersion, tm.Kind)
	}
	if meta.GetName() == "" {
		return Object{}, fmt.Errorf("%s %s: metadata.name is empty", tm.APIVersion, tm.Kind)
	}
	return Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: meta.GetName(), Annotations: meta.GetAnnotations(), Value: v}, nil
}

// DecodeAll decodes every document of stream; errors name the document's
// "# Source:" line (the template it came from).
func DecodeAll(stream []byte) ([]Object, error) {
	var (
		out  []Object
		errs []error
	)
	for i, doc := range SplitDocuments(stream) {
		o, err := Decode(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, source(doc), err))
			continue
		}
		out = append(out, o)
	}
	return out, errors.Join(errs...)
}

func source(doc []byte) string {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if s, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# Source: ")); ok {
			return string(s)
		}
	}
	return "no source line"
}

// PodSpec returns the pod template of a workload (Deployment, Job,
// CronJob) and whether o is one.
func PodSpec(o Object) (*corev1.PodTemplateSpec, bool) {
	switch v := o.Value.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template, true
	case *batchv1.Job:
		return &v.Spec.Template, true
	case *batchv1.CronJob:
		return &v.Spec.JobTemplate.Spec.Template, true
	}
	return nil, false
}
