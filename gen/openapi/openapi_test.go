package openapi

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The embedded document must be the merged Swagger file and carry the REST
// routes that control_http.yaml declares.
func TestSwaggerJSONHasControlRoutes(t *testing.T) {
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
		Info    struct{ Title, Version string }
	}
	if err := json.Unmarshal(SwaggerJSON(), &doc); err != nil {
		t.Fatalf("decode embedded OpenAPI document: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger version = %q, want 2.0", doc.Swagger)
	}
	// A title and version of its own (proto/receptor/control/v1/control_openapi.yaml),
	// not the generator's defaults (a proto file name, "version not set").
	if !strings.HasPrefix(doc.Info.Title, "Receptor node API") || doc.Info.Version != "v1" {
		t.Errorf("info = %+v", doc.Info)
	}
	for _, path := range []string{
		"/v1/status",
		"/v1/version",
		"/v1/nodes/{node}:ping",
		"/v1/nodes/{node}/traceroute",
		"/v1/reload",
		"/v1/work",
		"/v1/work/{unitId}",
		"/v1/work/{unitId}/results",
		"/v1/work/{unitId}:cancel",
	} {
		if _, ok := doc.Paths[path]; !ok {
			t.Errorf("OpenAPI document lacks path %s; have %d paths", path, len(doc.Paths))
		}
	}
}

// Callers get their own copy: changing it must not change the embedded bytes.
func TestSwaggerJSONReturnsCopy(t *testing.T) {
	first := SwaggerJSON()
	if len(first) == 0 {
		t.Fatal("embedded OpenAPI document is empty")
	}
	first[0] ^= 0xff
	if second := SwaggerJSON(); second[0] == first[0] {
		t.Error("SwaggerJSON returned shared bytes: a caller's change leaked into the next call")
	}
}
