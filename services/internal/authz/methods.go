package authz

import (
	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

// methodActions is the action of every gRPC method a node serves. A method
// missing here is refused to everyone (MethodAction reports false).
var methodActions = map[string]Action{
	controlv1.ControlService_GetStatus_FullMethodName:      ActionStatus,
	controlv1.ControlService_GetVersion_FullMethodName:     ActionStatus,
	controlv1.ControlService_Ping_FullMethodName:           ActionPing,
	controlv1.ControlService_Traceroute_FullMethodName:     ActionTraceroute,
	controlv1.ControlService_Reload_FullMethodName:         ActionReload,
	controlv1.ControlService_SubmitWork_FullMethodName:     ActionWorkSubmit,
	controlv1.ControlService_CreateWork_FullMethodName:     ActionWorkSubmit,
	controlv1.ControlService_ListWork_FullMethodName:       ActionWorkRead,
	controlv1.ControlService_GetWork_FullMethodName:        ActionWorkRead,
	controlv1.ControlService_GetWorkResults_FullMethodName: ActionWorkRead,
	controlv1.ControlService_CancelWork_FullMethodName:     ActionWorkCancel,
	controlv1.ControlService_ReleaseWork_FullMethodName:    ActionWorkRelease,
	controlv1.ControlService_WatchMesh_FullMethodName:      ActionWatchMesh,
	controlv1.ControlService_WatchWork_FullMethodName:      ActionWorkRead,

	meshv1.MeshService_GetStatus_FullMethodName:       ActionStatus,
	meshv1.MeshService_GetVersion_FullMethodName:      ActionStatus,
	meshv1.MeshService_Ping_FullMethodName:            ActionPing,
	meshv1.MeshService_Traceroute_FullMethodName:      ActionTraceroute,
	meshv1.MeshService_PacketSocket_FullMethodName:    ActionMeshSocket,
	meshv1.MeshService_Dial_FullMethodName:            ActionMeshSocket,
	meshv1.MeshService_Listen_FullMethodName:          ActionMeshSocket,
	meshv1.MeshService_Accept_FullMethodName:          ActionMeshSocket,
	meshv1.MeshService_SetWorkCommands_FullMethodName: ActionMeshSocket,

	workv1.WorkService_Submit_FullMethodName:          ActionWorkSubmit,
	workv1.WorkService_ListUnits_FullMethodName:       ActionWorkRead,
	workv1.WorkService_GetUnitStatus_FullMethodName:   ActionWorkRead,
	workv1.WorkService_WatchUnitStatus_FullMethodName: ActionWorkRead,
	workv1.WorkService_GetResults_FullMethodName:      ActionWorkRead,
	workv1.WorkService_CancelUnit_FullMethodName:      ActionWorkCancel,
	workv1.WorkService_ReleaseUnit_FullMethodName:     ActionWorkRelease,
	workv1.WorkService_AdoptRemoteUnit_FullMethodName: ActionWorkSubmit,
	workv1.WorkService_GetWorkerInfo_FullMethodName:   ActionStatus,

	// The standard services every server carries.
	"/grpc.health.v1.Health/Check":                                   ActionStatus,
	"/grpc.health.v1.Health/List":                                    ActionStatus,
	"/grpc.health.v1.Health/Watch":                                   ActionStatus,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      ActionStatus,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": ActionStatus,
}

// MethodAction is the action of a gRPC full method name
// ("/package.Service/Method").
func MethodAction(fullMethod string) (Action, bool) {
	a, ok := methodActions[fullMethod]
	return a, ok
}
