package registrytest_test

import (
	"context"
	"testing"

	"github.com/hamba/avro/v2/registry"

	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
)

const v1 = `{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"string"}]}`
const v2 = `{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","string"],"default":null}]}`
const v3Breaking = `{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"long"}]}`

// TestHambaClient drives the server with the client the codec uses.
func TestHambaClient(t *testing.T) {
	srv := registrytest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	c, err := registry.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	id1, _, err := c.CreateSchema(ctx, "topic-value", v1)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := c.CreateSchema(ctx, "other-value", v1)
	if err != nil || again != id1 {
		t.Fatalf("same schema under another subject: id %d err %v, want %d", again, err, id1)
	}
	id2, _, err := c.CreateSchema(ctx, "topic-value", v2)
	if err != nil || id2 == id1 {
		t.Fatalf("v2: id %d err %v", id2, err)
	}
	if _, _, err := c.CreateSchema(ctx, "topic-value", v3Breaking); err == nil {
		t.Fatal("breaking change registered")
	}
	if ok, err := c.IsCompatible(ctx, "topic-value", v3Breaking); err != nil || ok {
		t.Fatalf("IsCompatible(breaking) = %v, %v", ok, err)
	}
	s, err := c.GetSchema(ctx, id2)
	if err != nil || s.(interface{ FullName() string }).FullName() != "t.R" {
		t.Fatalf("GetSchema: %v %v", s, err)
	}
	if _, err := c.GetSchema(ctx, 999); err == nil {
		t.Fatal("unknown id found")
	} else if re, ok := err.(registry.Error); !ok || re.StatusCode != 404 {
		t.Fatalf("unknown id error = %#v", err)
	}
	if id, _, err := c.IsRegistered(ctx, "topic-value", v1); err != nil || id != id1 {
		t.Fatalf("IsRegistered = %d %v", id, err)
	}
	if _, _, err := c.IsRegistered(ctx, "nope-value", v1); err == nil {
		t.Fatal("IsRegistered on unknown subject")
	}
	info, err := c.GetLatestSchemaInfo(ctx, "topic-value")
	if err != nil || info.ID != id2 || info.Version != 2 {
		t.Fatalf("latest = %+v %v", info, err)
	}
	subs, err := c.GetSubjects(ctx)
	if err != nil || len(subs) != 2 {
		t.Fatalf("subjects = %v %v", subs, err)
	}
	if err := c.SetCompatibilityLevel(ctx, "topic-value", registry.NoneCL); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.CreateSchema(ctx, "topic-value", v3Breaking); err != nil {
		t.Fatalf("NONE level still refuses: %v", err)
	}
	srv.FailWith(503)
	if _, err := c.GetSubjects(ctx); err == nil {
		t.Fatal("FailWith ignored")
	}
}

// LagIDs answers 404 for the next n fetches by id, then serves them.
func TestLagIDs(t *testing.T) {
	srv := registrytest.NewServer()
	defer srv.Close()
	c, err := registry.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := c.CreateSchema(context.Background(), "topic-value", v1)
	if err != nil {
		t.Fatal(err)
	}
	srv.LagIDs(2)
	for i := 0; i < 2; i++ {
		if _, err := c.GetSchema(context.Background(), id); err == nil {
			t.Fatalf("fetch %d served during the lag", i)
		} else if re, ok := err.(registry.Error); !ok || re.StatusCode != 404 {
			t.Fatalf("fetch %d: %#v, want a 404", i, err)
		}
	}
	if _, err := c.GetSchema(context.Background(), id); err != nil {
		t.Fatalf("after the lag: %v", err)
	}
}
