// Package kubernetes holds ktracer's Kubernetes manifest and its test,
// which decodes every document strictly into the upstream API types
// (k8s.io/api, the Prometheus Operator's) and checks what the daemon needs.
// It is its own Go module so that those types stay out of ktracer's.
package kubernetes
