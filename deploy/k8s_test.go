package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

const k8sBase = "deploy/k8s/base"

// intOrString is a Kubernetes port reference: a number or a port name.
type intOrString string

func (p *intOrString) UnmarshalYAML(n *yaml.Node) error { *p = intOrString(n.Value); return nil }

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type envVar struct {
	Name      string  `yaml:"name"`
	Value     *string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		ConfigMapKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"configMapKeyRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Env     []envVar `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SecurityContext *securityContext `yaml:"securityContext"`
		Containers      []container      `yaml:"containers"`
		Volumes         []struct {
			Name   string `yaml:"name"`
			Secret *struct {
				SecretName string `yaml:"secretName"`
				Items      []struct {
					Key  string `yaml:"key"`
					Path string `yaml:"path"`
				} `yaml:"items"`
			} `yaml:"secret"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Deployment, StatefulSet
		Replicas    *int        `yaml:"replicas"`
		ServiceName string      `yaml:"serviceName"`
		Selector    yaml.Node   `yaml:"selector"` // workloads and PDBs: a LabelSelector; Services: a map
		Template    podTemplate `yaml:"template"`
		// Service
		ClusterIP string `yaml:"clusterIP"`
		Ports     []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MinAvailable   *intOrString `yaml:"minAvailable"`
		MaxUnavailable *intOrString `yaml:"maxUnavailable"`
		// ScaledObject
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
		// ServiceMonitor
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`

	file string
}

func (o *k8sObject) id() string { return o.Kind + "/" + o.Metadata.Name + " (" + o.file + ")" }

// labelSelector reads spec.selector as a LabelSelector (matchLabels) or, for
// a Service, a plain label map.
func (o *k8sObject) labelSelector(t *testing.T) map[string]string {
	t.Helper()
	if o.Spec.Selector.Kind == 0 {
		return nil
	}
	if o.Kind == "Service" {
		var m map[string]string
		if err := o.Spec.Selector.Decode(&m); err != nil {
			t.Fatalf("%s: selector: %v", o.id(), err)
		}
		return m
	}
	var s selector
	if err := o.Spec.Selector.Decode(&s); err != nil {
		t.Fatalf("%s: selector: %v", o.id(), err)
	}
	return s.MatchLabels
}

// matches reports whether a non-empty selector selects labels.
func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type kustomization struct {
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

type k8sManifests struct {
	kust    kustomization
	objects []*k8sObject
}

func (m *k8sManifests) byKind(kind string) []*k8sObject {
	var out []*k8sObject
	for _, o := range m.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m *k8sManifests) get(kind, name string) *k8sObject {
	for _, o := range m.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	return nil
}

// loadK8s reads the kustomization and every resource it lists, and fails on
// a YAML file of the base that it does not list.
func loadK8s(t *testing.T) *k8sManifests {
	t.Helper()
	dir := repoPath(k8sBase)
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := &k8sManifests{}
	if err := yaml.Unmarshal(raw, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	listed := map[string]bool{}
	for _, r := range m.kust.Resources {
		listed[r] = true
		f, err := os.Open(filepath.Join(dir, r))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", r, err)
		}
		dec := yaml.NewDecoder(f)
		for {
			o := &k8sObject{file: r}
			err := dec.Decode(o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				t.Fatalf("%s: %v", r, err)
			}
			if o.Kind == "" {
				continue // an empty document
			}
			if o.APIVersion == "" || o.Metadata.Name == "" {
				t.Errorf("%s: an object without apiVersion or metadata.name", r)
			}
			m.objects = append(m.objects, o)
		}
		f.Close()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
			t.Errorf("%s/%s is not listed in kustomization.yaml resources", k8sBase, b)
		}
	}
	seen := map[string]bool{}
	for _, o := range m.objects {
		k := o.Kind + "/" + o.Metadata.Name
		if seen[k] {
			t.Errorf("%s defined twice", k)
		}
		seen[k] = true
	}
	return m
}

// workload is a Deployment or StatefulSet with its worker container.
type workload struct {
	obj *k8sObject
	c   *container
	cmd string
	bin *binary
	env map[string]envSource
}

// envSource is where a container's variable comes from.
type envSource struct {
	value    string // literal or ConfigMap value
	known    bool   // value is known statically
	fieldRef string // downward API field
	from     string // for messages
}

func (w *workload) value(v string) (string, bool) {
	if s, ok := w.env[v]; ok {
		return s.value, s.known
	}
	return w.bin.defaults[v], true
}

func workloads(t *testing.T, m *k8sManifests) []*workload {
	t.Helper()
	bins := binaries(t)
	var out []*workload
	for _, o := range m.objects {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		cs := o.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Errorf("%s: want exactly one container, got %d", o.id(), len(cs))
			continue
		}
		c := &cs[0]
		// The image is deploy/Dockerfile built with CMD = the image name's
		// last path element (ghcr.io/.../pipeline/<cmd>[:tag]).
		img := c.Image
		if i := strings.LastIndex(img, "@"); i >= 0 {
			img = img[:i]
		}
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			img = img[:i]
		}
		cmd := path.Base(img)
		w := &workload{obj: o, c: c, cmd: cmd, bin: bins[cmd], env: map[string]envSource{}}
		if !cmdExists(cmd) {
			t.Errorf("%s: image %s: cmd/%s does not exist", o.id(), c.Image, cmd)
			continue
		}
		if w.bin == nil {
			t.Errorf("%s: cmd/%s has no env contract in the deploy tests", o.id(), cmd)
			continue
		}
		if got := o.Metadata.Labels["app.kubernetes.io/component"]; got != cmd {
			t.Errorf("%s: label app.kubernetes.io/component=%q, but the image runs cmd/%s", o.id(), got, cmd)
		}
		for _, ef := range c.EnvFrom {
			switch {
			case ef.ConfigMapRef != nil:
				cm := m.get("ConfigMap", ef.ConfigMapRef.Name)
				if cm == nil {
					t.Errorf("%s: envFrom ConfigMap %s does not exist", o.id(), ef.ConfigMapRef.Name)
					continue
				}
				for k, v := range cm.Data {
					w.env[k] = envSource{value: v, known: true, from: "ConfigMap " + cm.Metadata.Name}
				}
			case ef.SecretRef != nil:
				t.Errorf("%s: envFrom Secret %s: secrets are mounted as files (*_FILE), not loaded as env", o.id(), ef.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			s := envSource{from: "env"}
			switch {
			case e.Value != nil:
				s.value, s.known = *e.Value, true
			case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
				s.fieldRef = e.ValueFrom.FieldRef.FieldPath
			case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
				ref := e.ValueFrom.ConfigMapKeyRef
				cm := m.get("ConfigMap", ref.Name)
				if cm == nil {
					t.Errorf("%s: %s: ConfigMap %s does not exist", o.id(), e.Name, ref.Name)
				} else if v, ok := cm.Data[ref.Key]; !ok {
					t.Errorf("%s: %s: ConfigMap %s has no key %s", o.id(), e.Name, ref.Name, ref.Key)
				} else {
					s.value, s.known = v, true
				}
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				s.from = "secretKeyRef"
			default:
				t.Errorf("%s: env %s has neither value nor a known valueFrom", o.id(), e.Name)
			}
			w.env[e.Name] = s
		}
		out = append(out, w)
	}
	return out
}

func workloadFor(ws []*workload, cmd string) *workload {
	for _, w := range ws {
		if w.cmd == cmd {
			return w
		}
	}
	return nil
}

// containerPort resolves a port reference (a name or a number) against the
// container's ports; 0 if it is not one of them.
func (w *workload) containerPort(ref intOrString) int {
	for _, p := range w.c.Ports {
		if string(ref) == p.Name || string(ref) == strconv.Itoa(p.ContainerPort) {
			return p.ContainerPort
		}
	}
	return 0
}

func (w *workload) namedPort(name string) int { return w.containerPort(intOrString(name)) }

// TestK8sWorkloadsEnv: each workload runs an existing cmd/<name>, sets only
// variables its binary reads (ConfigMaps loaded whole included), sets every
// required one, takes secrets from files only, and ingest has stable
// transactional ids.
func TestK8sWorkloadsEnv(t *testing.T) {
	m := loadK8s(t)
	ws := workloads(t, m)
	for _, cmd := range []string{"ingest", "dispatcher", "tracker"} {
		if workloadFor(ws, cmd) == nil {
			t.Errorf("no Deployment/StatefulSet runs cmd/%s", cmd)
		}
	}
	secret := m.get("Secret", "wompi-credentials")
	for _, w := range ws {
		for _, v := range sortedNames(w.env) {
			src := w.env[v]
			if !w.bin.accepts(v) {
				t.Errorf("%s: %s (from %s) is not read by cmd/%s; it reads: %s", w.obj.id(), v, src.from, w.cmd, w.bin.knownVars())
			}
			if w.bin.secrets[v] && src.known {
				t.Errorf("%s: secret %s is set in plain text; mount it and set %s_FILE", w.obj.id(), v, v)
			}
		}
		for v := range w.bin.required {
			_, ok := w.env[v]
			_, okFile := w.env[v+"_FILE"]
			if !ok && !okFile {
				t.Errorf("%s: required %s is not set (cmd/%s would exit at start)", w.obj.id(), v, w.cmd)
			}
		}
		// Every *_FILE points into a mounted Secret volume that has the key.
		for _, v := range sortedNames(w.env) {
			if !strings.HasSuffix(v, "_FILE") || !w.bin.accepts(v) {
				continue
			}
			file := w.env[v].value
			found := false
			for _, vm := range w.c.VolumeMounts {
				rel, err := filepath.Rel(vm.MountPath, file)
				if err != nil || strings.HasPrefix(rel, "..") {
					continue
				}
				for _, vol := range w.obj.Spec.Template.Spec.Volumes {
					if vol.Name != vm.Name || vol.Secret == nil {
						continue
					}
					sec := m.get("Secret", vol.Secret.SecretName)
					if sec == nil {
						t.Errorf("%s: volume %s: Secret %s does not exist", w.obj.id(), vol.Name, vol.Secret.SecretName)
						continue
					}
					key := rel
					if len(vol.Secret.Items) > 0 {
						key = ""
						for _, it := range vol.Secret.Items {
							if it.Path == rel {
								key = it.Key
							}
						}
					}
					if _, ok := sec.StringData[key]; key != "" && ok {
						found = true
					} else if _, ok := sec.Data[key]; key != "" && ok {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("%s: %s=%s is not a key of a mounted Secret volume", w.obj.id(), v, file)
			}
		}
		if w.obj.Kind == "Deployment" && w.cmd == "ingest" {
			t.Errorf("%s: ingest must be a StatefulSet (stable pod names give stable INGEST_TRANSACTIONAL_IDs)", w.obj.id())
		}
	}
	if w := workloadFor(ws, "ingest"); w != nil {
		if src := w.env["INGEST_TRANSACTIONAL_ID"]; src.fieldRef != "metadata.name" {
			t.Errorf("%s: INGEST_TRANSACTIONAL_ID must come from the pod name (fieldRef metadata.name), got %+v", w.obj.id(), src)
		}
		if w.obj.Kind == "StatefulSet" {
			svc := m.get("Service", w.obj.Spec.ServiceName)
			if svc == nil || svc.Spec.ClusterIP != "None" || !matches(svc.labelSelector(t), w.obj.Spec.Template.Metadata.Labels) {
				t.Errorf("%s: serviceName %q must be a headless Service selecting its pods", w.obj.id(), w.obj.Spec.ServiceName)
			}
		}
	}
	// The Secret is a template: placeholders only.
	if secret == nil {
		t.Error("no Secret wompi-credentials")
	} else {
		if len(secret.Data) > 0 {
			t.Errorf("%s: use stringData placeholders, not data", secret.id())
		}
		for k, v := range secret.StringData {
			if v != "REPLACE_ME" {
				t.Errorf("%s: key %s must hold the placeholder REPLACE_ME, never a value", secret.id(), k)
			}
		}
	}
	// Dispatcher and tracker agree on Redis, its prefix and the Wompi API.
	d, tr := workloadFor(ws, "dispatcher"), workloadFor(ws, "tracker")
	if d != nil && tr != nil {
		for _, v := range []string{"REDIS_URL", "REDIS_PREFIX", "WOMPI_BASE_URL"} {
			dv, dok := d.value(v)
			tv, tok := tr.value(v)
			if !dok || !tok || dv != tv {
				t.Errorf("dispatcher and tracker must share %s: %q vs %q", v, dv, tv)
			}
		}
	}
}

// TestK8sPortsProbesAndServices: container ports match the listen
// addresses, probes hit /healthz and /readyz on the metrics port, Services
// target real container ports, and the ServiceMonitor reaches every worker.
func TestK8sPortsProbesAndServices(t *testing.T) {
	m := loadK8s(t)
	ws := workloads(t, m)
	for _, w := range ws {
		addr, ok := w.value("METRICS_ADDR")
		if !ok {
			t.Errorf("%s: METRICS_ADDR is not static", w.obj.id())
			continue
		}
		mp := portOf(t, w.obj.id()+" METRICS_ADDR", addr)
		if got := w.namedPort("metrics"); got != mp {
			t.Errorf("%s: container port \"metrics\" is %d, METRICS_ADDR %q listens on %d", w.obj.id(), got, addr, mp)
		}
		if w.bin.vars["TRACKER_ADDR"] {
			addr, _ := w.value("TRACKER_ADDR")
			if got, want := w.namedPort("webhook"), portOf(t, w.obj.id()+" TRACKER_ADDR", addr); got != want {
				t.Errorf("%s: container port \"webhook\" is %d, TRACKER_ADDR %q listens on %d", w.obj.id(), got, addr, want)
			}
		}
		for _, p := range w.c.Ports {
			if p.ContainerPort != mp && !(w.bin.vars["TRACKER_ADDR"] && p.Name == "webhook") {
				t.Errorf("%s: container port %s/%d matches no listen address", w.obj.id(), p.Name, p.ContainerPort)
			}
		}
		for _, pr := range []struct {
			name string
			p    *probe
			path string
		}{{"livenessProbe", w.c.LivenessProbe, "/healthz"}, {"readinessProbe", w.c.ReadinessProbe, "/readyz"}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", w.obj.id(), pr.name)
				continue
			}
			if pr.p.HTTPGet.Path != pr.path || w.containerPort(pr.p.HTTPGet.Port) != mp {
				t.Errorf("%s: %s is GET %s on port %q; want %s on the metrics port %d", w.obj.id(), pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, mp)
			}
		}

		labels := w.obj.Spec.Template.Metadata.Labels
		if !matches(w.obj.labelSelector(t), labels) {
			t.Errorf("%s: its selector does not select its own pod template", w.obj.id())
		}
		// A Service with a metrics port selects the pods, and the
		// ServiceMonitor selects that Service.
		var metricsSvc *k8sObject
		for _, svc := range m.byKind("Service") {
			if !matches(svc.labelSelector(t), labels) {
				continue
			}
			for _, sp := range svc.Spec.Ports {
				if w.containerPort(sp.TargetPort) == 0 {
					t.Errorf("%s: port %s targets %q, which is no container port of %s", svc.id(), sp.Name, sp.TargetPort, w.obj.id())
				}
				if sp.Name == "metrics" && w.containerPort(sp.TargetPort) == mp {
					metricsSvc = svc
				}
			}
		}
		if metricsSvc == nil {
			t.Errorf("%s: no Service exposes its metrics port under the name \"metrics\"", w.obj.id())
		} else {
			scraped := false
			for _, sm := range m.byKind("ServiceMonitor") {
				if !matches(sm.labelSelector(t), metricsSvc.Metadata.Labels) {
					continue
				}
				for _, ep := range sm.Spec.Endpoints {
					if ep.Port == "metrics" && (ep.Path == "" || ep.Path == "/metrics") {
						scraped = true
					}
				}
			}
			if !scraped {
				t.Errorf("%s: no ServiceMonitor scrapes port \"metrics\" of %s", w.obj.id(), metricsSvc.id())
			}
		}
		if w.cmd == "tracker" {
			ok := false
			for _, svc := range m.byKind("Service") {
				for _, sp := range svc.Spec.Ports {
					if matches(svc.labelSelector(t), labels) && svc.Spec.ClusterIP != "None" && w.containerPort(sp.TargetPort) == w.namedPort("webhook") && w.namedPort("webhook") != 0 {
						ok = true
					}
				}
			}
			if !ok {
				t.Errorf("%s: no (non-headless) Service routes to the webhook port", w.obj.id())
			}
		}
		// A PodDisruptionBudget covers the pods.
		covered := false
		for _, pdb := range m.byKind("PodDisruptionBudget") {
			if matches(pdb.labelSelector(t), labels) {
				covered = true
				if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
					t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", pdb.id())
				}
			}
		}
		if !covered {
			t.Errorf("%s: no PodDisruptionBudget selects its pods", w.obj.id())
		}
	}
}

// TestK8sSecurityAndResources: restricted Pod Security for every pod,
// requests and limits for every container.
func TestK8sSecurityAndResources(t *testing.T) {
	m := loadK8s(t)
	for _, w := range workloads(t, m) {
		pod, c := w.obj.Spec.Template.Spec.SecurityContext, w.c.SecurityContext
		if c == nil {
			t.Errorf("%s: no container securityContext", w.obj.id())
			continue
		}
		isTrue := func(b *bool) bool { return b != nil && *b }
		if !isTrue(c.RunAsNonRoot) && (pod == nil || !isTrue(pod.RunAsNonRoot)) {
			t.Errorf("%s: runAsNonRoot is not set", w.obj.id())
		}
		for _, sc := range []*securityContext{pod, c} {
			if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Errorf("%s: runAsUser 0", w.obj.id())
			}
		}
		if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", w.obj.id())
		}
		if !isTrue(c.ReadOnlyRootFilesystem) {
			t.Errorf("%s: readOnlyRootFilesystem must be true", w.obj.id())
		}
		if c.Capabilities == nil || len(c.Capabilities.Drop) != 1 || c.Capabilities.Drop[0] != "ALL" || len(c.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", w.obj.id())
		}
		seccomp := func(sc *securityContext) bool {
			return sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == "RuntimeDefault"
		}
		if !seccomp(c) && !seccomp(pod) {
			t.Errorf("%s: seccompProfile RuntimeDefault is not set", w.obj.id())
		}
		for _, res := range []string{"cpu", "memory"} {
			if w.c.Resources.Requests[res] == "" || w.c.Resources.Limits[res] == "" {
				t.Errorf("%s: resources.requests and .limits must set %s", w.obj.id(), res)
			}
		}
		// A soft memory limit at or above the container's would never act
		// before the OOM killer does.
		if gml, lim := w.env["GOMEMLIMIT"].value, w.c.Resources.Limits["memory"]; gml == "" {
			t.Errorf("%s: GOMEMLIMIT is not set (about 85%% of resources.limits.memory)", w.obj.id())
		} else if g, l := quantityBytes(t, gml), quantityBytes(t, lim); g <= 0 || g >= l*95/100 {
			t.Errorf("%s: GOMEMLIMIT %s must be below 95%% of the memory limit %s", w.obj.id(), gml, lim)
		}
	}
	ns := m.get("Namespace", m.kust.Namespace)
	if ns == nil {
		t.Errorf("kustomization namespace %q has no Namespace object in the base", m.kust.Namespace)
	} else if ns.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("%s: enforce Pod Security restricted", ns.id())
	}
	for _, img := range m.kust.Images {
		if !cmdExists(path.Base(img.Name)) {
			t.Errorf("kustomization images: %s names no cmd/", img.Name)
		}
	}
}

// TestK8sAutoscaling: ingest and the dispatcher scale on their own consumer
// group's lag on the topic they consume, never beyond its partitions.
func TestK8sAutoscaling(t *testing.T) {
	m := loadK8s(t)
	ws := workloads(t, m)
	common := m.get("ConfigMap", "payouts-common")
	if common == nil {
		t.Fatal("no ConfigMap payouts-common")
	}
	type want struct {
		groupVar  string
		topicVars []string
	}
	for cmd, wt := range map[string]want{
		"ingest":     {"INGEST_GROUP", []string{"TOPIC_REQUESTS"}},
		"dispatcher": {"DISPATCHER_GROUP", []string{"TOPIC_BATCHES", "TOPIC_BATCHES_DEFERRED"}},
	} {
		w := workloadFor(ws, cmd)
		if w == nil {
			continue // reported by TestK8sWorkloadsEnv
		}
		var so *k8sObject
		for _, o := range m.byKind("ScaledObject") {
			r := o.Spec.ScaleTargetRef
			if r.Name == w.obj.Metadata.Name && r.Kind == w.obj.Kind {
				so = o
			}
		}
		if so == nil {
			t.Errorf("%s: no KEDA ScaledObject targets it", w.obj.id())
			continue
		}
		if w.obj.Spec.Replicas != nil {
			t.Errorf("%s: sets replicas, which every apply would reset under KEDA", w.obj.id())
		}
		parts, err := strconv.Atoi(so.Metadata.Annotations["payouts.wompi.co/topic-partitions"])
		if err != nil || parts <= 0 {
			t.Errorf("%s: annotation payouts.wompi.co/topic-partitions must give the partition count", so.id())
		}
		if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount > parts || *so.Spec.MaxReplicaCount < 1 {
			t.Errorf("%s: maxReplicaCount must be 1..%d (the partitions; extra consumers sit idle)", so.id(), parts)
		}
		if so.Spec.MinReplicaCount != nil && so.Spec.MaxReplicaCount != nil && *so.Spec.MinReplicaCount > *so.Spec.MaxReplicaCount {
			t.Errorf("%s: minReplicaCount > maxReplicaCount", so.id())
		}
		group, _ := w.value(wt.groupVar)
		topics := map[string]bool{}
		for _, tv := range wt.topicVars {
			v, _ := w.value(tv)
			topics[v] = true
		}
		if len(so.Spec.Triggers) == 0 {
			t.Errorf("%s: no triggers", so.id())
		}
		for _, tr := range so.Spec.Triggers {
			md := tr.Metadata
			if tr.Type != "kafka" {
				t.Errorf("%s: trigger type %q, want kafka", so.id(), tr.Type)
				continue
			}
			if md["bootstrapServers"] != common.Data["KAFKA_BROKERS"] {
				t.Errorf("%s: bootstrapServers %q != KAFKA_BROKERS %q", so.id(), md["bootstrapServers"], common.Data["KAFKA_BROKERS"])
			}
			if md["consumerGroup"] != group {
				t.Errorf("%s: consumerGroup %q, but %s uses %s=%q", so.id(), md["consumerGroup"], w.obj.id(), wt.groupVar, group)
			}
			if !topics[md["topic"]] {
				t.Errorf("%s: topic %q is not one cmd/%s consumes (%v)", so.id(), md["topic"], cmd, sortedNames(topics))
			}
			if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n <= 0 {
				t.Errorf("%s: lagThreshold %q must be a positive integer", so.id(), md["lagThreshold"])
			}
			if md["allowIdleConsumers"] != "false" {
				t.Errorf("%s: allowIdleConsumers must be \"false\"", so.id())
			}
		}
	}
	// The topics in the triggers are real topic names of the pipeline.
	names := map[string]bool{}
	topics := events.DefaultTopics()
	for _, b := range topics.Bindings() {
		names[b.Default] = true
	}
	for _, o := range m.byKind("ScaledObject") {
		for _, tr := range o.Spec.Triggers {
			if tp := tr.Metadata["topic"]; !names[tp] {
				t.Logf("%s: topic %q is not a default topic name (fine only with a TOPIC_* override)", o.id(), tp)
			}
		}
	}
}

// TestK8sKustomizeBuilds renders the base with kubectl's built-in kustomize
// when kubectl is installed.
func TestK8sKustomizeBuilds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: kustomize rendering not checked")
	}
	cmd := exec.Command(kubectl, "kustomize", repoPath(k8sBase))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	m := loadK8s(t)
	if got, want := bytes.Count(out, []byte("\nkind: "))+boolInt(bytes.HasPrefix(out, []byte("kind: "))), len(m.objects); got != want {
		t.Errorf("kustomize rendered %d objects, the files hold %d", got, want)
	}
	if !bytes.Contains(out, []byte(fmt.Sprintf("namespace: %s\n", m.kust.Namespace))) {
		t.Errorf("rendered objects are not in namespace %s", m.kust.Namespace)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// quantityBytes reads a memory size as Kubernetes (Mi, Gi) or Go's
// GOMEMLIMIT (MiB, GiB) writes it.
func quantityBytes(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mul    int64
	}{{"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Mi", 1 << 20}, {"Gi", 1 << 30}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Errorf("memory size %q: %v", q, err)
				return 0
			}
			return v * u.mul
		}
	}
	t.Errorf("memory size %q: unknown unit", q)
	return 0
}
