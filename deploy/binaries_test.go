// Package deploy_test checks the deployment files against the code they
// deploy: docker-compose.yml, the kustomize base in deploy/k8s/base, the
// Dockerfile, the Prometheus configuration and rules, and the Grafana
// dashboard. Nothing here needs Docker or a cluster: every check is static,
// against the binaries' own configuration tables (config.Set.Vars and the
// --help of the two simulators), the metric names the code registers, and
// the repository layout.
package deploy_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/ingest"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// repoRoot is the module root, relative to this package's directory (the
// working directory of `go test`).
const repoRoot = ".."

func repoPath(p ...string) string { return filepath.Join(append([]string{repoRoot}, p...)...) }

// binary is what one cmd/<name> reads from its environment.
type binary struct {
	name     string
	vars     map[string]bool   // every env variable it reads
	secrets  map[string]bool   // the subset that may also come from <VAR>_FILE
	required map[string]bool   // must be set (no usable default)
	defaults map[string]string // built-in default of each variable
}

// goRuntimeVars are read by the Go runtime of every binary.
var goRuntimeVars = map[string]bool{"GOMEMLIMIT": true, "GOGC": true, "GOMAXPROCS": true}

// accepts reports whether the binary reads env variable v, directly or as
// the _FILE variant of a secret.
func (b *binary) accepts(v string) bool {
	if b.vars[v] || goRuntimeVars[v] {
		return true
	}
	base, ok := strings.CutSuffix(v, "_FILE")
	return ok && b.secrets[base]
}

// knownVars lists what the binary reads, for error messages.
func (b *binary) knownVars() string {
	var out []string
	for v := range b.vars {
		out = append(out, v)
		if b.secrets[v] {
			out = append(out, v+"_FILE")
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

var (
	binariesOnce sync.Once
	binariesMap  map[string]*binary
	binariesErr  error
)

// binaries returns the env contract of every deployable binary, keyed by
// its cmd/ directory name.
func binaries(t *testing.T) map[string]*binary {
	t.Helper()
	binariesOnce.Do(func() {
		binariesMap = map[string]*binary{
			"ingest":     fromConfigSet("ingest", func(s *config.Set) { ingest.BindConfig(s) }),
			"dispatcher": fromConfigSet("dispatcher", func(s *config.Set) { dispatch.BindConfig(s) }),
			"tracker":    fromConfigSet("tracker", func(s *config.Set) { track.BindConfig(s) }),
		}
		for _, name := range []string{"wompisim", "kfakebroker"} {
			b, err := fromHelp(name)
			if err != nil {
				binariesErr = err
				return
			}
			binariesMap[name] = b
		}
	})
	if binariesErr != nil {
		t.Fatal(binariesErr)
	}
	return binariesMap
}

// usageLine is one line of config.Set.PrintUsage:
//
//	--metrics-addr  $METRICS_ADDR  default :9090
//	--redis-url  $REDIS_URL  default "" (required)
//	--wompi-api-key  $WOMPI_API_KEY  default (secret; also WOMPI_API_KEY_FILE) (required)
var usageLine = regexp.MustCompile(`^\s+--\S+\s+\$([A-Z0-9_]+)\s+default (.*?)( \(required\))?$`)

// fromConfigSet builds the worker's real config.Set (the same BindConfig its
// main calls) and reads the variables, secrets, defaults and required flags
// from it.
func fromConfigSet(name string, bind func(*config.Set)) *binary {
	set := config.New(name, func(string) (string, bool) { return "", false })
	bind(set)
	b := &binary{name: name, vars: map[string]bool{}, secrets: map[string]bool{}, required: map[string]bool{}, defaults: map[string]string{}}
	for _, v := range set.Vars() {
		b.vars[v] = true
	}
	var buf bytes.Buffer
	set.SetOutput(&buf)
	set.PrintUsage()
	for _, line := range strings.Split(buf.String(), "\n") {
		m := usageLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		env, def, req := m[1], m[2], m[3] != ""
		switch {
		case strings.HasPrefix(def, "(secret;"):
			b.secrets[env] = true
			def = ""
		case def == `""`:
			def = ""
		}
		b.defaults[env] = def
		if req && strings.TrimSpace(def) == "" {
			b.required[env] = true
		}
	}
	return b
}

// Usage lines of the simulators (they do not use pkg/config):
//
//	-addr  (env WOMPISIM_ADDR, default 127.0.0.1:8089)
//	-ports (env KFAKE_PORTS, default "0")
var (
	helpEnvLine  = regexp.MustCompile(`^\s+-\S+\s+\(env ([A-Z0-9_]+), default (.*)\)$`)
	helpFileHint = regexp.MustCompile(`also ([A-Z0-9_]+)_FILE`)
)

// fromHelp builds cmd/<name> and parses its -help output: what the binary
// really prints, so a renamed variable there fails here.
func fromHelp(name string) (*binary, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "deploytest-"+name)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, name)
	build := exec.Command(goTool, "build", "-o", exe, "./cmd/"+name)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, &buildError{name: name, out: string(out), err: err}
	}
	help := exec.Command(exe, "-help")
	help.Env = []string{} // the defaults, not this machine's environment
	out, _ := help.CombinedOutput()
	b := &binary{name: name, vars: map[string]bool{}, secrets: map[string]bool{}, required: map[string]bool{}, defaults: map[string]string{}}
	for _, line := range strings.Split(string(out), "\n") {
		if m := helpEnvLine.FindStringSubmatch(line); m != nil {
			def := m[2]
			if uq, err := strconv.Unquote(def); err == nil {
				def = uq
			}
			if def == "(built-in test value)" {
				def = ""
			}
			b.vars[m[1]] = true
			b.defaults[m[1]] = def
		}
		for _, m := range helpFileHint.FindAllStringSubmatch(line, -1) {
			b.secrets[m[1]] = true
		}
	}
	if len(b.vars) == 0 {
		return nil, &buildError{name: name, out: string(out), err: errNoVars}
	}
	return b, nil
}

type buildError struct {
	name, out string
	err       error
}

func (e *buildError) Error() string { return "cmd/" + e.name + ": " + e.err.Error() + "\n" + e.out }

var errNoVars = errors.New("-help listed no environment variables")

// portOf returns the port of a host:port listen address.
func portOf(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q is not host:port: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 {
		t.Fatalf("%s: %q has no fixed port", what, addr)
	}
	return n
}

// cmdExists reports whether cmd/<name> is a main package directory.
func cmdExists(name string) bool {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return false
	}
	_, err := os.Stat(repoPath("cmd", name, "main.go"))
	return err == nil
}

// TestBinaryContracts makes sure the contracts the other tests compare
// against are not empty by accident (a parser that finds nothing would make
// every env check pass).
func TestBinaryContracts(t *testing.T) {
	bins := binaries(t)
	want := map[string][]string{
		"ingest":      {"KAFKA_BROKERS", "METRICS_ADDR", "INGEST_TRANSACTIONAL_ID", "INGEST_GROUP", "REDIS_URL"},
		"dispatcher":  {"KAFKA_BROKERS", "METRICS_ADDR", "REDIS_URL", "WOMPI_BASE_URL", "WOMPI_API_KEY", "DISPATCHER_GROUP"},
		"tracker":     {"KAFKA_BROKERS", "METRICS_ADDR", "REDIS_URL", "TRACKER_ADDR", "WOMPI_EVENTS_SECRET"},
		"wompisim":    {"WOMPISIM_ADDR", "WEBHOOK_URL", "WOMPI_API_KEY", "WOMPI_EVENTS_SECRET"},
		"kfakebroker": {"KFAKE_PORTS", "KFAKE_PARTITIONS", "KFAKE_TOPICS"},
	}
	for name, vars := range want {
		b := bins[name]
		if b == nil {
			t.Errorf("no contract for cmd/%s", name)
			continue
		}
		for _, v := range vars {
			if !b.vars[v] {
				t.Errorf("cmd/%s: expected to read %s; it reads: %s", name, v, b.knownVars())
			}
		}
	}
	for _, name := range []string{"dispatcher", "tracker", "wompisim"} {
		if !bins[name].secrets["WOMPI_API_KEY"] || !bins[name].accepts("WOMPI_API_KEY_FILE") {
			t.Errorf("cmd/%s: WOMPI_API_KEY should be a secret with a _FILE variant", name)
		}
	}
}
