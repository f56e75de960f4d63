// Package apachekafka runs a real Apache Kafka (KRaft, combined
// broker+controller nodes on loopback) from the jars that Maven copies out
// of Maven Central, for tests ([github.com/wompi-payouts/pipeline/pkg/testenv])
// and for cmd/kafkabroker. It needs a Java 17+ runtime; nothing but Maven
// Central is downloaded, once, into a cache folder that git ignores.
package apachekafka

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Version is the Apache Kafka release that [Start] runs. The
// jars come from Maven Central through deploy/kafka/pom.xml, which pins the
// same version (a test checks that they agree).
const Version = "4.1.1"

// Environment variables read by [FindDist].
const (
	// EnvJars names a folder holding Kafka's jars (kafka_2.13-*.jar and its
	// dependencies), used as is instead of the Maven cache.
	EnvJars = "KAFKA_JARS"
	// EnvCache overrides the cache folder (default <repo>/.cache) under
	// which Maven copies the jars, to kafka-<Version>/lib.
	EnvCache = "KAFKA_CACHE_DIR"
)

// Dist is what starting a real broker needs: a Java 17+ runtime and a
// folder of Kafka's jars.
type Dist struct {
	Java string // path of the java binary
	Lib  string // folder of kafka_2.13-<version>.jar and its dependencies
}

// classpath is the JVM classpath of the distribution.
func (d Dist) classpath() string { return filepath.Join(d.Lib, "*") }

// ErrNoDist is wrapped by [FindDist] when Java, the jars, or
// Maven to fetch them are missing.
var ErrNoDist = errors.New("no real Kafka")

// FindDist locates Java and Kafka's jars: KAFKA_JARS when set, else the
// Maven cache <repo>/.cache/kafka-<Version>/lib (KAFKA_CACHE_DIR
// overrides <repo>/.cache). When the cache is empty and fetch is true it runs
// Maven once (see [FetchJars]); concurrent test binaries wait on a file
// lock instead of downloading twice.
func FindDist(fetch bool) (Dist, error) {
	java, err := findJava()
	if err != nil {
		return Dist{}, err
	}
	if dir := strings.TrimSpace(os.Getenv(EnvJars)); dir != "" {
		if !hasKafkaJar(dir) {
			return Dist{}, fmt.Errorf("%w: %s=%s holds no kafka_2.13-*.jar", ErrNoDist, EnvJars, dir)
		}
		return Dist{Java: java, Lib: dir}, nil
	}
	lib, err := kafkaCacheLib()
	if err != nil {
		return Dist{}, err
	}
	if complete(lib) {
		return Dist{Java: java, Lib: lib}, nil
	}
	if !fetch {
		return Dist{}, fmt.Errorf("%w: jars not cached in %s (fetch them with `go run ./cmd/kafkabroker -fetch`)", ErrNoDist, lib)
	}
	if lib, err = FetchJars(nil); err != nil {
		return Dist{}, err
	}
	return Dist{Java: java, Lib: lib}, nil
}

func findJava() (string, error) {
	if home := strings.TrimSpace(os.Getenv("JAVA_HOME")); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("%w: no java in PATH or JAVA_HOME (Apache Kafka %s needs Java 17+)", ErrNoDist, Version)
	}
	return p, nil
}

func hasKafkaJar(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "kafka_2.13-*.jar"))
	return len(m) > 0
}

// completeMarker is written into the lib folder after Maven succeeded, so a
// half-copied folder is never used.
const completeMarker = ".complete"

func complete(lib string) bool {
	_, err := os.Stat(filepath.Join(lib, completeMarker))
	return err == nil && hasKafkaJar(lib)
}

// repoRoot walks up from the working directory to the folder that holds
// deploy/kafka/pom.xml (the module root).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, kafkaPom)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: %s not found above the working directory", ErrNoDist, kafkaPom)
		}
		dir = parent
	}
}

// kafkaPom is the Maven project that names the jars, relative to the repo.
const kafkaPom = "deploy/kafka/pom.xml"

func kafkaCacheLib() (string, error) {
	cache := strings.TrimSpace(os.Getenv(EnvCache))
	if cache == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(root, ".cache")
	}
	return filepath.Join(cache, "kafka-"+Version, "lib"), nil
}

// FetchJars copies Apache Kafka's jars from Maven Central into the
// cache, unless they are there already, and returns the lib folder. It runs
//
//	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -Dkafka.version=<Version> -DoutputDirectory=<tmp>
//
// (plus -Dstyle.color=never)
//
// into a temporary folder renamed into place on success, under an exclusive
// lock on <cache>/kafka-<version>.lock. Maven's output goes to log (nil:
// discarded, and quoted in the error on failure).
func FetchJars(log io.Writer) (string, error) {
	lib, err := kafkaCacheLib()
	if err != nil {
		return "", err
	}
	if complete(lib) {
		return lib, nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("%w: jars not cached in %s and no mvn in PATH to fetch them", ErrNoDist, lib)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	verDir := filepath.Dir(lib)
	if err := os.MkdirAll(filepath.Dir(verDir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(verDir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if complete(lib) {                                   // another process fetched them while we waited
		return lib, nil
	}
	if err := os.MkdirAll(verDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(verDir, "lib.tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(mvn, "-q", "-B", "-Dstyle.color=never", "-f", filepath.Join(root, kafkaPom),
		"dependency:copy-dependencies", "-Dkafka.version="+Version, "-DoutputDirectory="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if log != nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s failed: %v: %s", ErrNoDist, strings.Join(cmd.Args, " "), err, lastLines(out.Bytes(), 20))
	}
	if !hasKafkaJar(tmp) {
		return "", fmt.Errorf("%w: Maven copied no kafka_2.13 jar into %s", ErrNoDist, tmp)
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(lib)
	if err := os.Rename(tmp, lib); err != nil {
		return "", err
	}
	return lib, nil
}

var pomVersionRE = regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`)

// pomVersion reads the kafka.version that deploy/kafka/pom.xml pins.
func pomVersion() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, kafkaPom))
	if err != nil {
		return "", err
	}
	m := pomVersionRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s: no <kafka.version>", kafkaPom)
	}
	return string(m[1]), nil
}

// lastLines returns the last n lines of b, trimmed.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
