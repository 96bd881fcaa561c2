package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v2"
)

// MaxFileSize bounds a configuration file.
const MaxFileSize = 4 << 20

// Options configure a Loader. The zero value is ready to use.
type Options struct {
	// Logger receives debug and warning messages; nil means slog.Default().
	Logger *slog.Logger
	// Hostname supplies the default node ID; nil means os.Hostname.
	Hostname func() (string, error)
	// ReadFile reads configuration files; nil means the file system,
	// bounded by MaxFileSize.
	ReadFile func(path string) ([]byte, error)
}

// Loader reads configurations from command lines, files and the environment.
type Loader struct {
	log      *slog.Logger
	hostname func() (string, error)
	readFile func(path string) ([]byte, error)
}

// New returns a Loader using opts.
func New(opts Options) *Loader {
	l := &Loader{log: opts.Logger, hostname: opts.Hostname, readFile: opts.ReadFile}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.hostname == nil {
		l.hostname = os.Hostname
	}
	if l.readFile == nil {
		l.readFile = readFileBounded
	}
	return l
}

func readFileBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

// ParseArgs parses an upstream-style command line (without the program
// name) including --config/-c and --config-v2 files, then applies env
// (KEY=VALUE strings as from os.Environ) and validates the result.
func ParseArgs(args, env []string) (*Config, error) { return New(Options{}).ParseArgs(args, env) }

// LoadFile loads one YAML file, v1 (top-level list) or v2 (top-level map)
// detected by shape, then applies env.
func LoadFile(path string, env []string) (*Config, error) { return New(Options{}).LoadFile(path, env) }

// LoadV1 loads v1 YAML (a list of entities) from data; name labels errors.
func LoadV1(name string, data []byte, env []string) (*Config, error) {
	return New(Options{}).LoadV1(name, data, env)
}

// LoadV2 loads the v2 keyed YAML form from data; name labels errors.
func LoadV2(name string, data []byte, env []string) (*Config, error) {
	return New(Options{}).LoadV2(name, data, env)
}

// ParseArgs: see the package-level ParseArgs.
func (l *Loader) ParseArgs(args, env []string) (*Config, error) {
	if len(args) == 0 {
		return &Config{Help: true}, nil
	}
	var (
		ents    []*rawEntity
		cur     *rawEntity
		sources []string
	)
	// --config-v2 is a switch, as upstream's (receptor --config-v2 --config
	// FILE): it may stand anywhere, makes every --config file read as v2
	// and has the files watched. Our earlier form --config-v2 FILE is still
	// read (a file name right after the switch).
	v2 := slices.ContainsFunc(args, func(a string) bool { return strings.EqualFold(a, "--config-v2") })
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			if cur == nil {
				return nil, &Error{Msg: fmt.Sprintf("parameter specified before command: %q", arg)}
			}
			if k, v, ok := strings.Cut(arg, "="); ok {
				cur.params = append(cur.params, rawParam{key: k, value: v})
				continue
			}
			if cur.spec.bare == nil {
				return nil, cur.src.err(cur.spec.name, "", "command does not allow bare values (got %q)", arg)
			}
			cur.params = append(cur.params, rawParam{key: cur.spec.bare.name, value: arg})
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"))
		switch name {
		case "help", "h":
			return &Config{Help: true}, nil
		case "bash-completion":
			return &Config{BashCompletion: true}, nil
		case "config-v2":
			cur = nil
			if i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") {
				continue
			}
			i++
			fileEnts, err := l.readEntities(args[i], true)
			if err != nil {
				return nil, err
			}
			ents = append(ents, fileEnts...)
			sources = append(sources, args[i])
			continue
		case "config", "c":
			if i+1 >= len(args) {
				return nil, &Error{Msg: fmt.Sprintf("%s requires a file name", arg)}
			}
			i++
			fileEnts, err := l.readEntities(args[i], v2)
			if err != nil {
				return nil, err
			}
			ents = append(ents, fileEnts...)
			sources = append(sources, args[i])
			cur = nil
			continue
		}
		spec := lookupEntity(name)
		if spec == nil {
			return nil, &Error{Msg: fmt.Sprintf("unknown entity %q", name)}
		}
		cur = &rawEntity{spec: spec, src: srcPos{kind: srcCLI}}
		ents = append(ents, cur)
	}
	if v2 && len(sources) == 0 {
		// Upstream's v2 mode reads $HOME/receptor.yaml when no file is given.
		home := envValue(env, "HOME")
		if home == "" {
			return nil, &Error{Msg: "--config-v2: no --config file given and HOME is not set"}
		}
		path := filepath.Join(home, "receptor.yaml")
		fileEnts, err := l.readEntities(path, true)
		if err != nil {
			return nil, err
		}
		ents = append(ents, fileEnts...)
		sources = append(sources, path)
	}
	cfg, err := l.build(ents, sources, env)
	if err != nil {
		return nil, err
	}
	cfg.V2 = v2
	return cfg, nil
}

// LoadFile: see the package-level LoadFile.
func (l *Loader) LoadFile(path string, env []string) (*Config, error) {
	ents, err := l.readEntities(path, false)
	if err != nil {
		return nil, err
	}
	return l.build(ents, []string{path}, env)
}

// LoadV1: see the package-level LoadV1.
func (l *Loader) LoadV1(name string, data []byte, env []string) (*Config, error) {
	ents, err := parseV1(name, data)
	if err != nil {
		return nil, err
	}
	return l.build(ents, []string{name}, env)
}

// LoadV2: see the package-level LoadV2.
func (l *Loader) LoadV2(name string, data []byte, env []string) (*Config, error) {
	ents, err := parseV2(name, data)
	if err != nil {
		return nil, err
	}
	return l.build(ents, []string{name}, env)
}

// readEntities reads a file and parses it as v2 when forced, else by shape.
func (l *Loader) readEntities(path string, forceV2 bool) ([]*rawEntity, error) {
	data, err := l.readFile(path)
	if err != nil {
		return nil, &Error{Source: path, Msg: "cannot read config file", Err: err}
	}
	v2 := forceV2
	if !v2 {
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, &Error{Source: path, Msg: "invalid YAML", Err: err}
		}
		_, v2 = doc.(map[any]any)
	}
	var ents []*rawEntity
	if v2 {
		ents, err = parseV2(path, data)
	} else {
		ents, err = parseV1(path, data)
	}
	if err != nil {
		return nil, err
	}
	l.log.Debug("configuration file read", "path", path, "v2", v2, "entities", len(ents))
	return ents, nil
}

var errNotMap = errors.New("config format invalid: the top level of a v2 configuration must be a map")

// envValue returns the value of variable name in env (KEY=VALUE strings),
// the last one winning as in a shell.
func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}
