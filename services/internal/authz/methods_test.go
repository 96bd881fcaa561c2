package authz

import (
	"testing"

	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

// TestMethodTableCoversServices checks the written-out method names against
// the services a node registers: every method has an action (else it would
// be refused to everyone), and every entry names a real method (else a
// rename would leave a stale entry and refuse the new name).
func TestMethodTableCoversServices(t *testing.T) {
	served := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{
		controlv1.ControlService_ServiceDesc, meshv1.MeshService_ServiceDesc, workv1.WorkService_ServiceDesc,
		healthgrpc.Health_ServiceDesc, reflectionv1.ServerReflection_ServiceDesc,
		reflectionv1alpha.ServerReflection_ServiceDesc,
	} {
		for _, m := range sd.Methods {
			served["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range sd.Streams {
			served["/"+sd.ServiceName+"/"+s.StreamName] = true
		}
	}
	for m := range served {
		if _, ok := MethodAction(m); !ok {
			t.Errorf("served method %s has no action: everyone would be refused", m)
		}
	}
	for m := range methodActions {
		if !served[m] {
			t.Errorf("method table names %s, which no registered service serves", m)
		}
	}
}

// TestNoPublicMethod checks that no gRPC method is open to callers without
// a role: the only such action is the web view's files, an HTTP route.
func TestNoPublicMethod(t *testing.T) {
	for m, a := range methodActions {
		if RoleNone.Allows(a) {
			t.Errorf("method %s maps to %v, which callers without a role may do", m, a)
		}
	}
}
