package deploy_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Environment any      `yaml:"environment"` // a map or a list of K=V
	Ports       []any    `yaml:"ports"`
	DependsOn   any      `yaml:"depends_on"` // a map or a list
	Command     any      `yaml:"command"`
	Volumes     []string `yaml:"volumes"`

	name string
	env  map[string]string
	bin  *binary // for services built from deploy/Dockerfile
}

// cmd is the cmd/ directory the service's image is built from ("" for an
// image pulled as is).
func (s *composeService) cmd() string {
	if s.Build == nil {
		return ""
	}
	return s.Build.Args["CMD"]
}

// value is the effective value of a variable: the service's env, else the
// binary's default.
func (s *composeService) value(v string) string {
	if val, ok := s.env[v]; ok {
		return val
	}
	if s.bin != nil {
		return s.bin.defaults[v]
	}
	return ""
}

func (s *composeService) commandArgs() []string {
	switch c := s.Command.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, a := range c {
			out = append(out, fmt.Sprint(a))
		}
		return out
	}
	return nil
}

func loadCompose(t *testing.T) map[string]*composeService {
	t.Helper()
	raw, err := os.ReadFile(repoPath("docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	bins := binaries(t)
	for name, s := range f.Services {
		s.name = name
		s.env = map[string]string{}
		switch e := s.Environment.(type) {
		case map[string]any:
			for k, v := range e {
				if v == nil {
					v = ""
				}
				s.env[k] = fmt.Sprint(v)
			}
		case []any:
			for _, kv := range e {
				k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
				s.env[k] = v
			}
		case nil:
		default:
			t.Fatalf("service %s: environment is neither a map nor a list", name)
		}
		if c := s.cmd(); c != "" {
			s.bin = bins[c]
		}
	}
	return f.Services
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func byCmd(svcs map[string]*composeService, cmd string) []*composeService {
	var out []*composeService
	for _, n := range sortedNames(svcs) {
		if svcs[n].cmd() == cmd {
			out = append(out, svcs[n])
		}
	}
	return out
}

// TestComposeBuildsRealBinaries: every service built from deploy/Dockerfile
// names an existing cmd/<CMD>, services sharing an image tag build the same
// binary, and the stack has the replicas the architecture asks for.
func TestComposeBuildsRealBinaries(t *testing.T) {
	svcs := loadCompose(t)
	images := map[string]string{}
	for _, n := range sortedNames(svcs) {
		s := svcs[n]
		if s.Build == nil {
			if s.Image == "" {
				t.Errorf("service %s: neither build nor image", n)
			}
			continue
		}
		if s.Build.Context != "." {
			t.Errorf("service %s: build context %q, want the repository root \".\"", n, s.Build.Context)
		}
		if _, err := os.Stat(repoPath(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("service %s: dockerfile %s: %v", n, s.Build.Dockerfile, err)
		}
		if s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("service %s: builds %s, want deploy/Dockerfile", n, s.Build.Dockerfile)
			continue
		}
		if !cmdExists(s.cmd()) {
			t.Errorf("service %s: build arg CMD=%q is not a directory cmd/<name> with a main.go", n, s.cmd())
		}
		if s.bin == nil {
			t.Errorf("service %s: cmd/%s has no env contract in the deploy tests", n, s.cmd())
		}
		if prev, ok := images[s.Image]; ok && prev != s.cmd() {
			t.Errorf("service %s: image %s is also built from cmd/%s", n, s.Image, prev)
		}
		images[s.Image] = s.cmd()
	}
	for cmd, min := range map[string]int{"ingest": 2, "dispatcher": 2, "tracker": 1, "wompisim": 1} {
		if got := len(byCmd(svcs, cmd)); got < min {
			t.Errorf("compose runs %d %s services, want at least %d", got, cmd, min)
		}
	}
	for _, n := range sortedNames(svcs) {
		for _, dep := range dependsOn(svcs[n]) {
			if svcs[dep] == nil {
				t.Errorf("service %s depends on unknown service %s", n, dep)
			}
		}
	}
}

func dependsOn(s *composeService) []string {
	switch d := s.DependsOn.(type) {
	case map[string]any:
		return sortedNames(d)
	case []any:
		var out []string
		for _, x := range d {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// TestComposeEnv: every variable a built service sets is one its binary
// reads, every required one is set, and the replicas agree where they must.
func TestComposeEnv(t *testing.T) {
	svcs := loadCompose(t)
	for _, n := range sortedNames(svcs) {
		s := svcs[n]
		if s.bin == nil {
			continue
		}
		for _, v := range sortedNames(s.env) {
			if !s.bin.accepts(v) {
				t.Errorf("service %s: cmd/%s does not read %s; it reads: %s", n, s.cmd(), v, s.bin.knownVars())
			}
		}
		for v := range s.bin.required {
			if _, ok := s.env[v]; !ok {
				if _, ok := s.env[v+"_FILE"]; !ok {
					t.Errorf("service %s: required %s is not set (cmd/%s would exit at start)", n, v, s.cmd())
				}
			}
		}
	}

	// Ingest: a distinct, explicit transactional id per replica (the default
	// is the hostname, a random container id that changes on re-create),
	// one consumer group.
	ids := map[string]string{}
	groups := map[string]bool{}
	for _, s := range byCmd(svcs, "ingest") {
		id, ok := s.env["INGEST_TRANSACTIONAL_ID"]
		if !ok || id == "" {
			t.Errorf("service %s: INGEST_TRANSACTIONAL_ID must be set explicitly (stable across re-creates)", s.name)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("services %s and %s share INGEST_TRANSACTIONAL_ID %q: they would fence each other", prev, s.name, id)
		}
		ids[id] = s.name
		groups[s.value("INGEST_GROUP")] = true
	}
	if len(groups) > 1 {
		t.Errorf("ingest replicas use different INGEST_GROUPs: %v", sortedNames(groups))
	}
	owners := map[string]string{}
	groups = map[string]bool{}
	for _, s := range byCmd(svcs, "dispatcher") {
		groups[s.value("DISPATCHER_GROUP")] = true
		if id := s.value("DISPATCHER_INSTANCE_ID"); id != "" {
			if prev, dup := owners[id]; dup {
				t.Errorf("services %s and %s share DISPATCHER_INSTANCE_ID %q", prev, s.name, id)
			}
			owners[id] = s.name
		}
	}
	if len(groups) > 1 {
		t.Errorf("dispatcher replicas use different DISPATCHER_GROUPs: %v", sortedNames(groups))
	}

	// The dispatcher and the tracker share Redis and its key prefix (the
	// submitted hand-off), whatever their built-in defaults.
	shared := map[string]map[string]bool{"REDIS_URL": {}, "REDIS_PREFIX": {}, "WOMPI_BASE_URL": {}}
	for _, cmd := range []string{"dispatcher", "tracker"} {
		for _, s := range byCmd(svcs, cmd) {
			for v := range shared {
				shared[v][s.value(v)] = true
			}
		}
	}
	for v, vals := range shared {
		if len(vals) != 1 {
			t.Errorf("dispatcher and tracker disagree on %s: %q", v, sortedNames(vals))
		}
	}

	// Credentials: the workers must send what the simulator accepts, and the
	// tracker must verify with the secret the simulator signs with.
	sims := byCmd(svcs, "wompisim")
	if len(sims) != 1 {
		t.Fatalf("want exactly one wompisim service, got %d", len(sims))
	}
	sim := sims[0]
	for _, cmd := range []string{"dispatcher", "tracker"} {
		for _, s := range byCmd(svcs, cmd) {
			vars := []string{"WOMPI_API_KEY", "WOMPI_PRINCIPAL_ID"}
			if cmd == "tracker" {
				vars = append(vars, "WOMPI_EVENTS_SECRET")
			}
			for _, v := range vars {
				if got, want := s.value(v), sim.value(v); got != want {
					t.Errorf("service %s: %s=%q but the simulator expects %q", s.name, v, got, want)
				}
			}
		}
	}

	// The topics redpanda-init creates are the topics the workers use.
	var initSvc *composeService
	for _, n := range sortedNames(svcs) {
		if _, ok := svcs[n].env["TOPICS"]; ok && strings.Contains(svcs[n].Image, "redpanda") {
			initSvc = svcs[n]
		}
	}
	if initSvc == nil {
		t.Error("no topic-creating service (a redpanda image with TOPICS) in compose")
	} else {
		want := map[string]bool{}
		topics := events.DefaultTopics()
		for _, b := range topics.Bindings() {
			name := b.Default
			for _, cmd := range []string{"ingest", "dispatcher", "tracker"} {
				for _, s := range byCmd(svcs, cmd) {
					if v, ok := s.env[b.Env]; ok {
						name = v
					}
				}
			}
			want[name] = true
		}
		got := map[string]bool{}
		for _, tp := range strings.Fields(initSvc.env["TOPICS"]) {
			got[tp] = true
		}
		if fmt.Sprint(sortedNames(got)) != fmt.Sprint(sortedNames(want)) {
			t.Errorf("service %s creates topics %v, the workers use %v", initSvc.name, sortedNames(got), sortedNames(want))
		}
		if p, err := strconv.Atoi(initSvc.env["PARTITIONS"]); err != nil || p < len(byCmd(svcs, "ingest")) || p < len(byCmd(svcs, "dispatcher")) {
			t.Errorf("service %s: PARTITIONS=%q must be a number >= the ingest and dispatcher replica counts", initSvc.name, initSvc.env["PARTITIONS"])
		}
	}
}

var listenerFlag = regexp.MustCompile(`^--(kafka-addr|schema-registry-addr|pandaproxy-addr|advertise-kafka-addr|advertise-pandaproxy-addr)=(.+)$`)

// listens returns the ports a service listens on inside the compose
// network, and for Redpanda the advertised Kafka addresses.
func listens(t *testing.T, s *composeService) (ports map[int]string, advertisedKafka map[string]bool) {
	ports = map[int]string{}
	advertisedKafka = map[string]bool{}
	if s.bin != nil {
		for _, v := range []string{"METRICS_ADDR", "TRACKER_ADDR", "WOMPISIM_ADDR"} {
			if s.bin.vars[v] {
				ports[portOf(t, s.name+" "+v, s.value(v))] = v
			}
		}
		return ports, advertisedKafka
	}
	switch {
	case strings.Contains(s.Image, "redpanda"):
		for _, a := range s.commandArgs() {
			m := listenerFlag.FindStringSubmatch(a)
			if m == nil {
				continue
			}
			for _, l := range strings.Split(m[2], ",") {
				u, err := url.Parse(l)
				if err != nil {
					t.Fatalf("service %s: listener %q: %v", s.name, l, err)
				}
				if m[1] == "advertise-kafka-addr" {
					advertisedKafka[u.Host] = true
					continue
				}
				if strings.HasPrefix(m[1], "advertise") {
					continue
				}
				ports[portOf(t, s.name+" "+m[1], u.Host)] = m[1]
			}
		}
	case strings.HasPrefix(s.Image, "redis:"):
		ports[6379] = "redis"
	case strings.Contains(s.Image, "prometheus"):
		ports[9090] = "prometheus"
	}
	return ports, advertisedKafka
}

// TestComposePorts: URLs and broker lists point at services and ports that
// exist, published ports are ports the container listens on, and Prometheus
// scrapes exactly the workers' metrics ports.
func TestComposePorts(t *testing.T) {
	svcs := loadCompose(t)
	ports := map[string]map[int]string{}
	advertised := map[string]bool{}
	for _, n := range sortedNames(svcs) {
		p, adv := listens(t, svcs[n])
		ports[n] = p
		for a := range adv {
			advertised[a] = true
		}
	}
	// endpoint checks that host:port is a service listening there.
	endpoint := func(who, what, hostport string) string {
		host, p, err := net.SplitHostPort(hostport)
		if err != nil {
			t.Errorf("%s: %s %q is not host:port", who, what, hostport)
			return ""
		}
		port, _ := strconv.Atoi(p)
		if svcs[host] == nil {
			t.Errorf("%s: %s %q: no service %q in compose", who, what, hostport, host)
			return ""
		}
		if _, ok := ports[host][port]; !ok {
			t.Errorf("%s: %s %q: service %s listens on %v, not %d", who, what, hostport, host, sortedInts(ports[host]), port)
		}
		return host
	}

	for _, n := range sortedNames(svcs) {
		s := svcs[n]
		for _, pub := range s.Ports {
			parts := strings.Split(strings.TrimSuffix(fmt.Sprint(pub), "/tcp"), ":")
			cp, err := strconv.Atoi(parts[len(parts)-1])
			if err != nil {
				t.Errorf("service %s: published port %v: %v", n, pub, err)
				continue
			}
			if _, ok := ports[n][cp]; !ok {
				t.Errorf("service %s publishes container port %d but listens on %v", n, cp, sortedInts(ports[n]))
			}
		}
		if s.bin == nil {
			continue
		}
		if s.bin.vars["WOMPISIM_ADDR"] {
			if h, _, _ := net.SplitHostPort(s.value("WOMPISIM_ADDR")); h == "127.0.0.1" || h == "localhost" {
				t.Errorf("service %s: WOMPISIM_ADDR %q listens on loopback only; other containers cannot reach it", n, s.value("WOMPISIM_ADDR"))
			}
		}
		if v, ok := s.env["KAFKA_BROKERS"]; ok {
			for _, b := range strings.Split(v, ",") {
				endpoint(n, "KAFKA_BROKERS", strings.TrimSpace(b))
				if len(advertised) > 0 && !advertised[strings.TrimSpace(b)] {
					t.Errorf("service %s: broker %s is not an address Redpanda advertises (%v): clients would be redirected elsewhere", n, b, sortedNames(advertised))
				}
			}
		}
		for _, v := range []string{"SCHEMA_REGISTRY_URL", "REDIS_URL", "WOMPI_BASE_URL", "WEBHOOK_URL"} {
			raw, ok := s.env[v]
			if !ok || raw == "" {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil || u.Port() == "" {
				t.Errorf("service %s: %s=%q needs an explicit host:port", n, v, raw)
				continue
			}
			host := endpoint(n, v, u.Host)
			if host == "" {
				continue
			}
			switch v {
			case "WOMPI_BASE_URL":
				if svcs[host].cmd() != "wompisim" || u.Path != "/v1" {
					t.Errorf("service %s: WOMPI_BASE_URL=%q, want http://<the wompisim service>:<WOMPISIM_ADDR port>/v1", n, raw)
				}
			case "WEBHOOK_URL":
				tr := svcs[host]
				if tr.cmd() != "tracker" || u.Path != track.WebhookPath {
					t.Errorf("service %s: WEBHOOK_URL=%q, want http://<the tracker service>:<TRACKER_ADDR port>%s", n, raw, track.WebhookPath)
				} else if want := portOf(t, host+" TRACKER_ADDR", tr.value("TRACKER_ADDR")); u.Port() != strconv.Itoa(want) {
					t.Errorf("service %s: WEBHOOK_URL port %s, the tracker's TRACKER_ADDR port is %d", n, u.Port(), want)
				}
			}
		}
	}
	if sims := byCmd(svcs, "wompisim"); len(sims) == 1 && sims[0].value("WEBHOOK_URL") == "" {
		t.Error("the simulator has no WEBHOOK_URL: the tracker would receive no webhooks")
	}

	// Prometheus: the scrape targets are exactly the workers' metrics ports.
	want := map[string]bool{}
	for _, n := range sortedNames(svcs) {
		s := svcs[n]
		switch s.cmd() {
		case "ingest", "dispatcher", "tracker":
			want[fmt.Sprintf("%s:%d", n, portOf(t, n+" METRICS_ADDR", s.value("METRICS_ADDR")))] = true
		}
	}
	prom := loadPrometheusConfig(t)
	got := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		if !strings.HasPrefix(sc.JobName, "payouts-") {
			t.Errorf("scrape job %q: worker jobs are named payouts-<component> (the alerts match up{job=~\"payouts-...\"})", sc.JobName)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				got[tg] = true
			}
		}
	}
	for tg := range want {
		if !got[tg] {
			t.Errorf("prometheus.yml does not scrape %s", tg)
		}
	}
	for tg := range got {
		if !want[tg] {
			t.Errorf("prometheus.yml scrapes %s, which is no worker's METRICS_ADDR", tg)
		}
	}
	var promSvc *composeService
	for _, n := range sortedNames(svcs) {
		if strings.Contains(svcs[n].Image, "prometheus") {
			promSvc = svcs[n]
		}
	}
	if promSvc == nil {
		t.Fatal("no prometheus service in compose")
	}
	mounted := false
	for _, v := range promSvc.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if filepath.Clean(src) == "deploy/prometheus" && strings.HasPrefix(dst, "/etc/prometheus") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("service %s does not mount ./deploy/prometheus at /etc/prometheus", promSvc.name)
	}
	rules := false
	for _, rf := range prom.RuleFiles {
		if rf == "alerts.yml" {
			rules = true
		}
	}
	if !rules {
		t.Errorf("prometheus.yml rule_files %v does not load alerts.yml", prom.RuleFiles)
	}
}

type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadPrometheusConfig(t *testing.T) prometheusConfig {
	t.Helper()
	raw, err := os.ReadFile(repoPath("deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c prometheusConfig
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	return c
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
