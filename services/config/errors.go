package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is the type of every error returned by the loader. Binaries print it
// as "Error: <err>" and exit 1, like upstream.
//
// Its text is the non-empty parts joined with ": ", e.g.
// `config.yaml: item 3: tcp-listener: port: "abc" is not a number`.
type Error struct {
	Source string // file path, "environment", or "" for the command line
	Where  string // "item 3" (v1 YAML, 1-based), "tcp-listeners[0]" (v2), or an env var name
	Entity string // entity name, when known
	Param  string // parameter name, when known
	Msg    string // what is wrong, with the offending value
	Err    error  // underlying cause, if any
}

func (e *Error) Error() string {
	parts := make([]string, 0, 5)
	for _, p := range []string{e.Source, e.Where, e.Entity, e.Param} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	msg := e.Msg
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	return strings.Join(append(parts, msg), ": ")
}

func (e *Error) Unwrap() error { return e.Err }

// srcPos says where an entity or parameter came from.
type srcPos struct {
	kind   srcKind
	source string // file path or "environment"
	where  string
}

type srcKind int

const (
	srcCLI srcKind = iota
	srcFile
	srcEnv
	srcImplicit
)

func (s srcPos) err(entity, param, format string, args ...any) *Error {
	return &Error{Source: s.source, Where: s.where, Entity: entity, Param: param, Msg: fmt.Sprintf(format, args...)}
}

// paramError is returned by entity validators to blame one parameter.
type paramError struct {
	param string
	msg   string
}

func (p *paramError) Error() string { return p.param + ": " + p.msg }

func perr(param, format string, args ...any) error {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// attach turns a validator error into an *Error positioned at the entity.
func attach(s srcPos, entity string, err error) *Error {
	var pe *paramError
	if errors.As(err, &pe) {
		return s.err(entity, pe.param, "%s", pe.msg)
	}
	return s.err(entity, "", "%s", err.Error())
}
