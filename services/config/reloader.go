package config

// Reloader re-reads the configuration a process started with: its reload
// control command, SIGHUP and, with --config-v2, a change of a
// configuration file ask for it (package launch builds it).
type Reloader struct {
	// Load reads every source again, as at start: all --config files and
	// the command-line entities in their order, or the embedded
	// configuration, then the environment.
	Load func() (*Config, error)
	// Requests receives a value for each request to reload that did not
	// come through the control API: SIGHUP, or a changed --config-v2 file.
	// Nil when there is no such source.
	Requests <-chan struct{}
}
