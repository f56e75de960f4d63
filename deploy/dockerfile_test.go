package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestDockerfile checks deploy/Dockerfile statically (no Docker engine is
// needed): the pinned builder, a static trimmed build of ./cmd/$CMD, a
// non-root distroless final stage, and that the COPY lines bring in every
// package directory the binaries import, with the .dockerignore excluding
// none of them.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(repoPath("deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var froms []string
	var copies [][]string
	var user, entrypoint string
	var buildLine string
	for _, l := range lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, l)
		case "COPY":
			if !strings.Contains(l, "--from=") {
				copies = append(copies, f[1:len(f)-1])
			}
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(l, f[0]))
		case "RUN":
			if strings.Contains(l, "go build") {
				buildLine = l
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(froms))
	}
	if !regexp.MustCompile(`^FROM (--platform=\S+ )?golang:1\.26(\S*)? AS \w+$`).MatchString(froms[0]) {
		t.Errorf("the builder must be golang:1.26; got %q", froms[0])
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "gcr.io/distroless/static-debian12:nonroot") && !strings.Contains(final, "scratch") {
		t.Errorf("final stage %q: want distroless static nonroot or scratch", final)
	}
	if user != "65532:65532" && user != "65532" && user != "nonroot" && user != "nonroot:nonroot" {
		t.Errorf("USER %q: the final stage must run as the non-root 65532", user)
	}
	if !strings.HasPrefix(entrypoint, "[") {
		t.Errorf("ENTRYPOINT %q: use the exec form (the image has no shell)", entrypoint)
	}
	if !strings.Contains(string(raw), "CGO_ENABLED=0") {
		t.Error("CGO_ENABLED=0 missing: the binary must be static")
	}
	for _, want := range []string{"-trimpath", `-ldflags "-s -w"`, `./cmd/$CMD`} {
		if !strings.Contains(buildLine, want) {
			t.Errorf("go build line %q lacks %s", buildLine, want)
		}
	}
	if !regexp.MustCompile(`(?m)^ARG CMD\s*$`).Match(raw) {
		t.Error("no ARG CMD")
	}

	// Every package directory of the main module that a binary imports
	// (with its embedded files) is under a COPY source.
	copied := map[string]bool{}
	for _, c := range copies {
		for _, src := range c {
			if !strings.HasPrefix(src, "--") {
				copied[filepath.Clean(src)] = true
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !copied[f] {
			t.Errorf("Dockerfile does not COPY %s", f)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	list := exec.Command(goTool, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/...")
	list.Dir = repoRoot
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs(repoRoot)
	ignore := dockerignore(t)
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !copied[top] && !copied[filepath.Clean(rel)] {
			t.Errorf("the binaries import %s, but the Dockerfile does not COPY it", rel)
		}
		for _, pat := range ignore {
			if ok, _ := filepath.Match(pat, top); ok || pat == filepath.ToSlash(rel) {
				t.Errorf("Dockerfile.dockerignore pattern %q excludes %s, which the build needs", pat, rel)
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		for _, pat := range ignore {
			if ok, _ := filepath.Match(pat, f); ok {
				t.Errorf("Dockerfile.dockerignore pattern %q excludes %s", pat, f)
			}
		}
	}
}

// dockerignore returns the patterns of deploy/Dockerfile.dockerignore,
// relative to the context root.
func dockerignore(t *testing.T) []string {
	raw, err := os.ReadFile(repoPath("deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatalf("deploy/Dockerfile.dockerignore: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue
		}
		out = append(out, strings.TrimPrefix(l, "/"))
	}
	return out
}
