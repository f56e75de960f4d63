package deploy_test

import (
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestExampleOverlay renders deploy/k8s/overlays/example with kubectl (skipped
// without it): the real Secret is never overwritten by the template, every
// image is the overlay's, and KEDA's brokers are KAFKA_BROKERS.
func TestExampleOverlay(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: the overlay is not rendered")
	}
	out, err := exec.Command(kubectl, "kustomize", repoPath("deploy", "k8s", "overlays", "example")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	brokers, images, keda := "", 0, []string{}
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				Triggers []struct {
					Metadata map[string]string `yaml:"metadata"`
				} `yaml:"triggers"`
				Template struct {
					Spec struct {
						Containers []struct {
							Image string `yaml:"image"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		switch doc.Kind {
		case "Secret":
			t.Errorf("the overlay renders Secret %s: applying it would overwrite the real credentials", doc.Metadata.Name)
		case "ConfigMap":
			if doc.Metadata.Name == "payouts-common" {
				brokers = doc.Data["KAFKA_BROKERS"]
			}
		case "ScaledObject":
			for _, tr := range doc.Spec.Triggers {
				keda = append(keda, tr.Metadata["bootstrapServers"])
			}
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			images++
			if !strings.HasPrefix(c.Image, "registry.example.com/payouts/") {
				t.Errorf("%s %s: image %s is not the overlay's", doc.Kind, doc.Metadata.Name, c.Image)
			}
		}
	}
	if brokers == "" || images != 3 || len(keda) != 2 {
		t.Fatalf("render: brokers %q, %d containers, %d KEDA triggers", brokers, images, len(keda))
	}
	for _, k := range keda {
		if k != brokers {
			t.Errorf("KEDA bootstrapServers %q, KAFKA_BROKERS %q", k, brokers)
		}
	}
}
