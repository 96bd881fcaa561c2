package wire

import (
	"bytes"
	"unicode/utf8"
)

// RouteKeys are the fields of a routing update that decide whether a node
// has already seen it.
type RouteKeys struct {
	NodeID, UpdateID, ForwardingNode string
}

// PeekRoute reads NodeID, UpdateID and ForwardingNode of a type-1 message
// without decoding it. Floods deliver every update once per neighbour, and
// full JSON decoding of the duplicates was half the CPU of a converging
// node. ok is true only when the reading is unambiguous: no backslash in
// the message (so no escapes, and every quote delimits a string), and each
// key written exactly once, in any letter case as encoding/json matches
// keys, in upstream's form "Key":"value" with a valid UTF-8 value. Then,
// whenever DecodeRoute also succeeds, both give the same three values.
func PeekRoute(msg []byte) (RouteKeys, bool) {
	if len(msg) < 2 || Type(msg[0]) != TypeRoute || bytes.IndexByte(msg, '\\') >= 0 {
		return RouteKeys{}, false
	}
	body := msg[1:]
	var k RouteKeys
	var ok bool
	if k.NodeID, ok = peekString(body, "NodeID"); !ok {
		return RouteKeys{}, false
	}
	if k.UpdateID, ok = peekString(body, "UpdateID"); !ok {
		return RouteKeys{}, false
	}
	if k.ForwardingNode, ok = peekString(body, "ForwardingNode"); !ok {
		return RouteKeys{}, false
	}
	return k, true
}

// peekString finds the only `"key"` of the top-level object in body (ASCII
// case-insensitive: the keys have no letter that folds to a non-ASCII rune)
// and returns the string value after `:"`. body holds no backslash, so
// every quote opens or closes a string and nesting is counted outside them.
func peekString(body []byte, key string) (string, bool) {
	at, depth := -1, 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			end := bytes.IndexByte(body[i+1:], '"')
			if end < 0 {
				return "", false
			}
			if depth == 1 && end == len(key) && bytes.EqualFold(body[i+1:i+1+end], []byte(key)) {
				if at >= 0 {
					return "", false // twice: encoding/json would take the last
				}
				at = i
			}
			i += end + 1
		}
	}
	if at < 0 {
		return "", false
	}
	rest := body[at+len(key)+2:]
	if len(rest) < 2 || rest[0] != ':' || rest[1] != '"' {
		return "", false
	}
	rest = rest[2:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || !utf8.Valid(rest[:end]) {
		return "", false
	}
	return string(rest[:end]), true
}
