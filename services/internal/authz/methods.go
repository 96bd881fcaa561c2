package authz

// methodActions is the action of every gRPC method a node serves. A method
// missing here is refused to everyone (MethodAction reports false).
//
// The names are written out rather than taken from gen/ so that this package
// (and the control protocol and config packages that import it) stays free of
// gRPC and protobuf; TestMethodTableCoversServices checks the table against
// the generated service descriptors, both ways.
var methodActions = map[string]Action{
	"/receptor.control.v1.ControlService/GetStatus":      ActionStatus,
	"/receptor.control.v1.ControlService/GetVersion":     ActionStatus,
	"/receptor.control.v1.ControlService/Ping":           ActionPing,
	"/receptor.control.v1.ControlService/Traceroute":     ActionTraceroute,
	"/receptor.control.v1.ControlService/Reload":         ActionReload,
	"/receptor.control.v1.ControlService/SubmitWork":     ActionWorkSubmit,
	"/receptor.control.v1.ControlService/CreateWork":     ActionWorkSubmit,
	"/receptor.control.v1.ControlService/ListWork":       ActionWorkRead,
	"/receptor.control.v1.ControlService/GetWork":        ActionWorkRead,
	"/receptor.control.v1.ControlService/GetWorkResults": ActionWorkRead,
	"/receptor.control.v1.ControlService/CancelWork":     ActionWorkCancel,
	"/receptor.control.v1.ControlService/ReleaseWork":    ActionWorkRelease,
	"/receptor.control.v1.ControlService/WatchMesh":      ActionWatchMesh,
	"/receptor.control.v1.ControlService/WatchWork":      ActionWorkRead,
	"/receptor.control.v1.ControlService/GetAccess":      ActionStatus,

	"/receptor.mesh.v1.MeshService/GetStatus":       ActionStatus,
	"/receptor.mesh.v1.MeshService/GetVersion":      ActionStatus,
	"/receptor.mesh.v1.MeshService/Ping":            ActionPing,
	"/receptor.mesh.v1.MeshService/Traceroute":      ActionTraceroute,
	"/receptor.mesh.v1.MeshService/PacketSocket":    ActionMeshSocket,
	"/receptor.mesh.v1.MeshService/Dial":            ActionMeshSocket,
	"/receptor.mesh.v1.MeshService/Listen":          ActionMeshSocket,
	"/receptor.mesh.v1.MeshService/Accept":          ActionMeshSocket,
	"/receptor.mesh.v1.MeshService/SetWorkCommands": ActionMeshSocket,

	"/receptor.work.v1.WorkService/Submit":          ActionWorkSubmit,
	"/receptor.work.v1.WorkService/ListUnits":       ActionWorkRead,
	"/receptor.work.v1.WorkService/GetUnitStatus":   ActionWorkRead,
	"/receptor.work.v1.WorkService/WatchUnitStatus": ActionWorkRead,
	"/receptor.work.v1.WorkService/GetResults":      ActionWorkRead,
	"/receptor.work.v1.WorkService/CancelUnit":      ActionWorkCancel,
	"/receptor.work.v1.WorkService/ReleaseUnit":     ActionWorkRelease,
	"/receptor.work.v1.WorkService/AdoptRemoteUnit": ActionWorkSubmit,
	"/receptor.work.v1.WorkService/GetWorkerInfo":   ActionStatus,

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
