// Package httprules holds the tests of the REST mapping that
// proto/receptor/control/v1/control_http.yaml gives ControlService: they run
// the generated grpc-gateway handlers in proxy mode (as the router does) in
// front of a recording ControlService and check every route's method, path,
// query and body binding. The package has no code of its own.
package httprules
