// Package config is the one configuration loader of receptor,
// receptor-router and receptor-worker.
//
// It reads upstream Receptor configurations into typed, defaulted and
// validated structs (Config):
//
//   - the command line: `receptor --node id=a --tcp-listener port=2222 ...`
//     (ParseArgs), where an argument starting with "-" starts an entity,
//     key=value (split at the first "=") sets a parameter and any other
//     argument is the entity's bare value; --config/-c FILE loads a file
//     in place (repeatable, order kept), as v2 when the --config-v2 switch
//     is given anywhere;
//     --help/-h, --bash-completion and an empty command line set Help or
//     BashCompletion and load nothing;
//   - v1 YAML (a top-level list of entity names or one-key maps) with YAML
//     1.1 scalars, and the v2 keyed form (top-level map with plural list keys
//     such as tcp-listeners, control-services, work-commands), detected by
//     shape in LoadFile (LoadV1/LoadV2 read bytes). v2 goes through koanf;
//     v1 is an ordered list of repeatable entities, which koanf's maps cannot
//     hold, so it is read with yaml.v2 directly;
//   - environment overrides, read through koanf's env provider.
//
// One registry of entities (schema.go, driven by the struct tags in
// types.go) feeds the parser, both YAML forms, the environment, defaults,
// validation and WriteHelp.
//
// # Environment overrides
//
// A variable RECEPTOR_<ENTITY>[_<N>][_<PARAM>] overrides parameter PARAM of
// instance N (0-based, default 0) of ENTITY, where ENTITY is the entity
// name upper-cased with "-" written "_" and PARAM the upper-cased parameter
// name:
//
//	RECEPTOR_NODE_ID=node-a              node id
//	RECEPTOR_NODE_DATADIR=/var/lib/r     node datadir
//	RECEPTOR_LOG_LEVEL=debug             log-level bare value (level)
//	RECEPTOR_GRPC_SERVER_FILENAME=/s     first grpc-server's filename
//	RECEPTOR_GRPC_SERVER_1_TCPLISTEN=99  second grpc-server's tcplisten
//	RECEPTOR_LOCAL_ONLY=true             switch an entity without bare value on (false: remove it)
//
// Overrides win over files and the command line: they are applied last, a
// list parameter is replaced rather than appended to, and an instance that
// does not exist yet (N equal to the number defined) is created at the end.
// The one-shot entities (version, cert-*) are not overridable, and when one
// of them is given the environment is not read. Variables that do not have
// this shape, name no entity, or name a parameter the entity does not have
// (e.g. the Kubernetes tuning variables RECEPTOR_KUBE_*, or service links
// such as RECEPTOR_ROUTER_PORT) are ignored, the last with a warning.
//
// # Errors
//
// Every error is an *Error naming the source, the YAML item (1-based) or v2
// key or variable, the entity, the parameter and the bad value, e.g.
// `config.yaml: item 3: tcp-listener: port: "abc" is not a number`.
// Upstream's message words are kept inside that shape. Binaries print
// "Error: <err>" and exit 1.
//
// # Deviations from upstream
//
//   - Unknown entities are reported as `unknown entity "x"`, unknown
//     parameters as `unknown parameter "x"` (in both forms).
//   - Node maxidleconnectiontimeout defaults to 21s and must be at least that;
//     work-signing tokenexpiration defaults to 5m (upstream crashes, quirk Q5 of docs/protocol.md §15.1).
//   - Addresses, ports, costs, service-name lengths, TLS references and the
//     kubernetes/cert parameter rules are checked at load time, not when the
//     entity starts.
//   - v2: udp-servers/udp-clients are decoded as udp-server/udp-client
//     (upstream decodes them as tcp-server); ip-routers is accepted next to
//     iprouters; entities are ordered node, TLS, backends, services, work,
//     API (map order is lost); our new entities use grpc-servers,
//     http-gateway, work-agent and router.
//   - --config-v2 is upstream's switch (all --config files are v2 and watched; no
//     file means $HOME/receptor.yaml); our earlier --config-v2 FILE is still read.
package config
