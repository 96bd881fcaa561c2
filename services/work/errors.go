package work

import "errors"

// Error kinds; test with errors.Is. Error texts are upstream's exact
// strings (docs/protocol.md §12.5), which control clients match on.
var (
	ErrUnknownUnit     = errors.New("unknown work unit")
	ErrUnknownWorkType = errors.New("unknown work type")
	// ErrInvalidRequest covers bad parameters of a request.
	ErrInvalidRequest = errors.New("invalid work request")
	// ErrSignature covers failed signature checks.
	ErrSignature = errors.New("work signature rejected")
	// ErrRemote covers failures talking to another node.
	ErrRemote = errors.New("remote work failed")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("work agent is closed")
)

// Error is an agent error: Error() is the exact client-facing text, Is
// matches its kind, Unwrap gives the cause.
type Error struct {
	kind  error
	msg   string
	cause error
}

func (e *Error) Error() string        { return e.msg }
func (e *Error) Is(target error) bool { return target == e.kind }
func (e *Error) Unwrap() error        { return e.cause }

func newError(kind error, msg string, cause error) *Error {
	return &Error{kind: kind, msg: msg, cause: cause}
}

func unknownUnit(id string) error {
	return newError(ErrUnknownUnit, "unknown work unit "+id, nil)
}

func invalid(err error) error {
	return newError(ErrInvalidRequest, err.Error(), err)
}

// Signature-rule errors (docs/protocol.md §14.3).
var (
	errUnexpectedSignature = newError(ErrSignature, "work type did not expect a signature", nil)
	errTTLLocal            = newError(ErrInvalidRequest, "ttl option is intended for remote work only", nil)
	errSecretsNoTLS        = newError(ErrInvalidRequest, "cannot send secrets over a non-TLS connection", nil)
)

func signatureError(err error) error {
	return newError(ErrSignature, err.Error(), err)
}
